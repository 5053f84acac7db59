"""Integration tests on the real embedded seed model (SmolLM2-135M-Instruct from its PyPI wheel).

The dequantized copy is written once into a per-session temp cache, so these tests also cover the
GGUF -> safetensors path from scratch on every run.
"""

from __future__ import annotations

import time

import pytest

from selfdistill.generation.config import DecodingConfig
from selfdistill.generation.engine import generate
from selfdistill.generation.transformers_backend import TransformersBackend
from selfdistill.models import load_model, resolve_model

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("SELFDISTILL_CACHE", str(tmp_path_factory.mktemp("selfdistill-cache")))
    source = resolve_model("smollm2-135m-instruct")
    yield source, load_model(source, device="cpu")
    monkeypatch.undo()


def test_gguf_is_cached_as_safetensors_and_reloads_fast(embedded):
    source, _ = embedded
    assert (source.path.endswith("smollm2-135m-instruct"))
    started = time.perf_counter()
    again = resolve_model("smollm2-135m-instruct")
    assert again == source and source.fingerprint.startswith("gguf:")
    model, tokenizer = load_model(again, device="cpu")
    assert time.perf_counter() - started < 15  # vs 15-30 s to dequantize; generous for a loaded CI box
    assert model.config.model_type == "llama" and "quantization_config" not in model.config.to_dict()
    assert tokenizer.eos_token == "<|im_end|>"


def test_engine_matches_naive_generate_and_answers_sensibly(embedded):
    _, (model, tokenizer) = embedded
    questions = ["What is 2+3?", "What is the capital of France?", "Name a primary colour."]
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
               for q in questions]
    backend = TransformersBackend((model, tokenizer), precision="fp32")
    ours = generate(prompts, backend, DecodingConfig(max_new_tokens=24), batch_size=3)
    for prompt, completion in zip(prompts, ours):
        encoded = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        reference = model.generate(**encoded, max_new_tokens=24, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        assert completion.text == tokenizer.decode(reference[0, encoded["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "5" in ours[0].text and "Paris" in ours[1].text
    assert ours[0].finish_reason == "stop"


def test_bf16_weights_generate(embedded):
    _, (model, tokenizer) = embedded
    backend = TransformersBackend((model, tokenizer), precision="bf16")
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           tokenize=False, add_generation_prompt=True)
    completion = generate([prompt], backend, DecodingConfig(max_new_tokens=16))[0]
    assert "Paris" in completion.text
    assert backend.fingerprint.endswith(":bf16")


def test_lora_training_lowers_the_loss_and_the_merged_model_generates(embedded, tmp_path):
    import json

    from selfdistill.training import TrainConfig, run_train
    from selfdistill.training.shift import parameter_shift

    _, (seed, _) = embedded
    rows = [{"question": f"Tom has {n} apples and buys {n + 3} more. How many apples does he have?",
             "answer": f"Tom has {n} + {n + 3} = {2 * n + 3} apples.\n#### {2 * n + 3}"} for n in range(2, 10)]
    data = tmp_path / "math.json"
    data.write_text(json.dumps(rows))
    out = tmp_path / "run"
    # one step per epoch over the same 8 rows: the loss must fall
    summary = run_train(TrainConfig(data=str(data), recipe="gsm8k", out=str(out), batch_size=8, grad_accum=1,
                                    epochs=6, lr=3e-3, warmup_ratio=0.0, merge=True))  # fmt: skip
    losses = [json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(losses) == 6 and losses[-1] < 0.8 * losses[0]
    assert summary.trainable_params == 460_800  # r=8 on q_proj (576x576) and v_proj (576x192), 30 layers

    backend = TransformersBackend(str(out / "merged"), precision="fp32")
    [completion] = generate(["Tom has 4 apples and buys 7 more. How many apples does he have?"], backend,
                            DecodingConfig(max_new_tokens=24), batch_size=1)  # fmt: skip
    assert completion.num_tokens > 0 and completion.text.strip()
    shift = parameter_shift("smollm2-135m-instruct", out, seed_model=seed)
    assert shift.kind == "lora" and len(shift.weights) == 60 and 0 < shift.total.relative < 0.1
