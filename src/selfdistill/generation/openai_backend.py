"""Generation through an OpenAI-compatible server: `vllm serve`, TGI, llama.cpp's server, Ollama,
`transformers serve`, or OpenAI itself.

Two routes (`api`):
- `completions` (default): `/v1/completions` with the prompt rendered here by the model's own
  tokenizer, so the server reads exactly the text the transformers backend and training see
  (system prompt, chat markup, a template's response prefix). Needs the tokenizer locally
  (`--model`) and a server that serves the same model (`--served-model` names it there).
- `chat`: `/v1/chat/completions` with the conversation as messages, formatted by the server's own
  chat template. For endpoints without a completions route; it cannot prime a reply with a
  template's response prefix, nor frame alpaca-style prompts.

Requests run `concurrency` at a time on one asyncio loop. 408/409/429/5xx answers, timeouts and
connection errors are retried with exponential backoff and full jitter (at least the server's
Retry-After), which rides out a server restart; a request that still fails comes back with
`error` set, for its row alone, and is not cached, so a rerun retries just those rows. 401, 403
and 404 mean a wrong key, URL or model name: the run stops at once. Once a request has spent all
its retries on connection errors the endpoint counts as down, and the requests after it try once
each (until one succeeds), so a wrong URL costs one request's backoff rather than every row's.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from concurrent.futures import ThreadPoolExecutor

from selfdistill.errors import SelfDistillError
from selfdistill.generation.base import Completion, GenerationBackend
from selfdistill.generation.config import DecodingConfig
from selfdistill.models.runs import run_digest

APIS = ("completions", "chat")
DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"  # where `vllm serve` listens by default
RETRIED_STATUS = {408, 409, 429, 500, 502, 503, 504}
FATAL_STATUS = {401, 403, 404}  # every request would fail the same way
MAX_BACKOFF = 30.0  # seconds, before jitter
MAX_RETRY_AFTER = 120.0
MESSAGES_PREFIX = "<<selfdistill:chat-messages>>"  # marks a prompt that is a JSON list of messages


class OpenAIBackend(GenerationBackend):
    name = "openai"
    option_names = ("api", "base_url", "served_model", "concurrency", "request_timeout", "max_retries", "adapter")

    def __init__(self, model, *, api: str = "completions", base_url: str | None = None, served_model: str | None = None,
                 concurrency: int = 8, request_timeout: float = 300.0, max_retries: int = 6, backoff: float = 1.0,
                 api_key: str | None = None, adapter: str | None = None):  # fmt: skip
        """`model` is a `--model` value: the tokenizer that renders prompts (api="completions") and,
        unless `served_model` is given, the name sent to the server (its local path when resolved).
        `adapter`: the run folder the server serves as `served_model`; its digest joins the fingerprint."""
        if api not in APIS:
            raise SelfDistillError(f"api must be one of {', '.join(APIS)}, got '{api}'")
        if concurrency < 1 or max_retries < 0 or request_timeout <= 0 or backoff < 0:
            raise SelfDistillError("concurrency must be >= 1, max_retries >= 0, request_timeout > 0 and backoff >= 0")
        if isinstance(model, tuple):
            raise SelfDistillError("the openai backend generates on a server: name the model it serves, not loaded weights")
        self.api, self.concurrency, self.timeout = api, concurrency, request_timeout
        self.retries, self.backoff = max_retries, backoff
        self.url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        if api == "completions":
            from selfdistill.models import load_tokenizer, resolve_model

            source = resolve_model(model)
            self.tokenizer = load_tokenizer(source)
            self.served_model = served_model or source.path
            # the chat template already wrote BOS; a server that tokenizes with special tokens adds its own
            bos = self.tokenizer.bos_token
            adds_bos = bos and self.tokenizer("")["input_ids"][:1] == [self.tokenizer.bos_token_id]
            self._server_bos = bos if adds_bos else None
        else:
            self.tokenizer = MessagesTokenizer()
            self.served_model = served_model or _local_path_or_name(model)
            self._server_bos = None
        self._down = False  # set once a request exhausted its retries on connection errors
        self._run = f"+run:{run_digest(adapter)}" if adapter else ""

    @property
    def fingerprint(self) -> str:
        return f"openai:{self.url}:{self.served_model}:{self.api}{self._run}"

    @property
    def default_batch_size(self) -> int:
        # The engine commits each batch to the cache: a few waves of requests per batch keeps the
        # slots busy while bounding what a kill loses.
        return 8 * self.concurrency

    def prompt_length(self, prompt: str) -> int:
        if self.api == "chat":
            return len(prompt)
        return len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def generate_batch(self, prompts: list[str], decoding: DecodingConfig, seeds: list[int]) -> list[Completion]:
        payloads = [self.payload(prompt, decoding, seed) for prompt, seed in zip(prompts, seeds)]
        return _run_sync(self._complete_all(payloads))

    def payload(self, prompt: str, decoding: DecodingConfig, seed: int) -> dict:
        """The JSON body of one request, our decoding options in the API's terms."""
        body: dict = {"model": self.served_model, "max_tokens": decoding.max_new_tokens,
                      "temperature": decoding.temperature}  # fmt: skip
        if not decoding.greedy:
            body.update(top_p=decoding.top_p, seed=seed % 2**31)  # many servers take a 32-bit seed
        if decoding.stop:
            body["stop"] = list(decoding.stop)
        if self.api == "chat":
            if not prompt.startswith(MESSAGES_PREFIX):
                raise SelfDistillError("api='chat' sends chat turns: prompts rendered with style alpaca or raw "
                                       "need api='completions'")  # fmt: skip
            body["messages"] = json.loads(prompt[len(MESSAGES_PREFIX) :])
        else:
            bos = self._server_bos
            body["prompt"] = prompt[len(bos) :] if bos and prompt.startswith(bos) else prompt
        return body

    async def _complete_all(self, payloads: list[dict]) -> list[Completion]:
        import httpx2 as httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        slots = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(timeout=httpx.Timeout(self.timeout), limits=limits, headers=headers) as client:

            async def one(payload: dict) -> Completion:
                async with slots:
                    return await self._complete(client, payload)

            tasks = [asyncio.ensure_future(one(payload)) for payload in payloads]
            try:
                return list(await asyncio.gather(*tasks))
            finally:  # a fatal answer stops the other requests too
                for task in tasks:
                    task.cancel()

    async def _complete(self, client, payload: dict) -> Completion:
        import httpx2 as httpx

        route = f"{self.url}/{'chat/completions' if self.api == 'chat' else 'completions'}"
        attempts = 1 if self._down else self.retries + 1
        reason, retry_after, connection_failed = "", 0.0, False
        for attempt in range(attempts):
            if attempt:
                ceiling = min(MAX_BACKOFF, self.backoff * 2 ** (attempt - 1))
                await asyncio.sleep(max(random.uniform(0, ceiling), retry_after))
            try:
                response = await client.post(route, json=payload)
            except httpx.TransportError as err:  # refused, reset, timed out, cut off
                reason, retry_after, connection_failed = f"connection error: {_describe(err)}", 0.0, True
                continue
            if response.status_code == 200:
                self._down = False
                return self._parse(response)
            detail = response.text.strip()[:200]
            reason = f"HTTP {response.status_code}" + (f": {detail}" if detail else "")
            if response.status_code in FATAL_STATUS:
                raise SelfDistillError(f"endpoint {self.url} (model '{self.served_model}'): {reason}")
            if response.status_code not in RETRIED_STATUS:
                return _failed(reason)
            retry_after, connection_failed = min(_seconds(response.headers.get("retry-after")), MAX_RETRY_AFTER), False
        if connection_failed:
            self._down = True
        return _failed(f"{reason} after {attempts} attempt{'s' if attempts > 1 else ''}")

    def _parse(self, response) -> Completion:
        try:
            answer = response.json()
            choice = answer["choices"][0]
            text = (choice["message"]["content"] if self.api == "chat" else choice["text"]) or ""
            usage = answer.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError) as err:
            return _failed(f"unexpected response: {type(err).__name__}: {err}: {response.text[:200]}")
        num_tokens = usage.get("completion_tokens")
        if num_tokens is None:  # a server that reports no usage: count with the local tokenizer if there is one
            num_tokens = 0 if self.api == "chat" else len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return Completion(text, int(num_tokens), "length" if choice.get("finish_reason") == "length" else "stop")


class MessagesTokenizer:
    """Stands in for the tokenizer under api="chat": rendering a conversation "with the chat
    template" yields its messages as JSON, which the server formats with its own template."""

    chat_template = "applied by the server"
    bos_token = eos_token = None
    all_special_tokens: list[str] = []

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False, **kwargs) -> str:
        if not add_generation_prompt:
            raise SelfDistillError("api='chat' sends whole chat turns, so it cannot prime the reply with a "
                                   "template's response_prefix; use api='completions'")  # fmt: skip
        return MESSAGES_PREFIX + json.dumps(messages, ensure_ascii=False)


def _failed(reason: str) -> Completion:
    return Completion("", 0, "error", error=reason)


def _local_path_or_name(model: str) -> str:
    from selfdistill.models import resolve_model

    try:
        return resolve_model(model).path
    except SelfDistillError:
        return model  # a name only the server knows, such as gpt-4o


def _describe(err: Exception) -> str:
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def _seconds(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0  # an HTTP date: fall back to our own backoff


def _run_sync(coroutine):
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(1) as pool:  # called from inside an event loop (a notebook): use a fresh one
        return pool.submit(asyncio.run, coroutine).result()
