"""The Python API: the same operations as the CLI, taking the same options as keyword arguments.

    from selfdistill import distill, generate, train
    rows = generate(["Name three primes."], max_new_tokens=32)
    summary = distill("train.json", out="distilled.jsonl", recipe="gsm8k")
    run = train("distilled.jsonl", out="runs/sdft", recipe="gsm8k")
    report = evaluate(["safety", "shift"], out="runs/eval", adapter=("runs/sdft",))
    result = compare("configs/gsm8k-cpu.yaml", limit=50, train={"epochs": 1})
"""

from __future__ import annotations

from collections.abc import Sequence

from selfdistill.data import Example
from selfdistill.generation.run import GenerateConfig, run_generate
from selfdistill.methods.build import BuildSummary


def generate(prompts: str | Sequence[str], **options) -> list[dict]:
    """Complete `prompts` (a prompt file / dataset, or a list of instructions) and return one row each.

    `options` are `GenerateConfig` fields (model, template, style, max_new_tokens, temperature,
    top_p, stop, seed, batch_size, precision, cache, out, ...). With `out=PATH` the rows are also
    written there as JSONL.
    """
    if isinstance(prompts, str):
        return run_generate(GenerateConfig(prompts=prompts, **options)).rows
    examples = [Example(id=str(i), instruction=text) for i, text in enumerate(prompts)]
    return run_generate(GenerateConfig(prompts="<in memory>", **options), examples=examples).rows


def distill(data: str, *, out: str, **options) -> BuildSummary:
    """SDFT: write `out` with each gold response rewritten by the seed model where the rewrite checks out.

    `options` are `DistillConfig` fields (model, recipe, template, checker, mix_ratio, limit, ...).
    """
    from selfdistill.methods.sdft import DistillConfig, run_distill

    return run_distill(DistillConfig(data=data, out=out, **options))


def select(data: str, *, out: str, **options) -> BuildSummary:
    """S3FT: write `out` with the model's own answer, a judged paraphrase, or the gold as each target.

    `options` are `SelectConfig` fields (model, recipe, judge, limit, ...).
    """
    from selfdistill.methods.s3ft import SelectConfig, run_select

    return run_select(SelectConfig(data=data, out=out, **options))


def train(data: str, *, out: str, **options):
    """Fine-tune the seed model on `data` (LoRA by default, `full=True` for every weight); returns a `TrainSummary`.

    `options` are `TrainConfig` fields (model, recipe, lora_r, lr, epochs, max_steps, batch_size, ...).
    """
    from selfdistill.training import TrainConfig, run_train

    return run_train(TrainConfig(data=data, out=out, **options))


def evaluate(suites: str | Sequence[str], *, out: str, **options):
    """Run evaluation suites on the seed and on each fine-tuned run; returns an `EvalReport`.

    `options` are `EvalConfig` fields (model, adapter=(run folders...), data, limit, judge_model, ...).
    """
    from selfdistill.evaluation.run import EvalConfig, run_eval

    suites = (suites,) if isinstance(suites, str) else tuple(suites)
    return run_eval(EvalConfig(suite=suites, out=out, **options))


def compare(config: str | None = None, **options):
    """Run an experiment (seed vs vanilla FT vs SDFT vs S3FT, evaluated alike) and write its report.

    `config` is an experiment YAML file; `options` are `ExperimentConfig` fields and override it
    (a section such as `train={"epochs": 1}` overrides single keys of the file's section). Stages
    already done with the same inputs are skipped. Returns a `CompareReport` (`.results` is what
    results.json holds, `.report_files` the files written).
    """
    from selfdistill.experiments import load_experiment, run_compare

    return run_compare(load_experiment(config, **options))
