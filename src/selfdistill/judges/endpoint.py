"""A judge model behind an OpenAI-compatible chat endpoint (`/v1/chat/completions`).

Named as `openai:MODEL` wherever a judge model is taken (e.g. `eval --judge-model openai:gpt-4o`).
The base URL comes from `OPENAI_BASE_URL` (default https://api.openai.com/v1) and the key from
`OPENAI_API_KEY` (optional for local servers). The requests go through the openai generation
backend (`generation/openai_backend.py`): bounded concurrency, timeouts, retries with backoff and
jitter; a request that still fails is returned as an `EndpointError` for its sample alone, and
401, 403 and 404 (wrong key, model or URL) stop the run at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from selfdistill.errors import SelfDistillError
from selfdistill.generation.config import DecodingConfig

PREFIX = "openai:"
DEFAULT_JUDGE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class EndpointError:
    """Why one request failed after its retries (recorded on that sample)."""

    reason: str


class ChatEndpoint:
    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None, concurrency: int = 8,
                 timeout: float = 60.0, retries: int = 5, backoff: float = 1.0):  # fmt: skip
        from selfdistill.generation.openai_backend import OpenAIBackend

        if not model:
            raise SelfDistillError(f"name the endpoint's model: {PREFIX}MODEL")
        url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_JUDGE_URL
        self.backend = OpenAIBackend(model, api="chat", served_model=model, base_url=url, api_key=api_key,
                                     concurrency=concurrency, request_timeout=timeout, max_retries=retries,
                                     backoff=backoff)  # fmt: skip

    @property
    def fingerprint(self) -> str:
        return f"endpoint:{self.backend.url}:{self.backend.served_model}"

    def complete_many(self, messages: list[str], max_tokens: int) -> list[str | EndpointError]:
        """The reply to each user message (greedy), or the error that ended its request."""
        render = self.backend.tokenizer.apply_chat_template
        prompts = [render([{"role": "user", "content": text}], add_generation_prompt=True) for text in messages]
        completions = self.backend.generate_batch(prompts, DecodingConfig(max_new_tokens=max_tokens), [0] * len(prompts))
        return [EndpointError(c.error) if c.error is not None else c.text for c in completions]
