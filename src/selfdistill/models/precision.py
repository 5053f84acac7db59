"""Which number formats the hardware runs fast, shared by generation and training."""

from __future__ import annotations

PRECISIONS = ("auto", "fp32", "bf16")


def bf16_supported(device) -> bool:
    """True where bf16 matmuls have hardware units: CUDA GPUs that support bf16, CPUs with AMX or AVX512-BF16."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    return False


def use_bf16(precision: str, device) -> bool:
    """Resolve a `--precision` value (auto, fp32, bf16) for `device`."""
    from selfdistill.errors import SelfDistillError

    if precision not in PRECISIONS:
        raise SelfDistillError(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    return precision == "bf16" or (precision == "auto" and bf16_supported(device))
