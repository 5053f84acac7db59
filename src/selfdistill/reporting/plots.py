"""The report's figures, drawn with matplotlib's object API (no pyplot state) and written atomically."""

from __future__ import annotations

import math
from pathlib import Path

from selfdistill.io import AtomicWriter


def _figure(width: float = 7.0, height: float = 4.0, columns: int = 1):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width * columns, height), layout="constrained")
    return figure, figure.subplots(1, columns, squeeze=False)[0]


def _save(figure, path: Path) -> Path:
    with AtomicWriter(path, binary=True) as out:
        figure.savefig(out.file, format="png", dpi=110)
    return path


def similarity_histograms(values_by_model: dict[str, list[float]], path: Path) -> Path:
    """Per-prompt embedding similarity of each model's outputs to the seed's (the SDFT paper's Figure 9)."""
    figure, (axes,) = _figure()
    for label, values in values_by_model.items():
        # outlines, not filled bars: three or more overlapping filled histograms cannot be told apart
        axes.hist(values, bins=20, range=(-0.2, 1.0), histtype="step", linewidth=1.8,
                  label=f"{label} (mean {sum(values) / len(values):.3f})")  # fmt: skip
    axes.set_xlabel("cosine similarity to the seed's output (all-MiniLM-L6-v2)")
    axes.set_ylabel("prompts")
    axes.legend()
    return _save(figure, path)


def loss_curves(logs: dict[str, list[dict]], path: Path) -> Path:
    """Training loss per optimizer step, one line per run."""
    figure, (axes,) = _figure()
    for label, rows in logs.items():
        axes.plot([row["step"] for row in rows], [row["loss"] for row in rows], marker=".", label=label)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("training loss (response tokens)")
    axes.legend()
    return _save(figure, path)


def sweep_curves(axis: str, series: dict[str, dict[str, list[tuple]]], path: Path) -> Path:
    """One panel per metric: the metric against the swept value, one line per method, with 95% intervals.

    `series` maps a metric title to {method: [(x, value, low, high), ...]}.
    """
    figure, panels = _figure(4.2, 3.6, columns=len(series))
    for axes, (title, lines) in zip(panels, series.items()):
        for method, points in lines.items():
            points = sorted(p for p in points if p[1] is not None and not math.isnan(p[1]))
            if not points:
                continue
            xs, values, lows, highs = zip(*points)
            below = [v - lo if lo is not None and not math.isnan(lo) else 0 for v, lo in zip(values, lows)]
            above = [hi - v if hi is not None and not math.isnan(hi) else 0 for v, hi in zip(values, highs)]
            axes.errorbar(xs, values, yerr=[below, above], marker="o", capsize=3, label=method)
        axes.set_title(title)
        axes.set_xlabel(axis.replace("_", " "))
        axes.legend(fontsize="small")
    return _save(figure, path)
