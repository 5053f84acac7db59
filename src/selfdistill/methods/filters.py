"""Sanity checks every generated candidate target must pass before any answer checker sees it.

A candidate is rejected when it leaks the distillation prompt ("As the reference answer says..."),
is empty, was cut off at the token limit, or degenerated into repetition. Each rejection has a
fixed short reason so the builders can count them.
"""

from __future__ import annotations

from selfdistill.generation.base import Completion

# Phrases that only appear when the model talks about the distillation prompt instead of answering
# (the SDFT paper's filter list).
LEAK_PHRASES = ("reference answer", "your response", "my response", "your own response", "now it's your turn")
LEAK_PREFIX = "your turn"

GENERATION_FAILED = "generation failed"
LEAKED = "leaks the template"
EMPTY = "empty"
TRUNCATED = "truncated at the token limit"
REPETITIVE = "degenerate repetition"

_MIN_WORDS_FOR_REPETITION = 40
_MIN_DISTINCT_TRIGRAM_SHARE = 0.3


def reject_reason(completion: Completion, *, allow_truncated: bool = False) -> str | None:
    """Why this candidate cannot be a target, or None when it passes every check."""
    if completion.error is not None:
        return GENERATION_FAILED
    text = completion.text.strip()
    if not text:
        return EMPTY
    lowered = text.lower()
    if lowered.startswith(LEAK_PREFIX) or any(phrase in lowered for phrase in LEAK_PHRASES):
        return LEAKED
    if completion.finish_reason == "length" and not allow_truncated:
        return TRUNCATED
    if is_repetitive(text):
        return REPETITIVE
    return None


def is_repetitive(text: str) -> bool:
    """True when few of the text's word trigrams are distinct (a loop such as "and so on and so on")."""
    words = text.split()
    if len(words) < _MIN_WORDS_FOR_REPETITION:
        return False
    trigrams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    return len(set(trigrams)) / len(trigrams) < _MIN_DISTINCT_TRIGRAM_SHARE
