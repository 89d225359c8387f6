"""Which floating-point type the chains compute in.

``"auto"`` picks bfloat16 where the hardware multiplies bf16 natively (a CPU whose oneDNN
reports bf16 support — AVX512-BF16 or AMX — or a CUDA GPU with bf16 tensor cores) and
float32 elsewhere, so a config written on one machine stays correct on another.
"""

from __future__ import annotations

import functools

import torch

_NAMES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@functools.cache
def native_bf16(device_type: str) -> bool:
    """Whether ``device_type`` ("cpu", "cuda") multiplies bfloat16 natively."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device_type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def resolve_dtype(name: str, device: torch.device | str) -> torch.dtype:
    """The torch dtype for a config's ``"float32" | "bfloat16" | "auto"``."""
    if name == "auto":
        dev = torch.device(device)
        return torch.bfloat16 if native_bf16(dev.type) else torch.float32
    try:
        return _NAMES[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; choose one of float32, bfloat16, auto") from None
