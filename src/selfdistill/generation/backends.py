"""Registry of generation backends: name -> "module:Class", imported only when used."""

from __future__ import annotations

import difflib
import importlib

from selfdistill.errors import SelfDistillError
from selfdistill.generation.base import GenerationBackend

BACKENDS = {
    "transformers": "selfdistill.generation.transformers_backend:TransformersBackend",
    "vllm": "selfdistill.generation.vllm_backend:VLLMBackend",
    "openai": "selfdistill.generation.openai_backend:OpenAIBackend",
}


def backend_class(name: str) -> type[GenerationBackend]:
    check_backend(name)
    module_name, class_name = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def check_backend(name: str) -> None:
    if name not in BACKENDS:
        close = difflib.get_close_matches(name, BACKENDS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise SelfDistillError(f"unknown generation backend '{name}'{hint}; available: {', '.join(BACKENDS)}")


def make_backend(name: str, model, **options) -> GenerationBackend:
    """Build backend `name` for `model` (a `--model` value, or for transformers a loaded (model,
    tokenizer) pair). `options` may hold every backend's options: each takes its own."""
    chosen = backend_class(name)
    return chosen(model, **{key: value for key, value in options.items() if key in chosen.option_names})
