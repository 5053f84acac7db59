"""Model resolution and loading: embedded GGUF models, local directories, Hub ids."""

from selfdistill.models.embedded import EMBEDDED_MODELS
from selfdistill.models.loading import (
    DEFAULT_MODEL,
    ModelSource,
    load_model,
    load_tokenizer,
    resolve_model,
)

__all__ = ["DEFAULT_MODEL", "EMBEDDED_MODELS", "ModelSource", "load_model", "load_tokenizer", "resolve_model"]
