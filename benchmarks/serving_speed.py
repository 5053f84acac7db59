"""SDFT distillation throughput through a server: the openai backend against `transformers serve`
at concurrency 1 and 8, beside the in-process transformers backend, on the same rows.

One process starts the server (on 127.0.0.1, the same model directory), runs `run_distill` with
each backend on the same GSM8K rows, template and max new tokens (greedy, no completion cache),
and prints rows/s and new tokens/s for each, with the ratio to the in-process backend at its
default precision. The server stays idle while the in-process backend runs, so they never share
the CPU. With `--vllm` (a GPU machine with vLLM installed) the vllm backend runs too.

    python benchmarks/serving_speed.py --data ../shared/data/gsm8k_train.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from selfdistill.generation.backends import make_backend
from selfdistill.methods.sdft import DistillConfig, run_distill
from selfdistill.models import resolve_model


def start_server(model_dir: str, port: int, hub_cache: str, device: str) -> subprocess.Popen:
    command = [sys.executable, "-c", "from transformers.cli.transformers import main; main()", "serve", model_dir,
               "--host", "127.0.0.1", "--port", str(port), "--continuous-batching", "--device", device]  # fmt: skip
    server = subprocess.Popen(command, env={**os.environ, "HF_HUB_CACHE": hub_cache},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"transformers serve exited with {server.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2).close()
        except OSError:
            time.sleep(0.5)
            continue
        # the first generation compiles and allocates: keep it out of the timings
        body = json.dumps({"model": model_dir, "prompt": "Hello", "max_tokens": 8}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=body,
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        urllib.request.urlopen(request, timeout=120).close()
        return server
    server.kill()
    raise SystemExit("transformers serve did not start within 180 s")


def timed_distill(args, out: Path, backend_name: str, **options) -> dict:
    config = DistillConfig(data=args.data, recipe="gsm8k", limit=args.rows, max_new_tokens=args.max_new_tokens,
                           out=str(out), cache=False, model=args.model, backend=backend_name, **options)  # fmt: skip
    backend = make_backend(backend_name, args.model, **config.backend_options())
    new_tokens = 0
    generate_batch = backend.generate_batch

    def counted(prompts, decoding, seeds):
        nonlocal new_tokens
        completions = generate_batch(prompts, decoding, seeds)
        new_tokens += sum(c.num_tokens for c in completions)
        return completions

    backend.generate_batch = counted
    started = time.perf_counter()
    summary = run_distill(config, backend)
    seconds = time.perf_counter() - started
    print(f"{backend_name} {options}: {summary.rows} rows, {new_tokens} new tokens in {seconds:.1f} s", flush=True)
    return {"seconds": seconds, "rows": summary.rows, "new_tokens": new_tokens,
            "distilled": summary.targets.get("distilled", 0), "errors": len(summary.request_errors)}  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="GSM8K-layout JSON (the paper's gsm8k_train.json).")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--port", type=int, default=8731)
    parser.add_argument("--device", default="cpu", help="transformers serve --device (cpu, cuda).")
    parser.add_argument("--vllm", action="store_true", help="Also run the vllm backend (GPU, vLLM installed).")
    args = parser.parse_args()

    model_dir = resolve_model(args.model).path
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(model_dir, args.port, tmp, args.device)
        try:
            for concurrency in args.concurrency:
                results[f"openai, concurrency {concurrency}"] = timed_distill(
                    args, Path(tmp) / f"c{concurrency}.jsonl", "openai", base_url=f"http://127.0.0.1:{args.port}/v1",
                    served_model=model_dir, concurrency=concurrency)  # fmt: skip
        finally:
            server.kill()
            server.wait()
        for precision in ("auto", "fp32"):
            results[f"transformers in process, {precision}"] = timed_distill(
                args, Path(tmp) / f"local-{precision}.jsonl", "transformers", precision=precision)
        if args.vllm:
            results["vllm in process"] = timed_distill(args, Path(tmp) / "vllm.jsonl", "vllm")

    reference = results["transformers in process, auto"]
    print(f"\nSDFT distill, {args.rows} GSM8K rows, max {args.max_new_tokens} new tokens, greedy, {args.model}")
    print(f"{'backend':<36} {'s':>7} {'rows/s':>7} {'new tok':>8} {'tok/s':>7} {'x in-proc':>9} {'kept':>5} {'errors':>6}")
    for name, r in results.items():
        rate = r["new_tokens"] / r["seconds"]
        ratio = rate / (reference["new_tokens"] / reference["seconds"])
        print(f"{name:<36} {r['seconds']:>7.1f} {r['rows'] / r['seconds']:>7.3f} {r['new_tokens']:>8} {rate:>7.1f} "
              f"{ratio:>9.2f} {r['distilled']:>5} {r['errors']:>6}")  # fmt: skip


if __name__ == "__main__":
    main()
