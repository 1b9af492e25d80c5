"""Learned rewards as the RL loop calls them: ``reward(obs, acts, next_obs[, dones])``.

Every learner that hands a reward to a policy (GAIL / AIRL, GCL, IQ-Learn, ...) returns a
:class:`RewardFunction`. The base class does what they all need: accept one transition (an observation
shaped like the space: returns a float, the ``RewardWrapper`` form) or a batch of n (returns (n,) float64
numpy, the ``RewardVecEnvWrapper`` form), check the shapes, copy numpy input (it may be read-only), run the
network without gradients and convert back. A subclass only writes ``batch``:

    class MyReward(RewardFunction):
        def batch(self, obs, acts, next_obs, dones):        # checked (n, ...) numpy arrays -> (n,) tensor
            return self.net(obs, acts)

``next_obs`` may be None for rewards that ignore it; ``dones`` ((n,) bool, True where s' is a real
termination) is passed on when given (``RewardVecEnvWrapper(..., with_dones=True)``).
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from irlhf.core.errors import ValidationError

__all__ = ["RewardFunction"]


class RewardFunction(abc.ABC):
    """r(s, a, s') for one transition or a batch (module docstring). Subclasses set ``observation_space`` and
    ``action_space`` and implement :meth:`batch`."""

    observation_space: spaces.Space
    action_space: spaces.Space

    @abc.abstractmethod
    def batch(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray | None,
              dones: np.ndarray | None) -> torch.Tensor | np.ndarray:
        """Rewards (n,) of n checked transitions: obs / next_obs (n, *obs_shape), acts (n,) Discrete or
        (n, *act_shape) Box, dones (n,) bool or None. Called without gradients."""

    def __call__(self, obs: Any, acts: Any, next_obs: Any = None, dones: Any = None) -> np.ndarray | float:
        shape = tuple(self.observation_space.shape)
        x = np.array(obs)  # copies: torch warns on read-only arrays
        single = x.shape == shape
        a = np.array(acts)
        xn = None if next_obs is None else np.array(next_obs)
        if single:
            x, a = x[None], a.reshape(1, *a.shape)
            xn = None if xn is None else xn[None]
        n = len(x) if x.ndim else 0
        discrete = isinstance(self.action_space, spaces.Discrete)
        a_shape = () if discrete else tuple(self.action_space.shape)
        if discrete and a.ndim == 2 and a.shape[1:] == (1,):
            a = a[:, 0]
        if (x.shape[1:] != shape or x.ndim != len(shape) + 1 or a.shape != (n, *a_shape)
                or (xn is not None and xn.shape != x.shape)):
            raise ValidationError(f"reward: obs {x.shape}, acts {a.shape}, next_obs "
                                  f"{None if xn is None else xn.shape}; expected (n, *{shape}), (n, *{a_shape}) "
                                  "and next_obs shaped like obs")
        if discrete:
            start, n_act = int(self.action_space.start), int(self.action_space.n)
            if n and (np.any(a != np.round(a)) or a.min() < start or a.max() >= start + n_act):
                raise ValidationError(f"reward: actions {a}; expected integers in [{start}, {start + n_act})")
        d = None if dones is None else np.asarray(dones, dtype=bool).reshape(-1)
        if d is not None and len(d) != n:
            raise ValidationError(f"reward: {len(d)} dones for {n} transitions; expected one per transition")
        with torch.no_grad():
            out = self.batch(x, a, xn, d)
        out = out.double().numpy() if torch.is_tensor(out) else np.asarray(out, dtype=np.float64)
        return float(out[0]) if single else out
