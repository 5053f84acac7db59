"""`selfdistill eval`: the seed and each fine-tuned run, on each suite, with the same data and decoding.

    report = run_eval(EvalConfig(adapter=("runs/vanilla", "runs/sdft"), suite=("math", "safety"), out="runs/eval"))

Writes, per model and suite, `<out>/<model>/<suite>.predictions.jsonl` (one row per prompt: the
prompt, the output, the verdict and its reason) and `<suite>.metrics.json`, and `<out>/results.json`
with every metric. Generation goes through the completion cache, so rerunning an interrupted
evaluation only generates what is missing.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace

from selfdistill.data.options import DatasetOptions
from selfdistill.errors import SelfDistillError
from selfdistill.evaluation.suites import SUITES, SuiteResult, get_suite
from selfdistill.evaluation.suites.safety import GCG_SUFFIX
from selfdistill.generation.options import GenerationOptions
from selfdistill.io import read_jsonl, write_json_atomic, write_jsonl_atomic
from selfdistill.shards import SHARD_FILE, parse_shard, shard_bounds
from selfdistill.versions import package_versions


@dataclass(kw_only=True)
class EvalConfig(DatasetOptions, GenerationOptions):
    out: str = field(metadata={"help": "Output folder: predictions and metrics per model and suite, results.json."})
    suite: tuple[str, ...] = field(default=(), metadata={"help": f"Suite to run ({', '.join(SUITES)})."})
    adapter: tuple[str, ...] = field(default=(), metadata={"help": "A training run folder (LoRA adapter or full "
                                                                   "weights) to evaluate beside the seed."})
    data: str | None = field(default=None, metadata={"help": "Data for the suite instead of its default set (one "
                                                             "suite at a time)."})
    judge_model: str | None = field(default=None, metadata={"help": "Judge of the helpfulness suite: any --model "
                                                                    "value (default: the seed model)."})
    lm_eval_task: tuple[str, ...] = field(default=(), metadata={"help": "lm-eval task of the knowledge suite "
                                          "(default: mmlu, arc_challenge, hellaswag, truthfulqa_mc2, winogrande)."})
    lm_eval_include: str | None = field(default=None, metadata={"help": "Folder of extra lm-eval task YAML files."})
    num_fewshot: int | None = field(default=None, metadata={"help": "Few-shot examples for lm-eval tasks (default: "
                                                                    "the OpenLLM counts; 0 for other tasks)."})
    shard: str | None = field(default=None, metadata={"help": "I/N: evaluate only the I-th of N equal slices of "
                              "each suite's prompts (0-based); join the folders with `selfdistill merge`."})
    jailbreak_suffix: str = field(default=GCG_SUFFIX, metadata={"help": "Adversarial suffix of the safety suite's "
                                  "jailbreak rate (default: Zou et al. 2023's GCG suffix; '' to skip)."})

    def __post_init__(self):
        DatasetOptions.__post_init__(self)
        GenerationOptions.__post_init__(self)
        # a single name (Python API) is one value, not a sequence of characters
        self.suite, self.adapter, self.lm_eval_task = (
            (value,) if isinstance(value, str) else tuple(value) for value in (self.suite, self.adapter, self.lm_eval_task)
        )
        if self.num_fewshot is not None and self.num_fewshot < 0:
            raise SelfDistillError(f"num_fewshot must be >= 0, got {self.num_fewshot}")
        if not self.suite:
            raise SelfDistillError(f"suite: name at least one (--suite NAME; available: {', '.join(SUITES)})")
        for name in self.suite:
            get_suite(name)  # unknown names fail here, before anything loads
        if parse_shard(self.shard) and "knowledge" in self.suite:
            raise SelfDistillError("the knowledge suite runs whole lm-eval tasks: evaluate it without --shard")
        if "knowledge" in self.suite and self.backend != "transformers":
            raise SelfDistillError("the knowledge suite scores log-likelihoods with lm-eval on weights in this "
                                   "process: run it with --backend transformers")  # fmt: skip
        if self.data is not None and len(self.suite) > 1:
            raise SelfDistillError("--data replaces one suite's data; run suites with their own data separately")


@dataclass
class EvalReport:
    config: EvalConfig
    results: list[SuiteResult]
    seconds: float

    def to_dict(self) -> dict:
        return {"config": asdict(self.config), "versions": package_versions(), "seconds": round(self.seconds, 3),
                "results": [result.to_dict() for result in self.results]}  # fmt: skip


def run_eval(config: EvalConfig) -> EvalReport:
    from selfdistill.evaluation.models import eval_models

    started = time.perf_counter()
    suites = [prepare_suite(name, config) for name in config.suite]  # data loads before any model: fails fast
    out = Path(config.out)
    if config.shard:
        suites = _shard_suites(suites, config, out)
    cache = config.open_cache()
    results = []
    try:
        context = eval_context(config, cache)
        for model in eval_models(config.model, config.adapter, config):
            for suite, examples, description in suites:
                results.append(run_suite(suite, examples, description, model, context, out))
    finally:
        if cache is not None:
            cache.close()
    for suite, _, _ in suites:
        suite.finish([r for r in results if r.suite == suite.name], out)
    report = EvalReport(config, results, time.perf_counter() - started)
    write_json_atomic(report.to_dict(), out / "results.json")
    return report



def _shard_suites(suites: list[tuple], config: EvalConfig, out: Path) -> list[tuple]:
    """Each suite's slice of the examples, and `shard.json` recording the slices for `merge`."""
    from selfdistill.evaluation.models import model_labels

    sliced, totals = [], {}
    for suite, examples, description in suites:
        totals[suite.name] = len(examples)
        first, last = shard_bounds(config.shard, len(examples))
        sliced.append((suite, examples[first:last], f"{description}, shard {config.shard}: rows {first}-{last - 1}"))
    index, count = parse_shard(config.shard)
    record = {"index": index, "count": count, "total": totals, "source": config.model, "suites": list(totals),
              "models": model_labels(config.adapter)}  # fmt: skip
    write_json_atomic(record, out / SHARD_FILE)
    return sliced


