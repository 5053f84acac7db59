"""The distribution-gap meter on the tiny random model: exact NLL, batching invariance, ordering of
datasets by closeness to the model, the `gap` command end to end, and bad input."""

from __future__ import annotations

import argparse
import json
import math
import random

import pytest
import torch
import torch.nn.functional as F

from selfdistill.cli import gap as gap_cli
from selfdistill.data import Example
from selfdistill.errors import SelfDistillError
from selfdistill.evaluation import GapConfig, measure_gap, response_nll
from selfdistill.evaluation.gap import dataset_labels
from selfdistill.prompts import render_pair, render_prompt

QUESTIONS = ["hi", "What is the answer to 2+2, and why?", "def add(a, b):", "Natalia sold clips", "The answer is"]
RESPONSES = ["hello there", "4, because 2+2 = 4.", "return a + b", "She sold 72 clips in April and May.", "42"]


def chat_pairs(tokenizer, questions=QUESTIONS, responses=RESPONSES):
    return [render_pair(Example(id=str(i), instruction=q), "plain", r, tokenizer, "chat")
            for i, (q, r) in enumerate(zip(questions, responses))]  # fmt: skip


def reference_nll(model, tokenizer, prompt: str, response: str) -> tuple[float, int]:
    """The plain way: one full forward over the concatenated ids, cross-entropy on the response positions."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + response_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
    start = len(prompt_ids)
    loss = F.cross_entropy(logits[start - 1 : -1].float(), ids[0, start:], reduction="mean")
    return loss.item(), len(response_ids)


def test_nll_equals_full_forward_cross_entropy(tiny_model, tiny_tokenizer):
    pairs = chat_pairs(tiny_tokenizer)
    lengths = {len(tiny_tokenizer(p + r, add_special_tokens=False)["input_ids"]) for p, r in pairs}
    assert len(lengths) > 3  # the batch really mixes lengths, so padding is exercised
    ours = response_nll(tiny_model, tiny_tokenizer, pairs, batch_size=8)
    for (prompt, response), (nll, count) in zip(pairs, ours):
        expected, expected_count = reference_nll(tiny_model, tiny_tokenizer, prompt, response)
        assert count == expected_count
        assert nll == pytest.approx(expected, abs=1e-5)


def test_batching_and_padding_do_not_change_values(tiny_model, tiny_tokenizer):
    pairs = chat_pairs(tiny_tokenizer) * 2
    one = response_nll(tiny_model, tiny_tokenizer, pairs, batch_size=1)
    four = response_nll(tiny_model, tiny_tokenizer, pairs, batch_size=4)
    assert [count for _, count in one] == [count for _, count in four]
    for (a, _), (b, _) in zip(one, four):
        assert a == pytest.approx(b, abs=1e-5)


def test_empty_response_is_an_error_not_a_nan(tiny_model, tiny_tokenizer):
    with pytest.raises(SelfDistillError, match="pair 1: the response has no tokens"):
        response_nll(tiny_model, tiny_tokenizer, [("a prompt", "x"), ("a prompt", "")])


def test_own_greedy_answers_are_closer_than_random_text(tiny_model, tiny_tokenizer):
    examples = [Example(id=str(i), instruction=q) for i, q in enumerate(QUESTIONS)]
    own = []
    for example in examples:
        prompt = render_prompt(example, "plain", tiny_tokenizer, "chat")
        ids = tiny_tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = tiny_model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False,
                                      pad_token_id=tiny_tokenizer.pad_token_id)  # fmt: skip
        own.append(tiny_tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
    rng = random.Random(0)
    noise = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz .,0123456789") for _ in range(max(len(t), 8))) for t in own]
    assert all(text.strip() for text in own)

    def mean_nll(responses):
        pairs = [render_pair(ex, "plain", r, tiny_tokenizer, "chat") for ex, r in zip(examples, responses)]
        return sum(nll for nll, _ in response_nll(tiny_model, tiny_tokenizer, pairs)) / len(pairs)

    assert mean_nll(own) < mean_nll(noise) - 0.5


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture()
def two_datasets(tmp_path):
    gold = write_jsonl(tmp_path / "gold.jsonl", [
        {"id": "a", "instruction": "What is 2+2?", "response": "The answer is 4."},
        {"id": "b", "instruction": "Name a prime.", "response": "Seven is a prime number."},
        {"id": "c", "instruction": "Say hi.", "response": "hi " * 200},  # too long for --max-length 120
        {"id": "d", "instruction": "Add 1 and 2.", "response": "def add(a, b): return a + b"},
    ])  # fmt: skip
    own = write_jsonl(tmp_path / "own.jsonl", [
        {"id": "b", "instruction": "Name a prime.", "response": "3"},
        {"id": "a", "instruction": "What is 2+2?", "response": "4"},
        {"id": "d", "instruction": "Add 1 and 2.", "response": "3"},
        {"id": "e", "instruction": "Extra row.", "response": "only here"},
    ])  # fmt: skip
    return gold, own


def run_gap(argv):
    parser = argparse.ArgumentParser()
    gap_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["gap", *argv])
    return args.run(args)


def test_cli_writes_per_row_values_and_paired_stats(tmp_path, tiny_model_dir, two_datasets, capsys):
    gold, own = two_datasets
    out = tmp_path / "report" / "gap.json"
    code = run_gap(["--model", str(tiny_model_dir), "--data", str(gold), "--data", str(own), "--max-length", "120",
                    "--batch-size", "3", "--out", str(out)])  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    gold_gap, own_gap = report["datasets"]
    assert (gold_gap["label"], own_gap["label"]) == ("gold", "own")
    assert [row["id"] for row in gold_gap["rows"]] == ["a", "b", "d"]
    assert gold_gap["skipped_ids"] == {"longer than max_length (120 tokens)": ["c"]}  # counted, not dropped silently
    assert [row["id"] for row in own_gap["rows"]] == ["b", "a", "d", "e"]
    for dataset in (gold_gap, own_gap):
        nlls = [row["nll"] for row in dataset["rows"]]
        assert dataset["mean_nll"] == pytest.approx(sum(nlls) / len(nlls))
        assert dataset["perplexity_of_mean_nll"] == pytest.approx(math.exp(dataset["mean_nll"]))
        assert dataset["mean_row_perplexity"] == pytest.approx(sum(math.exp(x) for x in nlls) / len(nlls))
        assert dataset["num_tokens"] == sum(row["num_tokens"] for row in dataset["rows"])
    paired = report["paired"]
    assert paired["reference"] == "gold" and paired["common_rows"] == 3
    (comparison,) = paired["comparisons"]
    gold_nll = {row["id"]: row["nll"] for row in gold_gap["rows"]}
    own_nll = {row["id"]: row["nll"] for row in own_gap["rows"]}
    diffs = [own_nll[i] - gold_nll[i] for i in "abd"]
    assert comparison["mean_diff"] == pytest.approx(sum(diffs) / 3)
    assert comparison["fraction_lower"] == pytest.approx(sum(d < 0 for d in diffs) / 3)
    assert report["config"]["data"] == [str(gold), str(own)]
    assert report["prompt"] == {"template": "plain", "style": "chat"}
    err = capsys.readouterr().err
    assert "exp(NLL)" in err and "own" in err and "longer than max_length" in err


def test_cli_plots_the_distributions(tmp_path, tiny_model_dir, two_datasets):
    pytest.importorskip("matplotlib")
    gold, own = two_datasets
    plot = tmp_path / "gap.png"
    assert run_gap(["--model", str(tiny_model_dir), "--data", str(gold), "--data", str(own),
                    "--plot", str(plot)]) == 0  # fmt: skip
    assert plot.read_bytes().startswith(b"\x89PNG") and plot.stat().st_size > 5000


def test_recipe_columns_and_a_distilled_file_in_the_example_layout(tmp_path, tiny_model, tiny_tokenizer):
    gold = tmp_path / "gsm.json"
    gold.write_text(json.dumps([{"question": "What is 2+2?", "answer": "2+2=<<2+2=4>>4\n#### 4"}]))
    own = write_jsonl(tmp_path / "own.jsonl", [{"id": "gsm-0", "instruction": "What is 2+2?", "response": "4",
                                                "answer": "4"}])  # fmt: skip
    report = measure_gap(GapConfig(data=(str(gold), str(own)), recipe="gsm8k"), (tiny_model, tiny_tokenizer))
    assert (report.template, report.style) == ("math_infer", "chat")  # the recipe's task prompt
    assert report.datasets[0].layout == "recipe gsm8k"
    assert report.datasets[1].layout.startswith("detected")  # no 'question' column: read by its own layout
    assert report.common_rows == 1 and report.paired[0].num_rows == 1


def test_missing_data_path_is_a_user_error(tmp_path, tiny_model_dir):
    with pytest.raises(SelfDistillError, match="file not found"):
        run_gap(["--model", str(tiny_model_dir), "--data", str(tmp_path / "nope.jsonl")])
    with pytest.raises(SelfDistillError, match="at least one dataset"):
        GapConfig(data=())
    with pytest.raises(SelfDistillError, match="batch_size"):
        GapConfig(data=("x.jsonl",), batch_size=0)


def test_labels_are_file_stems_made_unique():
    assert dataset_labels(["a/gold.jsonl", "b/gold.jsonl", "own.json", "openai/gsm8k"]) == [
        "gold", "gold-2", "own", "gsm8k"]  # fmt: skip


def test_models_whose_head_is_not_a_plain_linear_layer_use_their_own_forward(tiny_model, tiny_tokenizer, monkeypatch):
    from selfdistill.evaluation import nll

    pairs = chat_pairs(tiny_tokenizer)
    fast = response_nll(tiny_model, tiny_tokenizer, pairs, batch_size=3)
    monkeypatch.setattr(nll, "split_lm_head", lambda *args: None)  # as for Gemma 2's softcapped logits
    slow = response_nll(tiny_model, tiny_tokenizer, pairs, batch_size=3)
    for (a, n), (b, m) in zip(fast, slow):
        assert n == m and a == pytest.approx(b, abs=1e-5)


class HalvedLogits(torch.nn.Module):
    """A model whose forward rescales lm_head's output, like Cohere's logit_scale."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.model, self.lm_head = inner, inner.model, inner.lm_head

    def forward(self, **kwargs):
        out = self.inner(**kwargs)
        out.logits = out.logits * 0.5
        return out


def test_a_head_that_rescales_logits_is_detected_and_scored_exactly(tiny_model, tiny_tokenizer):
    model = HalvedLogits(tiny_model)
    pairs = chat_pairs(tiny_tokenizer)
    for (prompt, response), (nll, _) in zip(pairs, response_nll(model, tiny_tokenizer, pairs, batch_size=4)):
        assert nll == pytest.approx(reference_nll(model, tiny_tokenizer, prompt, response)[0], abs=1e-5)
        assert nll != pytest.approx(reference_nll(tiny_model, tiny_tokenizer, prompt, response)[0], abs=1e-3)
