"""The run directory: what it may already hold, and resumable checkpoints inside it.

A checkpoint (`<out>/checkpoints/step-000050/`) holds what is needed to continue exactly where
the run was: the trainable weights, the optimizer and scheduler state, each process's random
number generator state and the step reached. It is written to a hidden temp folder and renamed
into place, so a kill -9 leaves either the whole checkpoint or none. The data order is not saved:
it is recomputed from the seed.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from selfdistill.errors import SelfDistillError

CONFIG_FILE = "train_config.json"  # written when a run starts: marks the folder as a selfdistill run
SUMMARY_FILE = "train_summary.json"  # written last: marks the run as finished
LOG_FILE = "train_log.jsonl"
CHECKPOINTS = "checkpoints"


@dataclass
class RunDirectory:
    path: Path

    @property
    def finished(self) -> bool:
        return (self.path / SUMMARY_FILE).is_file()

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        folder = self.path / CHECKPOINTS
        found = folder.glob("step-*") if folder.is_dir() else []
        return sorted((p for p in found if (p / "state.json").is_file()), key=lambda p: p.name)

    def prepare(self, *, resume: bool, overwrite: bool, identity: dict) -> Path | None:
        """Check what the folder holds against the flags; returns the checkpoint to resume from, if any.

        A finished run is never replaced without --overwrite, an unfinished one never restarted
        without --resume or --overwrite, and a folder holding anything else is never touched.
        """
        if not self.path.exists() or not any(self.path.iterdir()):
            return None
        if not self.path.is_dir():
            raise SelfDistillError(f"--out {self.path} is a file, not a directory")
        if not (self.path / CONFIG_FILE).is_file():
            raise SelfDistillError(f"--out {self.path} is not empty and holds no selfdistill training run; "
                                   "choose an empty or new directory")  # fmt: skip
        if overwrite:
            return None  # the caller clears the folder (on the main process only)
        latest = (self.checkpoints() or [None])[-1]
        if self.finished:
            raise SelfDistillError(f"--out {self.path} already holds a finished run; pass --overwrite to replace "
                                   "it or choose another directory")  # fmt: skip
        if not resume:
            where = f"its last checkpoint is {latest.name}" if latest else "it has no checkpoint yet"
            raise SelfDistillError(f"--out {self.path} holds an unfinished run ({where}); pass --resume to continue "
                                   "it or --overwrite to start over")  # fmt: skip
        saved = json.loads((self.path / CONFIG_FILE).read_text(encoding="utf-8")).get("identity")
        if saved != identity:
            changed = sorted(k for k in set(saved or {}) | set(identity) if (saved or {}).get(k) != identity.get(k))
            raise SelfDistillError(f"cannot resume {self.path}: these options differ from the run's: "
                                   f"{', '.join(changed)}; use the original values or --overwrite")  # fmt: skip
        return latest

    def clear(self) -> None:
        shutil.rmtree(self.path)


def save_checkpoint(run: RunDirectory, step: int, state: dict, accelerator, keep: int) -> Path:
    """Write checkpoint `step` atomically from every process; keep the newest `keep`."""
    final = run.path / CHECKPOINTS / f"step-{step:06d}"
    staging = run.path / CHECKPOINTS / f".staging-step-{step:06d}"
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save(_rng_state(), staging / f"rng-{accelerator.process_index}.pt")
    trainable = state.pop("trainable")
    if accelerator.is_main_process:
        from safetensors.torch import save_file

        save_file({name: tensor.detach().cpu().contiguous() for name, tensor in trainable.items()},
                  str(staging / "trainable.safetensors"))  # fmt: skip
        torch.save({"optimizer": state.pop("optimizer"), "scheduler": state.pop("scheduler")}, staging / "optim.pt")
        (staging / "state.json").write_text(json.dumps({"step": step, **state}, indent=2), encoding="utf-8")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        for old in run.checkpoints()[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(path: Path, process_index: int) -> dict:
    """The checkpoint's trainable tensors, optimizer/scheduler state and progress; restores the RNG."""
    from safetensors.torch import load_file

    state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    optim = torch.load(path / "optim.pt", weights_only=False)
    rng_file = path / f"rng-{process_index}.pt"
    if not rng_file.is_file():
        raise SelfDistillError(f"checkpoint {path} was written by fewer processes; resume with the same number")
    _set_rng_state(torch.load(rng_file, weights_only=False))
    return {"trainable": load_file(str(path / "trainable.safetensors")), **optim, **state}


def _rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
