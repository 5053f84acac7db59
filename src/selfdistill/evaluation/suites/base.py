"""The suite interface: what one evaluation suite reads, asks a model, and scores.

A suite turns examples into prompts, has each model complete them through the shared generation
engine (so its cache makes an interrupted evaluation resume), scores every completion, and returns
per-sample predictions plus metrics with 95% confidence intervals. Suites register in
`selfdistill.evaluation.suites.SUITES`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from selfdistill.data import Example
from selfdistill.evaluation.stats import Estimate


@dataclass
class EvalModel:
    """One model under evaluation: the seed or a fine-tuned run, ready to generate."""

    label: str  # "seed", or the run folder's name
    backend: Any  # a GenerationBackend
    tokenizer: Any
    folder: str | None = None  # the run folder (None for the seed)
    seed: Any = None  # the seed's weights as loaded (not modified), for comparisons with them


@dataclass
class SuiteResult:
    suite: str
    model: str
    metrics: dict[str, Estimate]
    predictions: list[dict]  # one row per prompt: id, prompt, output, verdict, reason, ...
    failures: dict[str, int] = field(default_factory=dict)  # samples that could not be scored, per reason
    extra: dict[str, Any] = field(default_factory=dict)  # suite-specific figures without an interval
    headline: tuple[str, ...] = ()  # the metrics a summary table shows (empty: all); JSON keeps every one
    data: str = ""  # where the examples came from, with the load summary (set by the runner)

    def to_dict(self) -> dict:
        return {"suite": self.suite, "model": self.model, "data": self.data,
                "metrics": {name: estimate.to_dict() for name, estimate in self.metrics.items()},
                "failures": self.failures, **({"headline": list(self.headline)} if self.headline else {}),
                **self.extra}  # fmt: skip


class Suite(ABC):
    name: str
    description: str
    needs_examples = True  # False for suites whose data another tool reads (lm-eval)
    compares_with_seed = False  # True: a run's `run` needs the seed's `run` first, in the same process
    reads: tuple[str, ...] = ()  # the suite-specific EvalConfig options it uses (judge_model, ...)

    @abstractmethod
    def load(self, data: str | None, options) -> tuple[list[Example], str]:
        """The suite's examples (from `data`, else its default set) and a one-line description of them."""

    @abstractmethod
    def run(self, model: EvalModel, examples: list[Example], context) -> SuiteResult:
        """Generate with `model` and score; `context` carries decoding, cache, batch size and the seed's name."""

    @abstractmethod
    def metrics_from(self, rows: list[dict]) -> dict:
        """The metrics (name -> Estimate) of one model's prediction rows: `run` computes its metrics
        this way, and `selfdistill merge` recomputes them over the rows of every shard."""

    def join(self, parts: list[list[dict]]) -> list[dict]:
        """One model's prediction rows from shards in input order, laid out as one run lays them out."""
        return [row for part in parts for row in part]

    def finish(self, results: list[SuiteResult], out) -> None:
        """After every model ran: figures across models (e.g. plots). Most suites have none."""
