"""The models an evaluation compares: the seed, and each fine-tuned run on the same base weights.

A LoRA run folder is merged into a copy of the already loaded seed (no second load from disk);
a full fine-tuning folder is loaded as a model. Each gets a fingerprint of its own (the seed's
plus the adapter file's digest), so the completion cache never mixes their outputs.
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
    yield EvalModel("seed", make_backend(backend, (seed, tokenizer), precision=precision), tokenizer)
    for label, folder in zip(_labels(adapters), adapters):
        model = _fine_tuned(seed, Path(folder))
        yield EvalModel(label, make_backend(backend, (model, tokenizer), precision=precision), tokenizer, folder)


def _fine_tuned(seed, folder: Path):
    if not folder.is_dir():
        raise SelfDistillError(f"--adapter {folder}: no such directory")
    if (folder / "adapter_config.json").is_file():
        from selfdistill.training.adapters import load_adapter

        weights = folder / "adapter_model.safetensors"
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16] if weights.is_file() else "none"
        try:
            model = load_adapter(copy.deepcopy(seed), folder).merge_and_unload()
        except (RuntimeError, ValueError, KeyError) as err:
            raise SelfDistillError(f"--adapter {folder} does not fit the seed model: "
                                   f"{str(err).strip().splitlines()[0]}") from err  # fmt: skip
        seed_source = seed.selfdistill_source
        model.selfdistill_source = ModelSource(str(folder), str(folder), f"{seed_source.fingerprint}+lora:{digest}")
        return model
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
