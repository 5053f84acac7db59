"""`ExperimentConfig`: one comparison of fine-tuning methods, as a YAML file or keyword arguments.

    out: runs/gsm8k-cpu
    model: smollm2-135m-instruct
    data: ../shared/data/gsm8k_train.json
    recipe: gsm8k
    limit: 200
    methods: [vanilla, sdft, s3ft]
    suites: [math, safety, shift]
    eval_data: {math: ../shared/data/gsm8k_test.json}
    train: {epochs: 2, lr: 1.0e-4}        # any `selfdistill train` option
    distill: {max_new_tokens: 512}        # any `selfdistill distill` option
    select: {}                            # any `selfdistill select` option
    eval: {limit: 100}                    # any `selfdistill eval` option
    sweep: {mix_ratio: [0.0, 0.5, 1.0], train_size: [50, 100], distill_template: [using, refer]}

Top-level keys are shared: every stage uses the same model, task data, seed, precision and
generation backend, and every method is trained with the same `train` options. Each section takes
the options of the command it configures, except those the experiment sets itself (`SHARED` plus
data and output paths). Relative paths are relative to the working directory, as on the command line.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from selfdistill.data.options import DatasetOptions
from selfdistill.errors import SelfDistillError
from selfdistill.evaluation.run import EvalConfig
from selfdistill.evaluation.suites import SUITES
from selfdistill.generation.options import BackendOptions
from selfdistill.methods.s3ft import SelectConfig
from selfdistill.methods.sdft import DistillConfig
from selfdistill.models import DEFAULT_MODEL
from selfdistill.training import TrainConfig

METHODS = ("vanilla", "sdft", "s3ft")
# The suite that measures the target task, by the recipe's task; open-ended tasks are judged pairwise.
TARGET_SUITES = {"math": "math", "functions": "functions", "code": "code"}
DEFAULT_TARGET_SUITE = "helpfulness"
# Options every stage takes from the experiment's top level, never from a section.
GENERATION_SHARED = ("model", "seed", "backend", *(f.name for f in fields(BackendOptions) if f.name != "backend"),
                     "cache", "cache_path")  # fmt: skip
SHARED = ("recipe", "columns", "split", "dataset_config", *GENERATION_SHARED)
# section -> (the command's config class, its options the experiment sets per stage)
SECTIONS = {
    "train": (TrainConfig, ("data", "out", "limit", "resume", "overwrite")),
    "distill": (DistillConfig, ("data", "out", "limit", "shard")),
    "select": (SelectConfig, ("data", "out", "limit", "shard")),
    "eval": (EvalConfig, ("data", "out", "suite", "adapter", "shard")),
}


@dataclass(kw_only=True)
class SweepOptions:
    mix_ratio: tuple[float, ...] = field(default=(), metadata={"help": "SDFT mix ratio to train and evaluate at "
                                         "(share of rows distilled; the paper's Figures 5-6)."})
    train_size: tuple[int, ...] = field(default=(), metadata={"help": "Training-set size (first N rows) to train "
                                        "every method at (the paper's Figures 7-8)."})
    distill_template: tuple[str, ...] = field(default=(), metadata={"help": "SDFT distillation template to compare "
                                              "(e.g. using and refer, the paper's Table 4)."})

    def __post_init__(self):
        # a value given twice is one sweep point
        self.mix_ratio = tuple(dict.fromkeys(float(r) for r in _sequence(self.mix_ratio)))
        self.train_size = tuple(dict.fromkeys(int(n) for n in _sequence(self.train_size)))
        self.distill_template = tuple(dict.fromkeys(str(t) for t in _sequence(self.distill_template)))
        for ratio in self.mix_ratio:
            if not 0.0 <= ratio <= 1.0:
                raise SelfDistillError(f"sweep.mix_ratio: {ratio} is not between 0 and 1")
        for size in self.train_size:
            if size < 1:
                raise SelfDistillError(f"sweep.train_size: {size} is not >= 1")


@dataclass(kw_only=True)
class ExperimentConfig(DatasetOptions, BackendOptions):
    out: str = field(metadata={"help": "Output folder: built data, runs, evaluations, stages.json and the report."})
    data: str = field(metadata={"help": "Task dataset with gold responses: a file, a recipe name or a Hub id."})
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "Seed model: embedded model name, local .gguf, "
                                                                "local HF directory or hub id."})
    methods: tuple[str, ...] = field(default=METHODS, metadata={"help": "Fine-tuning method to compare ("
                                     f"{', '.join(METHODS)}); the seed is always evaluated."})
    suites: tuple[str, ...] = field(default=(), metadata={"help": "Evaluation suite run on every model (default: "
                                    "the target suite, safety and shift)."})
    target_suite: str | None = field(default=None, metadata={"help": "The suite measuring the task trained on "
                                     "(default: from the recipe's task: math, functions, code, else helpfulness)."})
    eval_data: tuple[str, ...] = field(default=(), metadata={"help": "SUITE=PATH: a suite's data instead of its "
                                       "default set, e.g. math=gsm8k_test.json."})
    seed: int = field(default=0, metadata={"help": "Seed for every stage (row choice, sampling, LoRA init, order)."})
    cache: bool = field(default=True, metadata={"help": "Reuse and store completions in the on-disk cache."})
    cache_path: str | None = field(default=None, metadata={"help": "Completion cache file (default: <user "
                                   "cache>/generations.sqlite)."})
    train: dict = field(default_factory=dict, metadata={"section": True})
    distill: dict = field(default_factory=dict, metadata={"section": True})
    select: dict = field(default_factory=dict, metadata={"section": True})
    eval: dict = field(default_factory=dict, metadata={"section": True})
    sweep: SweepOptions | dict = field(default_factory=SweepOptions, metadata={"section": True})

    def __post_init__(self):
        DatasetOptions.__post_init__(self)
        BackendOptions.__post_init__(self)
        self.methods = _names(self.methods, METHODS, "methods")
        if not self.methods:
            raise SelfDistillError(f"methods: name at least one of {', '.join(METHODS)}")
        self.eval_data = tuple(f"{suite}={path}" for suite, path in _suite_data(self.eval_data).items())
        for section in SECTIONS:
            setattr(self, section, _section(section, getattr(self, section) or {}))
        self.sweep = self.sweep if self.sweep is not None else SweepOptions()
        if isinstance(self.sweep, dict):
            _check_keys("sweep", self.sweep, [f.name for f in fields(SweepOptions)])
            self.sweep = SweepOptions(**self.sweep)
        if (self.sweep.mix_ratio or self.sweep.distill_template) and "sdft" not in self.methods:
            raise SelfDistillError("sweep.mix_ratio and sweep.distill_template vary SDFT: add sdft to methods")
        self.target_suite = self.target_suite or self._default_target_suite()
        _names((self.target_suite,), tuple(SUITES), "target_suite")
        suites = _names(self.suites, tuple(SUITES), "suites") or (self.target_suite, "safety", "shift")
        self.suites = tuple(dict.fromkeys((self.target_suite, *suites)))
        for suite in self.suite_data:
            if suite not in self.suites:
                raise SelfDistillError(f"eval_data names suite '{suite}', which is not among suites "
                                       f"({', '.join(self.suites)})")  # fmt: skip
        # every stage's options are checked now, before anything runs
        self.train_config(self.data, "<out>")
        self.distill_config("<out>")
        self.select_config("<out>")
        for suite in self.suites:
            self.eval_config(suite, "<out>")
        from selfdistill.prompts import get_template

        for template in self.sweep.distill_template:
            get_template(template)
        from selfdistill.experiments.compare import plan_variants

        plan_variants(self)  # sweep points must have distinct names

    @property
    def suite_data(self) -> dict[str, str]:
        return _suite_data(self.eval_data)

    def shared(self, *names: str) -> dict:
        return {name: getattr(self, name) for name in names}

    def train_config(self, data: str, out: str, limit: int | None = None, **stage) -> TrainConfig:
        shared = self.shared("model", "recipe", "columns", "split", "dataset_config", "seed", "precision")
        return TrainConfig(data=data, out=out, limit=limit, **shared, **self.train, **stage)

    def distill_config(self, out: str, **overrides) -> DistillConfig:
        return DistillConfig(data=self.data, out=out, limit=self.limit, **self.shared(*SHARED),
                             **{**self.distill, **overrides})  # fmt: skip

    def select_config(self, out: str) -> SelectConfig:
        return SelectConfig(data=self.data, out=out, limit=self.limit, **self.shared(*SHARED), **self.select)

    def eval_config(self, suite: str, out: str) -> EvalConfig:
        shared = self.shared(*GENERATION_SHARED)
        return EvalConfig(suite=(suite,), out=out, data=self.suite_data.get(suite), **shared, **self.eval)

    def to_dict(self) -> dict:
        return asdict(self)

    def _default_target_suite(self) -> str:
        from selfdistill.data import get_recipe

        task = get_recipe(self.recipe).task if self.recipe else None
        return TARGET_SUITES.get(task, DEFAULT_TARGET_SUITE)


def load_experiment(path: str | Path | None = None, **overrides) -> ExperimentConfig:
    """The experiment in YAML file `path` (if any) with `overrides` on top; a section's overrides
    replace single keys of that section, not the whole section."""
    values: dict = {}
    if path is not None:
        values = _read_yaml(Path(path))
    if "eval_data" in values:
        values["eval_data"] = _suite_data(values["eval_data"])
    if "eval_data" in overrides:  # flags give SUITE=PATH items; they replace single suites, as section keys do
        overrides = {**overrides, "eval_data": _suite_data(overrides["eval_data"])}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    _check_keys(str(path or "experiment"), values, [f.name for f in fields(ExperimentConfig)])
    for required in ("out", "data"):
        if values.get(required) in (None, ""):
            raise SelfDistillError(f"{path or 'experiment'}: '{required}' is required (in the file or as --{required})")
    return ExperimentConfig(**values)


def _yaml_loader():
    """PyYAML's safe loader, reading `1e-4` and `5e-05` as numbers (YAML 1.2; PyYAML's 1.1 needs a dot)."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    number = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", number, list("-+0123456789."))
    return Loader


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        values = yaml.load(path.read_text(encoding="utf-8"), Loader=_yaml_loader())  # noqa: S506 (a safe loader)
    except FileNotFoundError:
        raise SelfDistillError(f"--config {path}: no such file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise SelfDistillError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise SelfDistillError(f"{path}: expected a mapping of options, got {type(values).__name__}")
    return values


def _suite_data(items) -> dict[str, str]:
    """`{suite: path}` from a mapping or from SUITE=PATH items."""
    if isinstance(items, dict):
        return {str(k): str(v) for k, v in items.items()}
    data = {}
    for item in _sequence(items):
        suite, sep, path = str(item).partition("=")
        if not sep or not suite.strip() or not path.strip():
            raise SelfDistillError(f"eval_data: expected SUITE=PATH, got '{item}'")
        data[suite.strip()] = path.strip()
    return data


def _section(name: str, values) -> dict:
    if not isinstance(values, dict):
        raise SelfDistillError(f"{name}: expected a mapping of options, got {type(values).__name__}")
    config_class, set_per_stage = SECTIONS[name]
    allowed = [f.name for f in fields(config_class) if f.name not in SHARED + set_per_stage]
    _check_keys(name, values, allowed, fixed=SHARED + set_per_stage)
    # YAML and flags give lists; the configs take tuples for repeatable options
    return {key: tuple(value) if isinstance(value, list) else value for key, value in values.items()}


def _check_keys(where: str, values: dict, allowed: list[str], fixed: tuple[str, ...] = ()) -> None:
    for key in values:
        if key in fixed:
            raise SelfDistillError(f"{where}.{key}: not a section option: the experiment sets it for every stage "
                                   "(top-level keys; eval_data for a suite's data) or per stage (data, out, limit)")  # fmt: skip
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise SelfDistillError(f"{where}: unknown option '{key}'{hint}")


def _names(values, allowed: tuple[str, ...], where: str) -> tuple[str, ...]:
    values = tuple(_sequence(values))
    for value in values:
        if value not in allowed:
            close = difflib.get_close_matches(str(value), allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise SelfDistillError(f"{where}: unknown name '{value}'{hint}; available: {', '.join(allowed)}")
    return tuple(dict.fromkeys(values))


def _sequence(value):
    """A single value (Python API, YAML scalar) is one item, not a sequence of characters."""
    if value is None:
        return ()
    if isinstance(value, (str, int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return (value,)
    return tuple(value)
