"""Per-token negative log-likelihood of responses given prompts, computed economically.

Used by the distribution-gap meter (how far a dataset's targets sit from a model) and by anything
that needs a model's NLL of given text. Prompt and response are tokenized separately and their ids
joined, so the boundary is exact; the LM head runs only at positions that predict response tokens
(with a 49k vocabulary, full-sequence logits would dominate the cost).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from selfdistill.errors import SelfDistillError
from selfdistill.models.heads import split_lm_head

HEAD_CHUNK = 1024  # response positions projected onto the vocabulary at once (a 49k vocab: 200 MB fp32)


def response_nll(model, tokenizer, pairs: Sequence[tuple[str, str]], batch_size: int = 8) -> list[tuple[float, int]]:
    """(mean NLL per response token, number of response tokens) for each (prompt, response) pair.

    Prompt and response are tokenized separately (no special tokens added: chat text holds its own)
    and their ids concatenated, so the boundary is exact.
    """
    return score_tokens(model, encode_pairs(tokenizer, pairs), batch_size)


def encode_pairs(tokenizer, pairs: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    if not pairs:
        return []
    prompts = tokenizer([prompt for prompt, _ in pairs], add_special_tokens=False)["input_ids"]
    responses = tokenizer([response for _, response in pairs], add_special_tokens=False)["input_ids"]
    return list(zip(prompts, responses))


def score_tokens(
    model, encoded: Sequence[tuple[list[int], list[int]]], batch_size: int = 8,
    on_batch: Callable[[int], None] | None = None,
) -> list[tuple[float, int]]:  # fmt: skip
    """`response_nll` on token ids: rows sorted by length and right-padded; logits only where needed."""
    import torch

    if batch_size < 1:
        raise SelfDistillError(f"batch_size must be >= 1, got {batch_size}")
    for index, (prompt_ids, response_ids) in enumerate(encoded):
        if not prompt_ids or not response_ids:
            empty = "prompt" if not prompt_ids else "response"
            raise SelfDistillError(f"pair {index}: the {empty} has no tokens; nothing to score")
    if not encoded:
        return []
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]) + len(encoded[i][1]), reverse=True)
    device = next(model.parameters()).device
    results: list[tuple[float, int]] = [(math.nan, 0)] * len(encoded)
    with torch.inference_mode():
        shortest = encoded[order[-1]]
        split = split_lm_head(model, shortest[0] + shortest[1], device)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            sums = _score_batch(model, [encoded[i] for i in batch], device, split)
            for i, total in zip(batch, sums):
                count = len(encoded[i][1])
                results[i] = (total / count, count)
            if on_batch is not None:
                on_batch(len(batch))
    return results


def _score_batch(model, pairs, device, split) -> list[float]:
    """Summed response NLL per row of one batch."""
    import torch

    width = max(len(prompt) + len(response) for prompt, response in pairs)
    ids = torch.zeros((len(pairs), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    rows, positions, targets = [], [], []
    for b, (prompt, response) in enumerate(pairs):
        sequence = prompt + response
        ids[b, : len(sequence)] = torch.tensor(sequence)
        mask[b, : len(sequence)] = 1
        rows += [b] * len(response)
        positions += range(len(prompt) - 1, len(sequence) - 1)  # position t predicts token t + 1
        targets += response
    ids, mask = ids.to(device), mask.to(device)
    rows_t, positions_t, targets_t = (torch.tensor(x, device=device) for x in (rows, positions, targets))
    if split is not None:
        decoder, head = split
        hidden = decoder(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state[rows_t, positions_t]
        nll = torch.cat([
            _token_nll(head(hidden[i : i + HEAD_CHUNK]), targets_t[i : i + HEAD_CHUNK])
            for i in range(0, len(targets), HEAD_CHUNK)
        ])  # fmt: skip
    else:
        first = min(len(prompt) for prompt, _ in pairs) - 1
        keep = torch.arange(first, width - 1, device=device)
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False, logits_to_keep=keep).logits
        nll = _token_nll(logits[rows_t, positions_t - first], targets_t)
    sums = torch.zeros(len(pairs), dtype=torch.float64, device=device).index_add_(0, rows_t, nll.double())
    return sums.tolist()


def _token_nll(logits, targets):
    import torch

    logits = logits.float()  # log-softmax in fp32 whatever the model's precision
    return torch.logsumexp(logits, dim=-1) - logits.gather(-1, targets[:, None]).squeeze(-1)
