"""Reports of experiments: the comparison table, figures, and Markdown / HTML rendering."""

from selfdistill.reporting.report import write_report

__all__ = ["write_report"]
