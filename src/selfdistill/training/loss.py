"""Completion-only loss, computing the language-model head only at the positions that carry loss.

`CompletionLoss` wraps the model being trained (a PEFT model or a plain causal LM) in one
module whose forward returns the summed token NLL of a batch, so DDP, FSDP and DeepSpeed wrap it
whole and see every parameter used in one forward call.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.utils.checkpoint

from selfdistill.training.rows import TrainRow

HEAD_CHUNK = 1024  # loss positions projected onto the vocabulary at once


class CompletionLoss(torch.nn.Module):
    """Summed NLL of the target tokens of a right-padded batch.

    No attention mask is passed: with right padding and causal attention a real token never sees
    a pad (pads only follow it), so the outputs at real positions are exact, and the attention
    takes its fused causal path (on CPU, a third faster and half the activation memory of the
    masked path). The vocabulary projection and its cross-entropy run in chunks that are
    recomputed in the backward pass, so fp32 logits for every loss position are never all held
    at once (with a 49k vocabulary they would rival the activations in size).
    """

    def __init__(self, model, split_head: bool):
        super().__init__()
        self.model = model
        self.split_head = split_head  # logits == lm_head(decoder hidden states): project only loss positions

    def forward(self, input_ids=None, rows=None, positions=None, targets=None):
        if input_ids is None:
            # a process with no rows in this pass: a zero that touches every trainable weight, so
            # DDP's gradient all-reduce still runs, with no forward pass to pay for or overflow
            return sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0
        causal_lm = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        if not self.split_head:
            logits = causal_lm(input_ids=input_ids, use_cache=False).logits[rows, positions]
            return torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum")
        hidden = causal_lm.model(input_ids=input_ids, use_cache=False).last_hidden_state[rows, positions]
        head = causal_lm.lm_head
        total = hidden.new_zeros((), dtype=torch.float32)
        for start in range(0, len(targets), HEAD_CHUNK):
            chunk = slice(start, start + HEAD_CHUNK)
            total = total + torch.utils.checkpoint.checkpoint(
                _head_nll, head, hidden[chunk], targets[chunk], use_reentrant=False
            )
        return total


def _head_nll(head, hidden, targets):
    return torch.nn.functional.cross_entropy(head(hidden).float(), targets, reduction="sum")


def collate(batch: Sequence[TrainRow], pad_id: int, device) -> dict[str, torch.Tensor]:
    """Right-padded ids and the (row, position) -> target index of every loss token.

    Position t predicts token t + 1, so a row's loss positions run from its last prompt token to
    its second-to-last token.
    """
    width = max(len(row.ids) for row in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    rows, positions, targets = [], [], []
    for b, row in enumerate(batch):
        ids[b, : len(row.ids)] = torch.tensor(row.ids)
        rows += [b] * row.num_loss_tokens
        positions += range(row.prompt_len - 1, len(row.ids) - 1)
        targets += row.ids[row.prompt_len :]
    tensors = {"input_ids": ids, "rows": torch.tensor(rows), "positions": torch.tensor(positions),
               "targets": torch.tensor(targets)}  # fmt: skip
    return {name: tensor.to(device) for name, tensor in tensors.items()}
