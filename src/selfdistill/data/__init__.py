"""The data layer: read any dataset layout into `Example`s, with a report of every skipped row.

Start with `load_examples(source, recipe=..., columns=...)`, or `stream_examples` (same arguments)
to read a large dataset one row at a time; `list_recipes()` shows the named datasets it knows.
"""

from selfdistill.data.example import Example
from selfdistill.data.layouts import ColumnMap
from selfdistill.data.load import (
    ExampleStream,
    LoadedData,
    LoadReport,
    load_examples,
    stream_examples,
    write_examples_jsonl,
)
from selfdistill.data.recipes import (
    DEFAULT_TASK_PROMPT,
    Recipe,
    get_recipe,
    list_recipes,
)

__all__ = [
    "DEFAULT_TASK_PROMPT",
    "ColumnMap",
    "Example",
    "ExampleStream",
    "LoadReport",
    "LoadedData",
    "Recipe",
    "get_recipe",
    "list_recipes",
    "load_examples",
    "stream_examples",
    "write_examples_jsonl",
]
