"""Segments of episodes and the labelled pairs of them: the data of learning from trajectory preferences
(Christiano et al. 2017; ``irlhf.preference.trajectory``).

    segments = sample_segments(episodes, n=100, length=25, seed=0)    # Segments (N, L, ...)
    data = Preferences(segments[:50], segments[50:], mu, round)       # pairs with labels mu in {1, 0.5, 0}

A segment cut from an episode that *terminated* may run past its end: those steps are padded (last
observation, last action, true reward 0) and masked out (``mask`` False), so an early end is visible to a
reward model as missing reward.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from irlhf.core.config import check_number
from irlhf.core.errors import ValidationError
from irlhf.core.io import atomic_open
from irlhf.core.seeding import as_generator
from irlhf.data.types import Trajectory

__all__ = ["Preferences", "Segments", "sample_segments"]


@dataclasses.dataclass(frozen=True, eq=False)
class Segments:
    """N segments of L steps: obs (N, L, *obs_shape), acts (N, L, *act_shape), true_rews (N, L) (0 on padding),
    mask (N, L) bool (False on the absorbing steps after a terminated episode's end)."""

    obs: np.ndarray
    acts: np.ndarray
    true_rews: np.ndarray
    mask: np.ndarray

    def __post_init__(self) -> None:
        n, length = np.shape(self.true_rews)[:2] if np.ndim(self.true_rews) == 2 else (None, None)
        for name in ("obs", "acts", "mask"):
            shape = np.shape(getattr(self, name))
            if n is None or len(shape) < 2 or shape[:2] != (n, length):
                raise ValidationError(f"Segments.{name}: shape {shape}; expected (N, L, ...) with (N, L) = "
                                      f"true_rews' shape {np.shape(self.true_rews)}")

    def __len__(self) -> int:
        return len(self.true_rews)

    @property
    def length(self) -> int:
        return int(self.true_rews.shape[1])

    def __getitem__(self, index: Any) -> "Segments":
        index = np.atleast_1d(np.asarray(index)) if not isinstance(index, slice) else index
        return Segments(self.obs[index], self.acts[index], self.true_rews[index], self.mask[index])

    def returns(self) -> np.ndarray:
        """(N,) true segment returns."""
        return self.true_rews.sum(axis=1)

    @staticmethod
    def concatenate(parts: Sequence["Segments"]) -> "Segments":
        return Segments(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("obs", "acts", "true_rews",
                                                                                     "mask")))


@dataclasses.dataclass(frozen=True, eq=False)
class Preferences:
    """The labelled dataset: pairs (segments_a[k], segments_b[k]) with mu[k] in {1, 0.5, 0} (skipped queries are
    not stored), and the round each label was asked in."""

    segments_a: Segments
    segments_b: Segments
    mu: np.ndarray
    round: np.ndarray

    def __len__(self) -> int:
        return len(self.mu)

    def __getitem__(self, index: Any) -> "Preferences":
        return Preferences(self.segments_a[index], self.segments_b[index], self.mu[index], self.round[index])

    @staticmethod
    def concatenate(parts: Sequence["Preferences"]) -> "Preferences":
        return Preferences(Segments.concatenate([p.segments_a for p in parts]),
                           Segments.concatenate([p.segments_b for p in parts]),
                           np.concatenate([p.mu for p in parts]), np.concatenate([p.round for p in parts]))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the pairs as a compressed .npz (atomic)."""
        arrays = {f"{side}_{f}": getattr(getattr(self, f"segments_{side}"), f)
                  for side in ("a", "b") for f in ("obs", "acts", "true_rews", "mask")}
        with atomic_open(path, "wb") as handle:
            np.savez_compressed(handle, mu=self.mu, round=self.round, **arrays)


def sample_segments(episodes: Sequence[Trajectory], n: int, length: int, seed: Any = 0) -> Segments:
    """``n`` segments of ``length`` steps drawn uniformly over all valid start positions of ``episodes``.

    A terminated episode can start a segment at any of its steps (the part past its end is padded with its last
    observation, its last action, true reward 0 and mask False); an episode cut by a time limit only where
    the whole segment fits. Raises ``ValidationError`` when no episode can hold a segment. Same seed, same
    segments.
    """
    check_number("n", n, low=1, integer=True)
    check_number("length", length, low=1, integer=True)
    rng = as_generator(seed)
    starts = np.array([len(e) if e.terminal else max(len(e) - length + 1, 0) for e in episodes], dtype=np.int64)
    if len(episodes) == 0 or starts.sum() == 0:
        longest = max((len(e) for e in episodes), default=0)
        raise ValidationError(f"segment_length={length}: longer than every episode to cut it from (longest "
                              f"{longest} steps, none terminated); expected segment_length <= episode length")
    picks = rng.choice(len(episodes), size=n, p=starts / starts.sum())
    offsets = np.floor(rng.random(n) * starts[picks]).astype(np.int64)
    first = episodes[0]
    obs = np.empty((n, length, *first.obs.shape[1:]), dtype=first.obs.dtype)
    acts = np.empty((n, length, *first.acts.shape[1:]), dtype=first.acts.dtype)
    rews = np.zeros((n, length))
    mask = np.zeros((n, length), dtype=bool)
    for k, (e, t0) in enumerate(zip(picks, offsets)):
        ep = episodes[e]
        t1 = min(t0 + length, len(ep))
        m = t1 - t0
        obs[k, :m], acts[k, :m], rews[k, :m], mask[k, :m] = ep.obs[t0:t1], ep.acts[t0:t1], ep.rews[t0:t1], True
        if m < length:  # absorbing steps after the end
            obs[k, m:], acts[k, m:] = ep.obs[t1], ep.acts[t1 - 1]
    return Segments(obs, acts, rews, mask)
