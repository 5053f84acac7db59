"""Split distill, select and eval runs across machines, and join the parts.

`--shard I/N` (0 <= I < N) processes rows [I*R//N, (I+1)*R//N) of the R rows the command would
process (after `--limit`): a contiguous slice, the same on every machine, that the shards cover
exactly once. Each shard records its place in its output (the build's summary file, or
`shard.json` in an evaluation folder). `selfdistill merge` joins the shards in input order,
refusing a set with a shard missing, given twice, or cut from different data.

Builds join row for row, their counts summed. Evaluations join each model's prediction rows per
suite and compute the metrics again over all of them (`Suite.metrics_from`), so the intervals are
those of the whole set, not an average of the shards'.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from selfdistill.errors import SelfDistillError

SHARD_FILE = "shard.json"


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """"I/N" as (I, N); None for None."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match or not int(match[1]) < int(match[2]):
        raise SelfDistillError(f"shard must be I/N with 0 <= I < N (e.g. 0/4), got '{text}'")
    return int(match[1]), int(match[2])


def shard_bounds(shard: str | None, total: int) -> tuple[int, int]:
    """The [first, last) rows of `total` that shard `shard` processes (all of them without one)."""
    parsed = parse_shard(shard)
    if parsed is None:
        return 0, total
    index, count = parsed
    return index * total // count, (index + 1) * total // count


def shard_record(shard: str, total: int, source: str) -> dict:
    index, count = parse_shard(shard)
    first, last = shard_bounds(shard, total)
    return {"index": index, "count": count, "first": first, "last": last, "total": total, "source": source}


def merge(out: str | Path, parts: list[str | Path]) -> str:
    """Join shard outputs into `out`: build files (JSONL) or evaluation folders. Returns a summary line."""
    if not parts:
        raise SelfDistillError("merge: name the shard outputs to join")
    paths = [Path(part) for part in parts]
    for path in paths:
        if not path.exists():
            raise SelfDistillError(f"{path}: no such shard output")
    folders = [path.is_dir() for path in paths]
    if all(folders):
        return _merge_evaluations(Path(out), paths)
    if not any(folders):
        return _merge_builds(Path(out), paths)
    raise SelfDistillError("merge: give either build outputs (.jsonl) or evaluation folders, not both")


def _in_order(records: list[tuple[Path, dict]], what: str) -> list[tuple[Path, dict]]:
    """The shards sorted by index, after checking they are one complete, consistent set."""
    first_path, first = records[0]
    for path, record in records[1:]:
        for key in ("count", "total", "source"):
            if record[key] != first[key]:
                raise SelfDistillError(f"{path}: {what} {key} is {record[key]!r} but {first_path} has {first[key]!r}; "
                                       "these are not shards of one run")  # fmt: skip
    seen: dict[int, Path] = {}
    for path, record in records:
        if record["index"] in seen:
            raise SelfDistillError(f"shard {record['index']}/{record['count']} given twice: {seen[record['index']]} "
                                   f"and {path} overlap")  # fmt: skip
        seen[record["index"]] = path
    missing = [f"{i}/{first['count']}" for i in range(first["count"]) if i not in seen]
    if missing:
        raise SelfDistillError(f"missing shard(s) {', '.join(missing)}: the merge would lose their rows")
    return sorted(records, key=lambda item: item[1]["index"])


def _merge_builds(out: Path, paths: list[Path]) -> str:
    from selfdistill.io import AtomicWriter, write_json_atomic

    summaries = []
    for path in paths:
        summary_path = path.with_suffix(".summary.json")
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise SelfDistillError(f"{summary_path}: cannot read the shard's summary ({err})") from None
        if not summary.get("shard"):
            raise SelfDistillError(f"{path} was not built with --shard, so it is not a shard")
        summaries.append((path, summary))
    ordered = _in_order([(path, summary["shard"]) for path, summary in summaries], "shard's")
    by_path = dict(summaries)
    rows = 0
    with AtomicWriter(out) as writer:
        for path, record in ordered:
            expected = record["last"] - record["first"]
            count = 0
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    if line.strip():
                        writer.write_row(json.loads(line))
                        count += 1
            if count != expected:
                raise SelfDistillError(f"{path}: {count} rows, but shard {record['index']}/{record['count']} "
                                       f"covers {expected} (rows {record['first']}-{record['last'] - 1}); "
                                       "an unfinished shard?")  # fmt: skip
            rows += count
    merged = _sum_build_summaries([by_path[path] for path, _ in ordered])
    write_json_atomic(merged, out.with_suffix(".summary.json"))
    return f"joined {len(ordered)} shards into {out}: {rows} rows"


def _sum_build_summaries(summaries: list[dict]) -> dict:
    merged = {"method": summaries[0]["method"], "rows": 0, "targets": Counter(), "rejections": {}, "untried": 0,
              "request_errors": [], "seconds": 0.0, "shards": len(summaries),
              "load_report": summaries[0]["load_report"]}  # fmt: skip
    for summary in summaries:
        merged["rows"] += summary["rows"]
        merged["targets"].update(summary["targets"])
        merged["untried"] += summary["untried"]
        merged["request_errors"] += summary.get("request_errors", [])
        merged["seconds"] += summary["seconds"]  # machine time, summed over shards
        for source, reasons in summary["rejections"].items():
            merged["rejections"].setdefault(source, Counter()).update(reasons)
    merged["targets"] = dict(merged["targets"])
    merged["rejections"] = {source: dict(reasons) for source, reasons in merged["rejections"].items()}
    return merged


def _merge_evaluations(out: Path, folders: list[Path]) -> str:
    from selfdistill.evaluation.run import read_suite_result
    from selfdistill.evaluation.suites import get_suite
    from selfdistill.io import write_json_atomic, write_jsonl_atomic

    records = []
    for folder in folders:
        try:
            records.append((folder, json.loads((folder / SHARD_FILE).read_text(encoding="utf-8"))))
        except (OSError, ValueError) as err:
            raise SelfDistillError(f"{folder / SHARD_FILE}: cannot read it ({err}); was this folder evaluated "
                                   "with --shard?") from None  # fmt: skip
    ordered = _in_order(records, "shard's")
    models = ordered[0][1]["models"]
    suites = ordered[0][1]["suites"]
    for folder, record in ordered[1:]:
        if record["models"] != models or sorted(record["suites"]) != sorted(suites):
            raise SelfDistillError(f"{folder}: evaluated models {record['models']} on suites {sorted(record['suites'])},"
                                   f" not {models} on {sorted(suites)} like {ordered[0][0]}")  # fmt: skip
    results = []
    for suite_name in suites:
        suite = get_suite(suite_name)
        for model in models:
            parts = [read_suite_result(folder, model, suite_name) for folder, _ in ordered]
            rows = suite.join([part.predictions for part in parts])
            merged = parts[0]
            merged.predictions, merged.metrics = rows, suite.metrics_from(rows)
            merged.failures = dict(sum((Counter(part.failures) for part in parts), Counter()))
            merged.data = f"{merged.data} (joined from {len(parts)} shards)"
            write_jsonl_atomic(rows, out / model / f"{suite_name}.predictions.jsonl")
            write_json_atomic(merged.to_dict(), out / model / f"{suite_name}.metrics.json")
            results.append(merged)
        suite.finish([r for r in results if r.suite == suite_name], out)
    write_json_atomic({"shards": [str(folder) for folder, _ in ordered],
                       "results": [result.to_dict() for result in results]}, out / "results.json")  # fmt: skip
    return f"joined {len(ordered)} shards into {out}: {len(models)} models x {len(suites)} suites"
