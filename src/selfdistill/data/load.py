"""The data layer's entry point: a source in, `Example`s and an account of every row out.

`load_examples` accepts a local file or dataset folder, a recipe name (`gsm8k`) or a Hub id
(`owner/name`), tried in that order. Columns come from, in increasing precedence: detection
from the column names, the recipe, the caller's explicit `columns` (merged field by field).
Rows without an instruction, or without a response when responses are required, are skipped and
counted per reason in the `LoadReport`, never dropped silently. Ids must be unique among the
rows kept. `write_examples_jsonl` saves examples so that they load back unchanged.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfdistill.data.example import Example
from selfdistill.data.layouts import (
    COLUMNS_HINT,
    ColumnMap,
    detect_columns,
    row_to_example,
)
from selfdistill.data.readers import SUPPORTED_EXTENSIONS, Table, read_file, read_hub
from selfdistill.data.recipes import Recipe, get_recipe, recipe_names
from selfdistill.errors import SelfDistillError
from selfdistill.io import write_jsonl_atomic

EMPTY_INSTRUCTION = "empty instruction"
EMPTY_RESPONSE = "empty response"
SKIPPED_ROWS_KEPT = 5  # row numbers remembered per skip reason, to show the user where to look
HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


@dataclass
class LoadReport:
    """What happened to every row read from one source."""

    source: str  # the file name, or the Hub id and split
    total_rows: int  # rows read: all of them, unless `limit` stopped reading early
    kept: int
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    skipped_rows: dict[str, list[int]] = field(default_factory=dict)  # reason -> first few row numbers
    layout: str = ""  # how columns were chosen, e.g. "detected alpaca" or "recipe gsm8k"
    columns: dict[str, str] = field(default_factory=dict)  # Example field -> the source column used
    stopped_at_limit: bool = False

    def skip(self, reason: str, row: int) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        rows = self.skipped_rows.setdefault(reason, [])
        if len(rows) < SKIPPED_ROWS_KEPT:
            rows.append(row)

    def summary(self) -> str:
        """One line, e.g. `gsm8k_train.json: 7473 rows, 7473 kept, 0 skipped`."""
        rows = "row" if self.total_rows == 1 else "rows"
        text = f"{self.source}: {self.total_rows} {rows}, {self.kept} kept, {sum(self.skipped.values())} skipped"
        reasons = []
        for reason, count in self.skipped.items():
            shown = self.skipped_rows.get(reason)  # reports built by hand may count without row numbers
            if shown:
                more = ", ..." if count > len(shown) else ""
                label = "row" if count == 1 else "rows"
                reasons.append(f"{reason}: {count}, {label} {', '.join(str(row) for row in shown)}{more}")
            else:
                reasons.append(f"{reason}: {count}")
        if reasons:
            text += f" ({'; '.join(reasons)})"
        if self.stopped_at_limit:
            text += f"; stopped at the limit of {self.kept} examples"
        return text


@dataclass
class LoadedData:
    examples: list[Example]
    report: LoadReport
    recipe: Recipe | None


@dataclass
class ExampleStream:
    """Examples read one at a time; `report` is complete once `examples` is exhausted."""

    examples: Iterator[Example]
    report: LoadReport
    recipe: Recipe | None
    reread: Callable[[], ExampleStream]  # a fresh pass over the same opened source (no second load)


def load_examples(
    source: str | os.PathLike,
    *,
    recipe: str | Recipe | None = None,
    columns: ColumnMap | dict[str, Any] | None = None,
    split: str | None = None,
    config: str | None = None,
    limit: int | None = None,
    require_response: bool = True,
    recipe_columns_optional: bool = False,
) -> LoadedData:
    """Load `source` as a list of `Example`s; `limit` keeps the first N usable rows.

    `split` picks a Hub split (default: the recipe's, else "train") or the key of a .json object
    holding splits; `config` is a Hub config. Pass `require_response=False` for prompt-only
    (evaluation) data. With `recipe_columns_optional`, a source without the recipe's columns (such
    as a `distill`/`select` output in the canonical layout) is read by its own layout, and the
    recipe still names the task (its prompt and judge). `stream_examples` takes the same arguments
    and reads rows lazily.
    """
    stream = stream_examples(
        source, recipe=recipe, columns=columns, split=split, config=config, limit=limit,
        require_response=require_response, recipe_columns_optional=recipe_columns_optional,
    )  # fmt: skip
    return LoadedData(examples=list(stream.examples), report=stream.report, recipe=stream.recipe)


def stream_examples(
    source: str | os.PathLike,
    *,
    recipe: str | Recipe | None = None,
    columns: ColumnMap | dict[str, Any] | None = None,
    split: str | None = None,
    config: str | None = None,
    limit: int | None = None,
    require_response: bool = True,
    recipe_columns_optional: bool = False,
) -> ExampleStream:
    """Like `load_examples`, but rows are read and mapped one at a time as `examples` is iterated.

    The source, its columns and the response column are checked before this returns; errors in
    individual rows (and "no usable rows") surface while iterating.
    """
    if limit is not None and limit < 1:
        raise SelfDistillError(f"limit must be a positive number of examples, got {limit}")
    chosen = get_recipe(recipe) if isinstance(recipe, str) else recipe
    table, dataset_name, chosen = _open_source(os.fspath(source), chosen, split, config)
    # the recipe that maps columns (and extracts answers); `chosen` stays the task either way
    by_recipe = chosen
    if recipe_columns_optional and chosen is not None and not _has_columns(table, chosen, columns):
        by_recipe = None
    column_map, layout = _choose_columns(table, by_recipe, columns)
    if require_response and column_map.response is None and column_map.messages is None:
        raise SelfDistillError(
            f"{table.name}: no response column (columns: {', '.join(table.columns)}); {COLUMNS_HINT}, "
            "or load it as prompt-only data (require_response=False)"
        )

    def fresh_pass() -> ExampleStream:
        report = LoadReport(source=table.name, total_rows=0, kept=0, layout=layout, columns=column_map.mapped())
        examples = _convert(table, column_map, dataset_name, by_recipe, limit, require_response, report)
        return ExampleStream(examples=examples, report=report, recipe=chosen, reread=fresh_pass)

    return fresh_pass()


def write_examples_jsonl(examples: Iterable[Example], path: str | os.PathLike) -> int:
    """Write one example per line, atomically (a temp file beside `path`, then a rename); returns the count."""
    return write_jsonl_atomic((example.to_dict() for example in examples), path)


def _open_source(
    source: str, recipe: Recipe | None, split: str | None, config: str | None
) -> tuple[Table, str, Recipe | None]:
    """The rows of `source`, the name fallback ids start with, and the recipe to use."""
    path = Path(source).expanduser()
    if path.is_file():
        if config is not None:
            raise SelfDistillError(f"{path.name}: config '{config}' applies to Hub datasets, not local files")
        return read_file(path, split=split), path.stem, recipe
    if path.is_dir():  # a dataset folder of data files, read like a Hub repo
        split = split or "train"
        return read_hub(str(path), split=split, config=config, label=path.name), f"{path.name}-{split}", recipe
    if source in recipe_names():
        named = get_recipe(source)
        if named.hub_id is None:
            raise SelfDistillError(
                f"recipe '{source}' has no Hub copy in its layout; pass a local file with recipe='{source}'"
            )
        table, dataset_name = _read_hub_for(named.hub_id, named.name, named, split, config)
        return table, dataset_name, recipe or named
    if _looks_like_path(source):
        raise SelfDistillError(f"{source}: file not found")
    if HUB_ID.fullmatch(source):
        table, dataset_name = _read_hub_for(source, source.rsplit("/", 1)[1], recipe, split, config)
        return table, dataset_name, recipe
    close = difflib.get_close_matches(source, recipe_names(), n=1)
    hint = f" (did you mean recipe '{close[0]}'?)" if close else f" (recipes: {', '.join(recipe_names())})"
    raise SelfDistillError(f"'{source}' is not a local file, a recipe name{hint} or a Hub dataset id (owner/name)")


def _read_hub_for(
    hub_id: str, short_name: str, recipe: Recipe | None, split: str | None, config: str | None
) -> tuple[Table, str]:
    # a recipe's config and file belong to its own Hub repo; a mirror keeps only its split
    own = recipe if recipe is not None and recipe.hub_id == hub_id else None
    split = split or (recipe.split if recipe else "train")
    config = config or (own.hub_config if own else None)
    table = read_hub(hub_id, split=split, config=config, data_file=own.hub_file if own else None)
    return table, f"{short_name}-{split}"


def _looks_like_path(source: str) -> bool:
    return (
        Path(source).suffix.lower() in SUPPORTED_EXTENSIONS
        or source.startswith((".", "/", "~"))
        or source.count("/") > 1
        or "\\" in source
    )


def _has_columns(table: Table, recipe: Recipe, columns: ColumnMap | dict[str, Any] | None) -> bool:
    given = columns if isinstance(columns, ColumnMap) or columns is None else ColumnMap.from_dict(columns)
    try:
        recipe.columns.overlay(given or ColumnMap()).resolve(table.columns, table.name)
    except SelfDistillError:
        return False
    return True


def _choose_columns(
    table: Table, recipe: Recipe | None, columns: ColumnMap | dict[str, Any] | None
) -> tuple[ColumnMap, str]:
    chosen, origins = ColumnMap(), []
    if recipe is not None:
        chosen, origins = chosen.overlay(recipe.columns), [f"recipe {recipe.name}"]
    if columns is not None:
        given = columns if isinstance(columns, ColumnMap) else ColumnMap.from_dict(columns)
        chosen, origins = chosen.overlay(given), [*origins, "columns given"]
    if not chosen.defines_prompt():
        layout, detected = detect_columns(table.columns, table.name)
        chosen, origins = detected.overlay(chosen), [f"detected {layout}", *origins]
    return chosen.resolve(table.columns, table.name), " + ".join(origins)


def _convert(
    table: Table,
    column_map: ColumnMap,
    dataset_name: str,
    recipe: Recipe | None,
    limit: int | None,
    require_response: bool,
    report: LoadReport,
) -> Iterator[Example]:
    row_of_id: dict[str, int] = {}  # ids and row numbers only, so streaming holds no row text
    rows = iter(table.rows)
    for index, row in enumerate(rows):
        report.total_rows += 1
        example = row_to_example(row, index, column_map, where=table.locate(index), dataset_name=dataset_name)
        if recipe is not None:
            recipe.finish(example)
        if not example.instruction.strip():
            report.skip(EMPTY_INSTRUCTION, index)
            continue
        if require_response and not example.response.strip():
            report.skip(EMPTY_RESPONSE, index)
            continue
        if example.id in row_of_id:
            first = table.where(row_of_id[example.id])
            raise SelfDistillError(f"{table.name}: duplicate id '{example.id}' ({first} and {table.where(index)})")
        row_of_id[example.id] = index
        report.kept += 1
        yield example
        if limit is not None and report.kept == limit:
            report.stopped_at_limit = next(rows, None) is not None
            break
    if not report.kept:
        raise SelfDistillError(f"{report.summary()}; no usable rows")
