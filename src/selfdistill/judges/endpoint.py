"""A judge model behind an OpenAI-compatible chat endpoint (`/v1/chat/completions`).

Named as `openai:MODEL` wherever a judge model is taken (e.g. `eval --judge-model openai:gpt-4o`).
The base URL comes from `OPENAI_BASE_URL` (default https://api.openai.com/v1) and the key from
`OPENAI_API_KEY` (optional for local servers). Requests run `concurrency` at a time, each with a
timeout; 429, 5xx and connection errors are retried with exponential backoff and jitter (at least
the server's Retry-After); a request that still fails is returned as an `EndpointError` for its
sample alone, so the run goes on. 401, 403 and 404 (wrong key, model or URL) stop the run at once.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from selfdistill.errors import SelfDistillError

PREFIX = "openai:"
RETRIED_STATUS = {408, 409, 429, 500, 502, 503, 504}
FATAL_STATUS = {401, 403, 404}  # a wrong key, model or URL: stop instead of failing every sample
MAX_RETRY_AFTER = 120.0  # seconds


@dataclass(frozen=True)
class EndpointError:
    """Why one request failed after its retries (recorded on that sample)."""

    reason: str


class ChatEndpoint:
    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None, concurrency: int = 8,
                 timeout: float = 60.0, retries: int = 5, backoff: float = 1.0):  # fmt: skip
        if not model:
            raise SelfDistillError(f"name the endpoint's model: {PREFIX}MODEL")
        if concurrency < 1 or retries < 0 or timeout <= 0:
            raise SelfDistillError("concurrency must be >= 1, retries >= 0 and timeout > 0")
        self.model = model
        self.url = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        self.concurrency, self.timeout, self.retries, self.backoff = concurrency, timeout, retries, backoff

    @property
    def fingerprint(self) -> str:
        return f"endpoint:{self.url}:{self.model}"

    def complete_many(self, messages: list[str], max_tokens: int) -> list[str | EndpointError]:
        """The reply to each user message (greedy), or the error that ended its request."""
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(lambda text: self._complete(text, max_tokens), messages))

    def _complete(self, text: str, max_tokens: int) -> str | EndpointError:
        body = json.dumps({"model": self.model, "messages": [{"role": "user", "content": text}],
                           "max_tokens": max_tokens, "temperature": 0}).encode()  # fmt: skip
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        reason, retry_after = "no attempt made", 0.0
        for attempt in range(self.retries + 1):
            if attempt:  # exponential backoff with full jitter, at least what the server asked for
                time.sleep(max(random.uniform(0, self.backoff * 2 ** (attempt - 1)), retry_after))
                retry_after = 0.0
            request = urllib.request.Request(f"{self.url}/chat/completions", data=body, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read())["choices"][0]["message"]["content"] or ""
            except urllib.error.HTTPError as err:
                with err:
                    reason, detail = f"HTTP {err.code}", err.read()[:200].decode(errors="replace")
                    if err.code in FATAL_STATUS:  # a setup error: every request would fail the same way
                        raise SelfDistillError(f"judge endpoint {self.url} ({self.model}): {reason}: {detail}") from None
                    if err.code not in RETRIED_STATUS:
                        return EndpointError(f"{reason}: {detail}")
                    retry_after = min(_seconds(err.headers.get("Retry-After")), MAX_RETRY_AFTER)
            except (OSError, http.client.HTTPException) as err:  # connection, TLS, timeouts, cut-off bodies
                reason = f"connection error: {getattr(err, 'reason', None) or err}"
            except (KeyError, IndexError, TypeError, AttributeError, ValueError) as err:
                return EndpointError(f"unexpected response: {type(err).__name__}: {err}")
        return EndpointError(f"{reason} after {self.retries + 1} attempts")


def _seconds(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0  # an HTTP date: fall back to our own backoff
