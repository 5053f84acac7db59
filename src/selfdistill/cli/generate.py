"""`selfdistill generate`: complete a prompt file with a model."""

from __future__ import annotations

from selfdistill.cli.args import add_config_command
from selfdistill.cli.summaries import report_failures
from selfdistill.generation.run import GenerateConfig, run_generate
from selfdistill.progress import console


def register(subparsers) -> None:
    add_config_command(
        subparsers, "generate", GenerateConfig, _run,
        help="Complete every prompt of a file and write one JSON row per prompt.",
        description="Complete every prompt of a file (batched, cached, resumable) and write one JSON row per prompt.",
    )


def _run(config: GenerateConfig) -> int:
    summary = run_generate(config)
    console.print(summary.report.summary())
    rate = summary.new_tokens / summary.seconds if summary.seconds else 0.0
    console.print(
        f"wrote {len(summary.rows)} rows to {config.out} ({summary.new_tokens} new tokens in {summary.seconds:.1f} s, "
        f"{rate:.0f} tok/s; cached rows cost no time)"
    )
    return report_failures(summary.errors, len(summary.rows))
