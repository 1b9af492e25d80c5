"""Explicit randomness: every sampling function takes a seed or a numpy Generator."""

from __future__ import annotations

import importlib.util
import random

import numpy as np

from irlhf.core.errors import ValidationError, shown

SeedLike = int | np.random.Generator | None


def as_generator(seed: SeedLike) -> np.random.Generator:
    """Return a Generator: pass one through, or build one from an int seed (None = fresh entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0):
        raise ValidationError(f"seed={shown(seed)}: expected a non-negative int, a numpy Generator, or None")
    return np.random.default_rng(seed)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy's legacy global state and torch (for code that uses global RNGs)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if importlib.util.find_spec("torch") is not None:
        import torch  # why: slow (~1 s); only seed_everything needs it, not every user of as_generator

        torch.manual_seed(seed)
