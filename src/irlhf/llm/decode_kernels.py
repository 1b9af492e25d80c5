"""Faster kernels for the decoding steps of sampling on the CPU: oneDNN-prepacked linear layers, fused GELU.

A decoding step multiplies a few rows (the unfinished samples) by every weight matrix of the model. torch's
default CPU product for such skinny shapes (MKL's ``addmm`` / ``linear`` with M = 1-16 rows) moves 7-15 GB/s of
weights on the 2-core benchmark machine, whose memory reads 36-52 GB/s; oneDNN's linear with the weight reordered
once into its blocked layout moves 17-26 GB/s (``benchmarks/decode_products.py``; docs/RESULTS.md, "Sampling
with prepacked weights"). And GPT-2's ``gelu_new`` is seven elementwise torch calls where
``F.gelu(approximate="tanh")`` is one kernel for the same formula (Hugging Face's ``gelu_pytorch_tanh``).

``decode_kernels`` swaps, for the length of a ``with`` block, the forward of every fp32 CPU ``torch.nn.Linear``
and Hugging Face ``Conv1D`` of at least ``min_elements`` weights for the prepacked product, and of every
``NewGELUActivation`` for the fused GELU; it restores them after. Same fp32 arithmetic in another order: outputs
agree to ~1e-6 relative, so a seeded sample is the same tokens unless two logits tie to that precision. The
packed copies cost one more copy of the swapped weights while the block runs; they are made when the block
opens, so a block opened after an optimiser step uses the new weights. For inference only: no gradient flows to
the packed copies.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["decode_kernels", "available", "MIN_ELEMENTS"]

MIN_ELEMENTS = 2 ** 18
"""Smallest weight (elements) worth packing: below 1 MB oneDNN's per-call cost outweighs the faster product
(128 x 512: 0.7-0.9x MKL's time per call; 256 x 1024 and 512 x 512: 1.5-2.5x faster; 2 cores, 4-16 rows)."""


@functools.cache
def available() -> bool:
    """Whether this torch build runs oneDNN's prepacked fp32 linear (a probe on a 2 x 2 layer, once)."""
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        weight, x = torch.eye(2), torch.ones(1, 2)
        packed = torch.ops.mkldnn._reorder_linear_weight(weight, 1)
        out = torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")
    except (AttributeError, RuntimeError, NotImplementedError):  # why: private ops, absent from some builds
        return False
    return bool(torch.equal(out, x))


def _from_transformers(module: nn.Module, name: str) -> bool:
    return type(module).__name__ == name and type(module).__module__.startswith("transformers")


def _weight_out_in(module: nn.Module) -> torch.Tensor | None:
    """The (out_features, in_features) fp32 CPU weight of a plain Linear or a transformers Conv1D, else None."""
    if type(module) is nn.Linear:
        weight = module.weight
    elif _from_transformers(module, "Conv1D"):
        weight = module.weight.t()  # Conv1D stores (in, out)
    else:
        return None
    if weight.dtype != torch.float32 or weight.device.type != "cpu":
        return None
    return weight.detach().contiguous()


def _packed_forward(weight: torch.Tensor, bias: torch.Tensor | None, rows: int) -> Callable:
    packed = torch.ops.mkldnn._reorder_linear_weight(weight, rows)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")
    return forward


def _fused_gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


def _replacement(module: nn.Module, rows: int, min_elements: int, packing: bool) -> Callable | None:
    """The forward ``module`` gets inside the block, or None to leave it."""
    if _from_transformers(module, "NewGELUActivation"):
        return _fused_gelu
    if not packing:
        return None
    weight = _weight_out_in(module)
    if weight is None or weight.numel() < min_elements:
        return None
    return _packed_forward(weight, None if module.bias is None else module.bias.detach(), rows)


@contextlib.contextmanager
def decode_kernels(model: nn.Module, rows: int, min_elements: int = MIN_ELEMENTS) -> Iterator[int]:
    """Inside the block, ``model``'s fp32 CPU Linear / Conv1D layers of at least ``min_elements`` weights multiply
    through oneDNN-prepacked copies of their weights (packed for ``rows`` input rows, a hint: any count works;
    none where oneDNN is unavailable) and its ``NewGELUActivation`` layers run the fused GELU; yields how many
    modules were swapped. Modules whose ``forward`` is already replaced on the instance (accelerate's device
    hooks, another patch) and subclasses (LoRA, quantised layers) are left as they are."""
    swapped: list[nn.Module] = []
    try:
        packing = available()
        for module in model.modules():
            forward = None if "forward" in module.__dict__ else _replacement(module, max(1, int(rows)),
                                                                               min_elements, packing)
            if forward is not None:
                module.forward = forward
                swapped.append(module)
        yield len(swapped)
    finally:
        for module in swapped:
            del module.forward
