"""`selfdistill distill`: SDFT training targets, the gold rewritten by the seed model."""

from __future__ import annotations

from selfdistill.cli.args import add_config_command
from selfdistill.cli.summaries import build_exit_status, print_build_summary
from selfdistill.methods.sdft import DistillConfig, run_distill


def register(subparsers) -> None:
    add_config_command(
        subparsers, "distill", DistillConfig, _run,
        help="SDFT: rewrite each gold response in the seed model's words, keeping rewrites that check out.",
        description="SDFT (Yang et al., 2024): the seed model rewrites each gold response, shown as a reference "
        "answer; a rewrite becomes the target when it passes the filters and the answer checker, else the gold stays.",
    )


def _run(config: DistillConfig) -> int:
    summary = run_distill(config)
    print_build_summary(summary, config)
    return build_exit_status(summary)
