"""Experiments: one command that builds, trains, evaluates and reports a comparison of methods."""

from selfdistill.experiments.compare import CompareReport, plan_variants, run_compare
from selfdistill.experiments.config import ExperimentConfig, load_experiment

__all__ = ["CompareReport", "ExperimentConfig", "load_experiment", "plan_variants", "run_compare"]