def prepare_suite(name: str, config: EvalConfig) -> tuple:
    """(suite, its examples, a description of them), for `run_suite`."""
    suite = get_suite(name, config)
    examples, description = suite.load(config.data, config)
    if not examples and suite.needs_examples:
        raise SelfDistillError(f"suite '{name}': no examples in {description}")
    return suite, examples, description


def eval_context(config: EvalConfig, cache) -> SimpleNamespace:
    """What every suite's `run` needs besides the model: decoding, batch size, cache, the seed's name."""
    return SimpleNamespace(decoding=config.decoding, batch_size=config.batch_size, cache=cache, seed_model=config.model)


def run_suite(suite, examples, description: str, model, context, out) -> SuiteResult:
    """Run one suite on one model; write `<out>/<model>/<suite>.predictions.jsonl` and `.metrics.json`."""
    result = suite.run(model, examples, context)
    result.data = description
    write_jsonl_atomic(result.predictions, out / model.label / f"{suite.name}.predictions.jsonl")
    write_json_atomic(result.to_dict(), out / model.label / f"{suite.name}.metrics.json")
    return result


def read_suite_result(out, model: str, suite: str) -> SuiteResult:
    """A result written by `run_suite`, read back (for figures across runs of different sessions)."""
    import json

    from selfdistill.evaluation.stats import Estimate

    folder = Path(out) / model
    saved = json.loads((folder / f"{suite}.metrics.json").read_text(encoding="utf-8"))
    predictions = read_jsonl(folder / f"{suite}.predictions.jsonl")
    metrics = {name: Estimate(m["value"], m["count"], *m["ci95"]) for name, m in saved.pop("metrics").items()}
    known = ("suite", "model", "data", "failures", "headline")
    extra = {key: value for key, value in saved.items() if key not in known}
    return SuiteResult(saved["suite"], saved["model"], metrics, predictions, saved.get("failures", {}), extra,
                       tuple(saved.get("headline", ())), saved.get("data", ""))  # fmt: skip
