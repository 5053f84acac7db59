"""`selfdistill select`: S3FT training targets, the model's own answer wherever the judge accepts it."""

from __future__ import annotations

from selfdistill.cli.args import add_config_command
from selfdistill.cli.summaries import build_exit_status, print_build_summary
from selfdistill.methods.s3ft import SelectConfig, run_select


def register(subparsers) -> None:
    add_config_command(
        subparsers, "select", SelectConfig, _run,
        help="S3FT: the model's own answer if judged correct, else a judged paraphrase of the gold, else the gold.",
        description="S3FT (Gupta et al., 2025): per row, the seed model's own answer when the judge accepts it, "
        "else its paraphrase of the gold when accepted, else the gold. Reports how many rows took each path.",
    )


def _run(config: SelectConfig) -> int:
    summary = run_select(config)
    print_build_summary(summary, config)
    return build_exit_status(summary)
