"""Weights as safetensors files, written atomically (temp file + rename): a dict of numpy arrays, a dict of
torch tensors, or a torch module's ``state_dict`` (detached, on the CPU, contiguous; keys optionally prefixed).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from safetensors.numpy import save as _save_numpy
from safetensors.torch import save as _save_torch

from irlhf.core.errors import ValidationError, describe
from irlhf.core.io import atomic_open


def state_dict_tensors(module: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """``module.state_dict()`` as CPU tensors that own their memory, keys prefixed with ``prefix``."""
    return {f"{prefix}{k}": v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def save_tensors(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor]) -> None:
    """Write named torch tensors to ``path`` (safetensors)."""
    bad = [k for k, v in tensors.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValidationError(f"tensors[{bad[0]!r}]={describe(tensors[bad[0]])}: expected a torch.Tensor")
    with atomic_open(path, "wb") as handle:
        handle.write(_save_torch(tensors))


def save_arrays(path: str | os.PathLike[str], arrays: dict[str, Any]) -> None:
    """Write named arrays (anything ``np.asarray`` accepts) to ``path`` (safetensors; keys become strings)."""
    tensors = {str(k): np.ascontiguousarray(np.asarray(v)) for k, v in arrays.items()}
    with atomic_open(path, "wb") as handle:
        handle.write(_save_numpy(tensors))
