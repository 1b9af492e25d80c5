"""Multi-layer perceptrons: ``mlp(in_dim, hidden_sizes, out_dim, activation)`` -> ``torch.nn.Sequential``.

    net = mlp(4, (64, 64), 1, "relu", seed=0)        # Linear(4,64) ReLU Linear(64,64) ReLU Linear(64,1)

Layers use torch's default initialisation; ``seed`` draws it from a private RNG stream (the global
torch RNG is saved and restored), so the same seed gives the same weights and nothing else changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from irlhf.core.errors import ValidationError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
}

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}


def _check_dim(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{name}={value!r}: expected an int >= 1")
    return value


def mlp(
    in_dim: int,
    hidden_sizes: Sequence[int],
    out_dim: int,
    activation: str = "relu",
    *,
    seed: int | None = None,
    dtype: str | torch.dtype = torch.float32,
) -> nn.Sequential:
    """Linear layers of widths in_dim -> hidden_sizes... -> out_dim with ``activation`` between them.

    hidden_sizes may be empty (a linear model). activation: a key of ``ACTIVATIONS``. The output
    layer has no activation. ``seed`` (int >= 0) makes the initialisation reproducible; ``dtype``
    "float32" / "float64" (or the torch dtype).
    """
    _check_dim("in_dim", in_dim)
    _check_dim("out_dim", out_dim)
    if isinstance(hidden_sizes, (str, bytes)) or not isinstance(hidden_sizes, Sequence):
        raise ValidationError(f"hidden_sizes={hidden_sizes!r}: expected a sequence of ints >= 1 (may be empty)")
    for k, width in enumerate(hidden_sizes):
        _check_dim(f"hidden_sizes[{k}]", width)
    if activation not in ACTIVATIONS:
        raise ValidationError(f"activation={activation!r}: expected one of {sorted(ACTIVATIONS)}")
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValidationError(f"dtype={dtype!r}: expected one of {sorted(DTYPES)}")
        dtype = DTYPES[dtype]
    elif dtype not in DTYPES.values():
        raise ValidationError(f"dtype={dtype!r}: expected torch.float32 or torch.float64")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValidationError(f"seed={seed!r}: expected a non-negative int or None")

    widths = [in_dim, *hidden_sizes, out_dim]

    def build() -> nn.Sequential:
        layers: list[nn.Module] = []
        for k in range(len(widths) - 1):
            layers.append(nn.Linear(widths[k], widths[k + 1], dtype=dtype))
            if k < len(widths) - 2:
                layers.append(ACTIVATIONS[activation]())
        return nn.Sequential(*layers)

    if seed is None:
        return build()
    with torch.random.fork_rng(devices=[]):  # private stream: the global RNG state is restored afterwards
        torch.manual_seed(seed)
        return build()
