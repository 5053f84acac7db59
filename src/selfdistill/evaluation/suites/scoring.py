"""Steps every generating suite shares: complete prompts through the engine, judge the replies."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from selfdistill.data import Example
from selfdistill.judges.base import Judge, Verdict


def complete(model, prompts: Sequence[str], ids: Sequence[str], context, description: str):
    """Completions aligned with `prompts`, through the shared engine and cache."""
    from selfdistill.generation.engine import generate

    return generate(prompts, model.backend, context.decoding, batch_size=context.batch_size, cache=context.cache,
                    description=description, sample_ids=ids)  # fmt: skip


def judge_all(judge: Judge, items: list[tuple[str, str, Example]]) -> tuple[list[Verdict | None], Counter]:
    """One verdict per item; an item whose judging fails gets None and its error is counted, the rest go on."""
    try:
        return list(judge.judge_many(items)), Counter()
    except Exception:  # noqa: BLE001 - find the failing items one by one, keep the others' verdicts
        verdicts, failures = [], Counter()
        for item in items:
            try:
                verdicts.append(judge.judge(*item))
            except Exception as err:  # noqa: BLE001 - a judge failure is one sample's failure
                verdicts.append(None)
                failures[f"judge error: {type(err).__name__}"] += 1
        return verdicts, failures


def prediction_row(example: Example, prompt: str, completion, verdict: Verdict | None, **extra) -> dict:
    return {"id": example.id, "prompt": prompt, "output": completion.text, "reference": example.response,
            "verdict": None if verdict is None else verdict.accepted,
            "reason": "not judged" if verdict is None else verdict.reason,
            "num_tokens": completion.num_tokens, "finish_reason": completion.finish_reason, **extra}  # fmt: skip
