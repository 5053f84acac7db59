"""`selfdistill compare`: seed vs vanilla FT vs SDFT vs S3FT on one task, evaluated alike, with a report.

    report = run_compare(load_experiment("configs/gsm8k-cpu.yaml"))

Stages, each skipped when `stages.json` records it done with the same inputs (see `stages.py`):
  1. build   SDFT and S3FT training sets from the task data      -> <out>/data/<name>.jsonl
  2. train   one run per method (and sweep point), same options   -> <out>/runs/<name>/
  3. gap     each training set's NLL under the seed               -> <out>/gap.json
  4. eval    every suite on the seed and on every run             -> <out>/eval/<model>/<suite>.*
  5. report  results.json, report.md, report.html                 -> <out>/
Vanilla FT trains on the task data as given; a sweep adds variants (an SDFT mix ratio, a training
set size for every method, a distillation template), and variants with the same inputs share
one build and one run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfdistill.errors import SelfDistillError
from selfdistill.experiments.config import ExperimentConfig
from selfdistill.experiments.stages import StageLog, content_digest, digest
from selfdistill.generation.options import SPEED_OPTIONS
from selfdistill.progress import console

BUILD_SETTINGS_IGNORED = ("out", "cache", "cache_path", "chunk_size", "format", "batch_size", *SPEED_OPTIONS)


@dataclass
class Variant:
    """One model to train: a method, its training-set options, and the sweep point it stands for."""

    label: str
    method: str  # vanilla | sdft | s3ft
    build: dict = field(default_factory=dict)  # SDFT option overrides (mix_ratio, template)
    train_size: int | None = None
    axis: str | None = None  # the sweep this variant is a point of (None: the main comparison)
    value: Any = None
    data: str = ""  # its training set (set by the build stage)
    run: str = ""  # its run folder's name (variants with equal inputs share one)


def plan_variants(config: ExperimentConfig) -> list[Variant]:
    variants = [Variant(method, method) for method in config.methods]
    for ratio in config.sweep.mix_ratio:
        variants.append(Variant(f"sdft-mix{ratio:g}", "sdft", {"mix_ratio": ratio}, axis="mix_ratio", value=ratio))
    for size in config.sweep.train_size:
        variants += [Variant(f"{m}-n{size}", m, train_size=size, axis="train_size", value=size) for m in config.methods]
    for template in config.sweep.distill_template:
        name = Path(template).stem if ("/" in template or template.endswith(".txt")) else template
        variants.append(Variant(f"sdft-{name}", "sdft", {"template": template}, axis="distill_template", value=name))
    labels = [v.label for v in variants]
    if len(set(labels)) < len(labels):
        twice = sorted({label for label in labels if labels.count(label) > 1})
        raise SelfDistillError(f"sweep: two sweep points would both be named {', '.join(twice)}; give template "
                               "files distinct names")  # fmt: skip
    return variants


@dataclass
class CompareReport:
    config: ExperimentConfig
    variants: list[Variant]
    results: dict  # what results.json holds
    seconds: float
    ran: list[str]  # stages run this time (the rest were done already)
    report_files: list[Path]


def run_compare(config: ExperimentConfig) -> CompareReport:
    from selfdistill.io import write_json_atomic
    from selfdistill.models import resolve_model
    from selfdistill.reporting import write_report

    started = time.perf_counter()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(config.to_dict(), out / "experiment.json")
    stages = StageLog(out)
    runner = _Runner(config, out, stages, resolve_model(config.model).fingerprint)
    variants = plan_variants(config)
    runner.build(variants)
    runner.train(variants)
    runner.gap([v for v in variants if v.axis is None])
    runner.evaluate(variants)
    results, files = write_report(config, variants, out)
    return CompareReport(config, variants, results, time.perf_counter() - started, runner.ran, files)


class _Runner:
    def __init__(self, config: ExperimentConfig, out: Path, stages: StageLog, fingerprint: str):
        self.config, self.out, self.stages, self.fingerprint = config, out, stages, fingerprint
        self.data_digest = content_digest(config.data)
        self.ran: list[str] = []
        self.train_keys: dict[str, str] = {}  # run name -> what identifies its weights (an eval input)
        self._backend = None

    def _stage(self, name: str, key: str, outputs: list[Path], work, *, rerun: bool = False) -> None:
        """Run `work` unless the stage is done with these inputs; `rerun` runs a done stage again."""
        if self.stages.done(name, key, *outputs):
            if rerun:
                work()  # a reference for later stages; its generations come from the cache
            else:
                console.print(f"[dim]{name}: done already[/dim]")
            return
        console.rule(f"[bold]{name}")
        self.stages.start(name, key)
        started = time.perf_counter()
        work()
        self.stages.finish(name, key, time.perf_counter() - started)
        self.ran.append(name)

    # 1. build ----------------------------------------------------------------------------------
    def build(self, variants: list[Variant]) -> None:
        from selfdistill.methods.s3ft import run_select
        from selfdistill.methods.sdft import run_distill

        built: dict[str, str] = {}  # stage key -> data file
        for variant in variants:
            if variant.method == "vanilla":
                variant.data = self.config.data
                continue
            name = variant.method if not variant.build else variant.label
            path = self.out / "data" / f"{name}.jsonl"
            if variant.method == "sdft":
                options = self.config.distill_config(str(path), **variant.build)
                run = run_distill
            else:
                options = self.config.select_config(str(path))
                run = run_select
            settings = {k: v for k, v in vars(options).items() if k not in BUILD_SETTINGS_IGNORED}
            if variant.method == "sdft":  # by the template's text: a default, an alias or an edited file
                settings["template"] = vars(self._distill_template(options.template))
            key = digest("build", variant.method, settings, self.data_digest, self.fingerprint)
            if key not in built:
                self._stage(f"build/{name}", key, [path, options.summary_path],
                            lambda run=run, options=options: _complete_build(run, options, self._generation_backend()))  # fmt: skip
                built[key] = str(path)
            variant.data = built[key]
        if self._backend is not None:  # training loads its own copy; this one is freed first
            import gc

            import torch

            self._backend = None
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _distill_template(self, name: str | None):
        from selfdistill.data import get_recipe
        from selfdistill.prompts import get_template

        recipe = get_recipe(self.config.recipe) if self.config.recipe else None
        return get_template(name or (recipe.distill_template if recipe else "refer"))

    def _generation_backend(self):
        if self._backend is None:  # one load serves every builder
            self._backend = self.config.distill_config("<out>").make_backend()
        return self._backend

    # 2. train ----------------------------------------------------------------------------------
    def train(self, variants: list[Variant]) -> None:
        runs: dict[str, str] = {}  # stage key -> run name
        rows = self._task_rows() if any(v.train_size for v in variants) else None
        for variant in variants:
            # every training set holds the experiment's rows (the task data under its `limit`); a
            # train_size of at least that many is the whole set, so it shares the main run
            limit = variant.train_size if variant.train_size and variant.train_size < rows else None
            if variant.train_size and limit is None:
                variant.value = rows  # the sweep point is the whole set
            if variant.method == "vanilla" and limit is None:
                limit = self.config.limit
            probe = self.config.train_config(variant.data, "<out>", limit)
            key = digest("train", probe.identity(), content_digest(variant.data), self.fingerprint)
            if key not in runs:
                runs[key] = variant.label
                folder = self.out / "runs" / variant.label
                self._stage(f"train/{variant.label}", key, [folder / "train_summary.json"],
                            lambda config=probe, folder=folder: self._train_into(config, folder))  # fmt: skip
            variant.run = runs[key]
            # a retrained run (even with the same inputs) gets evaluated again: its summary is new
            summary = self.out / "runs" / variant.run / "train_summary.json"
            self.train_keys[variant.run] = digest(key, content_digest(str(summary)))

    def _train_into(self, config, folder: Path) -> None:
        """Resume an unfinished run of the same options in `folder`, else start over (replacing
        whatever run is there: the stage log says it is not this one)."""
        import dataclasses
        import json

        from selfdistill.training import run_train
        from selfdistill.training.checkpoint import CONFIG_FILE, RunDirectory

        run, saved = RunDirectory(folder), folder / CONFIG_FILE
        identity = json.loads(saved.read_text(encoding="utf-8")).get("identity", {}) if saved.is_file() else None
        # the saved identity holds the seed's fingerprint as "model" (the trainer checks it on resume)
        same = identity is not None and all(identity.get(k) == v for k, v in config.identity().items() if k != "model")
        if same and run.finished:
            return  # killed after training finished, before the stage was logged
        run_train(dataclasses.replace(config, out=str(folder), resume=same, overwrite=not same and folder.is_dir()))

    def _task_rows(self) -> int:
        """Rows of the task data every method trains on (the experiment's `limit` of them at most)."""
        return len(self.config.load(self.config.data, require_response=True).examples)

    # 3. gap ------------------------------------------------------------------------------------
    def gap(self, variants: list[Variant]) -> None:
        from selfdistill.evaluation.gap import GapConfig, measure_gap, plot_gap

        sources = list(dict.fromkeys([self.config.data, *(v.data for v in variants)]))  # the gold set first
        train = self.config.train_config(self.config.data, "<out>")
        options = GapConfig(data=tuple(sources), model=self.config.model, recipe=self.config.recipe,
                            columns=self.config.columns, split=self.config.split,
                            dataset_config=self.config.dataset_config, limit=self.config.limit,
                            template=train.template, style=train.style, max_length=train.max_length,
                            out=str(self.out / "gap.json"))  # fmt: skip
        settings = {k: v for k, v in vars(options).items() if k not in ("out", "batch_size", "plot")}
        key = digest("gap", settings, [content_digest(s) for s in sources], self.fingerprint)

        def work():
            report = measure_gap(options)
            plot_gap(report, self.out / "report" / "gap.png")

        self._stage("gap", key, [self.out / "gap.json", self.out / "report" / "gap.png"], work)

    # 4. eval -----------------------------------------------------------------------------------
    def evaluate(self, variants: list[Variant]) -> None:
        from selfdistill.evaluation.models import eval_models
        from selfdistill.evaluation.run import eval_context, prepare_suite, read_suite_result, run_suite
        from selfdistill.evaluation.suites import get_suite

        folder = self.out / "eval"
        model_keys = {"seed": self.fingerprint, **self.train_keys}
        configs = {suite: self.config.eval_config(suite, str(folder)) for suite in self.config.suites}
        keys = {}
        specific = {name for suite in configs for name in get_suite(suite).reads}
        for suite, options in configs.items():
            # a suite's results depend on the shared options and its own, not on other suites' options
            ignored = {"out", "cache", "cache_path", "batch_size", *SPEED_OPTIONS, *(specific - set(get_suite(suite).reads))}
            settings = {k: v for k, v in vars(options).items() if k not in ignored}
            data = content_digest(options.data) if options.data else None
            for label, model_key in model_keys.items():
                keys[label, suite] = digest("eval", suite, settings, data, model_key)
        outputs = {pair: [folder / pair[0] / f"{pair[1]}.metrics.json"] for pair in keys}
        pending = [pair for pair in keys if not self.stages.done(f"eval/{pair[0]}/{pair[1]}", keys[pair], *outputs[pair])]
        if not pending:
            console.print("[dim]eval: every model and suite done already[/dim]")
        else:
            suites_needed = list(dict.fromkeys(suite for _, suite in pending))
            prepared = {suite: prepare_suite(suite, configs[suite]) for suite in suites_needed}
            # Suites that compare runs with the seed's outputs (shift, helpfulness) run the seed again
            # when a run needs them; its generations come back from the completion cache.
            seed_suites = {suite for suite in suites_needed
                           if ("seed", suite) in pending or prepared[suite][0].compares_with_seed}  # fmt: skip
            runs = list(dict.fromkeys(label for label, _ in pending if label != "seed"))
            first = configs[suites_needed[0]]
            cache = first.open_cache()
            try:
                context = eval_context(first, cache)
                adapters = tuple(str(self.out / "runs" / run) for run in runs)
                for model in eval_models(self.config.model, adapters, first):
                    for suite in suites_needed:
                        pair = (model.label, suite)
                        if pair not in pending and not (model.label == "seed" and suite in seed_suites):
                            continue
                        self._stage(f"eval/{model.label}/{suite}", keys[pair], outputs[pair],
                                    lambda s=suite, m=model: run_suite(*prepared[s], m, context, folder),
                                    rerun=model.label == "seed")  # fmt: skip
            finally:
                if cache is not None:
                    cache.close()
            for suite in suites_needed:  # figures across every model, including earlier sessions'
                labels = [label for label in model_keys if (folder / label / f"{suite}.metrics.json").is_file()]
                prepared[suite][0].finish([read_suite_result(folder, label, suite) for label in labels], folder)


def _complete_build(run, options, backend):
    """A build whose generation requests all succeeded; else the stage fails (a rerun retries them)."""
    from selfdistill.generation.engine import GenerationFailed

    summary = run(options, backend)
    if summary.request_errors:
        raise GenerationFailed(summary.request_errors, summary.rows)
    return summary
