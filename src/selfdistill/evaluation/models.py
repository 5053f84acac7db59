"""The models an evaluation compares: the seed, and each fine-tuned run on the same base weights.

A LoRA run folder is attached, unmerged, to a copy of the already loaded seed (no second load
from disk; merged bf16 weights would round small updates away); a full fine-tuning folder is
loaded as a model. Each gets a fingerprint of its own (the seed's plus the digest of the adapter's
config and weights), so the completion cache never mixes their outputs.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

from selfdistill.errors import SelfDistillError
from selfdistill.evaluation.suites.base import EvalModel
from selfdistill.models import ModelSource, load_model


def eval_models(seed_spec: str, adapters: tuple[str, ...], backend: str, precision: str):
    """Yield an `EvalModel` for the seed, then for each run folder; one held in memory at a time."""
    from selfdistill.generation.backends import make_backend

    seed, tokenizer = load_model(seed_spec)
    yield EvalModel("seed", make_backend(backend, (seed, tokenizer), precision=precision), tokenizer, seed=seed)
    for label, folder in zip(_labels(adapters), adapters):
        model = _fine_tuned(seed, Path(folder))
        yield EvalModel(label, make_backend(backend, (model, tokenizer), precision=precision), tokenizer, folder,
                        seed)  # fmt: skip


def _fine_tuned(seed, folder: Path):
    if not folder.is_dir():
        raise SelfDistillError(f"--adapter {folder}: no such directory")
    if (folder / "adapter_config.json").is_file():
        from selfdistill.training.adapters import load_adapter

        weights = [p for p in (folder / "adapter_model.safetensors", folder / "adapter_model.bin") if p.is_file()]
        if not weights:
            raise SelfDistillError(f"--adapter {folder}: adapter_config.json but no adapter_model weights")
        digest = hashlib.sha256((folder / "adapter_config.json").read_bytes() + weights[0].read_bytes())
        try:
            # not merged: in bf16, W + dW would round small updates away; the LoRA path keeps them
            model = load_adapter(copy.deepcopy(seed), folder)
        except (RuntimeError, ValueError, KeyError) as err:
            raise SelfDistillError(f"--adapter {folder} does not fit the seed model: "
                                   f"{str(err).strip().splitlines()[0]}") from err  # fmt: skip
        seed_source = seed.selfdistill_source
        model.selfdistill_source = ModelSource(str(folder), str(folder),
                                               f"{seed_source.fingerprint}+lora:{digest.hexdigest()[:16]}")  # fmt: skip
        return model.eval()
    if (folder / "config.json").is_file():
        return load_model(str(folder), device=str(next(seed.parameters()).device))[0]
    raise SelfDistillError(f"--adapter {folder} holds neither a PEFT adapter nor a model")


def _labels(folders: tuple[str, ...]) -> list[str]:
    """Each run's folder name, made unique (and never "seed")."""
    labels, seen = [], {"seed"}
    for folder in folders:
        base = Path(folder).resolve().name or "run"
        label, n = base, 2
        while label in seen:
            label, n = f"{base}-{n}", n + 1
        seen.add(label)
        labels.append(label)
    return labels
