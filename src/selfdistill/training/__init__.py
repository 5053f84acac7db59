"""Fine-tuning: completion-only supervised training of the seed model, LoRA or full, and parameter shift."""

from selfdistill.training.config import TrainConfig
from selfdistill.training.trainer import TrainSummary, run_train

__all__ = ["TrainConfig", "TrainSummary", "run_train"]
