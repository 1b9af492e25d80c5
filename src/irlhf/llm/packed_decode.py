"""Linear layers with oneDNN-prepacked weights for the decoding steps of sampling (CPU, fp32).

A decoding step multiplies a few rows (the unfinished samples) by every weight matrix of the model. torch's
default CPU product for such skinny shapes (MKL's ``addmm`` / ``linear`` with M = 1-16 rows) moves 6-9 GB/s of
weights on the 2-core benchmark machine, whose memory reads 36 GB/s; oneDNN's linear with the weight reordered
once into its blocked layout moves 15-21 GB/s (docs/RESULTS.md, "Sampling with prepacked weights").
``packed_linears`` swaps the forward of every fp32 CPU ``torch.nn.Linear`` and Hugging Face ``Conv1D`` (GPT-2's
layers) for that product for the length of a ``with`` block and restores it after. Same fp32 arithmetic in
another summation order: outputs agree to ~1e-6 relative, so a seeded sample is the same tokens unless two
logits tie to that precision. The packed copies cost one more copy of the swapped weights while the block runs;
they are made when the block opens, so a block opened after an optimiser step uses the new weights.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["packed_linears", "available", "MIN_ELEMENTS"]

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


def _weight_out_in(module: nn.Module) -> torch.Tensor | None:
    """The (out_features, in_features) fp32 CPU weight of a plain Linear or a transformers Conv1D, else None."""
    if type(module) is nn.Linear:
        weight = module.weight
    elif type(module).__name__ == "Conv1D" and type(module).__module__.startswith("transformers"):
        weight = module.weight.t()  # Conv1D stores (in, out)
    else:
        return None
    if weight.dtype != torch.float32 or weight.device.type != "cpu":
        return None
    return weight.detach().contiguous()


def _packed_forward(packed: torch.Tensor, bias: torch.Tensor | None) -> Any:
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")
    return forward


@contextlib.contextmanager
def packed_linears(model: nn.Module, rows: int, min_elements: int = MIN_ELEMENTS) -> Iterator[int]:
    """Inside the block, ``model``'s fp32 CPU Linear / Conv1D layers of at least ``min_elements`` weights multiply
    through oneDNN-prepacked copies of their weights (packed for ``rows`` input rows, a hint: any count works);
    yields how many layers were swapped (0 where oneDNN is unavailable). Layers whose ``forward`` is already replaced on the instance (accelerate's
    device hooks, another patch) and subclasses (LoRA, quantised layers) are left as they are. For inference:
    no gradient flows to the packed copies."""
    swapped: list[nn.Module] = []
    try:
        if available():
            for module in model.modules():
                if "forward" in module.__dict__:
                    continue
                weight = _weight_out_in(module)
                if weight is None or weight.numel() < min_elements:
                    continue
                packed = torch.ops.mkldnn._reorder_linear_weight(weight, max(1, int(rows)))
                bias = None if module.bias is None else module.bias.detach()
                module.forward = _packed_forward(packed, bias)
                swapped.append(module)
        yield len(swapped)
    finally:
        for module in swapped:
            del module.forward
