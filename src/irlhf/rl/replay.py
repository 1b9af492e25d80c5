"""A replay buffer of raw transitions for learners that act in the environment themselves (online
IQ-Learn); the SB3-driven learners use SB3's own buffers (``irlhf.rl.sb3.relabel_replay_buffer``).

    buffer = ReplayBuffer(capacity, obs_shape, act_shape, act_dtype)
    buffer.add(obs, act, next_obs, terminated)
    idx = rng.integers(len(buffer), size=32); buffer.obs[idx], buffer.acts[idx], ...
"""

from __future__ import annotations

from typing import Any

import numpy as np

from irlhf.core.errors import ValidationError

__all__ = ["ReplayBuffer"]


class ReplayBuffer:
    """A ring buffer of (obs, act, next_obs, terminated) in numpy arrays ``obs``, ``acts``, ``next_obs``
    (float32 observations) and ``dones`` (float32, 1 = terminated; a time-limit cut is not terminal). Once
    ``capacity`` transitions are stored the oldest is overwritten; rows ``0 .. len(buffer) - 1`` are valid."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], act_shape: tuple[int, ...] = (),
                 act_dtype: Any = np.float32):
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity < 1:
            raise ValidationError(f"capacity={capacity!r}: expected an int >= 1")
        self.obs = np.zeros((capacity, *obs_shape), dtype=np.float32)
        self.next_obs = np.zeros_like(self.obs)
        self.acts = np.zeros((capacity, *act_shape), dtype=act_dtype)
        self.dones = np.zeros(capacity, dtype=np.float32)
        self.capacity, self.size, self.pos = int(capacity), 0, 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: Any, act: Any, next_obs: Any, done: bool) -> None:
        i = self.pos
        self.obs[i], self.acts[i], self.next_obs[i], self.dones[i] = obs, act, next_obs, float(done)
        self.pos, self.size = (i + 1) % self.capacity, min(self.size + 1, self.capacity)
