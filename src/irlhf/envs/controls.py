"""Piecewise-constant controls: what the feature-based tasks of active preference learning share.

A trajectory of ``T`` steps is driven by ``N`` control segments (``N`` divides ``T``), segment ``k`` held for
``T / N`` steps; each segment has ``dim`` numbers, each within its ``(low, high)``. Controls travel as
``(..., N, dim)`` arrays, or flat ``(..., N * dim)`` vectors for scipy (``bounds`` matches that layout).
Used by ``irlhf.envs.driving``, ``irlhf.envs.lds`` and ``irlhf.envs.mountaincar``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from irlhf.core.errors import ValidationError, shown
from irlhf.core.seeding import SeedLike, as_generator


@dataclasses.dataclass(frozen=True)
class PiecewiseControls:
    """T steps; per-segment bounds ``low``, ``high`` (dim,); ``names`` of the dim entries (for messages)."""

    T: int
    low: tuple[float, ...]
    high: tuple[float, ...]
    names: tuple[str, ...]

    @property
    def dim(self) -> int:
        return len(self.low)

    def check_segments(self, n: object) -> int:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 or self.T % int(n):
            raise ValidationError(f"n_segments={shown(n)}: expected a positive int dividing T={self.T}")
        return int(n)

    def bounds(self, n_segments: int) -> np.ndarray:
        """``(dim * n_segments, 2)`` rows ``(low, high)``, one per entry of a flat control vector."""
        return np.tile(np.stack([self.low, self.high], axis=1), (self.check_segments(n_segments), 1))

    def check(self, controls: object, name: str = "controls") -> np.ndarray:
        """Validated ``(..., N, dim)`` float controls with N dividing T, finite and within the bounds."""
        layout = f"(..., N, {self.dim}) ({', '.join(self.names)})"
        try:
            c = np.asarray(controls, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValidationError(f"{name}={shown(controls)}: expected a float array of shape {layout}") from None
        if c.ndim < 2 or c.shape[-1] != self.dim or c.shape[-2] < 1 or self.T % c.shape[-2]:
            raise ValidationError(f"{name}: got shape {tuple(c.shape)}; expected {layout} with N segments dividing "
                                  f"T={self.T}")
        if not np.isfinite(c).all():
            raise ValidationError(f"{name}: {int((~np.isfinite(c)).sum())} non-finite entries; expected finite "
                                  "numbers")
        low, high = np.array(self.low), np.array(self.high)
        if (c < low - 1e-9).any() or (c > high + 1e-9).any():
            ranges = ", ".join(f"{n} in [{lo:g}, {hi:g}]" for n, lo, hi in zip(self.names, self.low, self.high))
            raise ValidationError(f"{name}: entries range over [{c.min():.4g}, {c.max():.4g}]; expected {ranges} "
                                  "(see control_bounds())")
        return np.clip(c, low, high)

    def per_step(self, controls: object) -> np.ndarray:
        """Validated controls expanded to ``(..., T, dim)``, one row per step."""
        c = self.check(controls)
        return np.repeat(c, self.T // c.shape[-2], axis=-2)

    def check_states(self, states: object, state_names: tuple[str, ...], name: str = "states") -> np.ndarray:
        """Validated float states ``(..., T+1, len(state_names))``, finite."""
        layout = f"(..., {self.T + 1}, {len(state_names)}) ({', '.join(state_names)})"
        try:
            s = np.asarray(states, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValidationError(f"{name}={shown(states)}: expected a float array of shape {layout}") from None
        if s.ndim < 2 or s.shape[-2:] != (self.T + 1, len(state_names)):
            raise ValidationError(f"{name}: got shape {tuple(s.shape)}; expected {layout}")
        if not np.isfinite(s).all():
            raise ValidationError(f"{name}: {int((~np.isfinite(s)).sum())} non-finite entries; expected finite "
                                  "numbers")
        return s

    def states_and_steps(self, states: object, controls: object,
                         state_names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Validated states ``(..., T+1, S)`` and the per-step controls ``(..., T, dim)`` that produced them, with
        the same batch shape."""
        s, u = self.check_states(states, state_names), self.per_step(controls)
        if u.shape[:-2] != s.shape[:-2]:
            raise ValidationError(f"controls: batch shape {tuple(u.shape[:-2])} differs from the states' "
                                  f"{tuple(s.shape[:-2])}; expected equal")
        return s, u

    def shaped(self, controls: object, n_segments: int) -> np.ndarray:
        """``(..., n_segments, dim)`` controls from that shape or a flat ``(..., n_segments * dim)`` vector."""
        n = self.check_segments(n_segments)
        c = np.asarray(controls, dtype=np.float64)
        if c.ndim >= 2 and c.shape[-2:] == (n, self.dim):
            return c
        if c.ndim >= 1 and c.shape[-1] == self.dim * n:
            return c.reshape(c.shape[:-1] + (n, self.dim))
        raise ValidationError(f"controls: got shape {tuple(c.shape)}; expected (..., {n}, {self.dim}) or flat "
                              f"(..., {self.dim * n}) for n_segments={n}")

    def sample(self, n: object, n_segments: int, seed: SeedLike = 0) -> np.ndarray:
        """``n`` random control arrays ``(n, n_segments, dim)``, uniform within the bounds."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValidationError(f"n={shown(n)}: expected a positive int")
        k = self.check_segments(n_segments)
        return as_generator(seed).uniform(self.low, self.high, size=(int(n), k, self.dim))
