"""Network inputs for gymnasium spaces, in torch: one-hot Discrete values, flattened (and standardised) Boxes.

    x = encode(acts, action_space)                     # (N, n) one-hot, or (N, prod(shape)) float32
    enc = ObsEncoder(observation_space, obs_mean=m, obs_scale=s)
    x = enc(obs)                                        # (N, obs_dim): one-hot, or (obs - m) / s flattened

``ObsEncoder`` keeps the standardisation as buffers ``obs_mean`` / ``obs_scale`` (saved with the weights);
modules that add a network on top subclass it (``MLPPolicy``) or hold one. Numpy input is copied (torch
warns on read-only arrays, e.g. a Trajectory's); tensors are used as they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from irlhf.core.errors import ValidationError
from irlhf.envs.spaces import flat_dim

__all__ = ["ObsEncoder", "encode", "to_tensor"]


def to_tensor(x: torch.Tensor | np.ndarray | Any, dtype: torch.dtype) -> torch.Tensor:
    """``x`` as a ``dtype`` tensor; numpy (or list) input is copied."""
    return x.to(dtype) if torch.is_tensor(x) else torch.tensor(np.asarray(x), dtype=dtype)


def encode(x: Any, space: spaces.Space) -> torch.Tensor:
    """A batch of values of ``space`` as float32 network inputs: Discrete (N,) -> (N, n) one-hot (values
    start..start+n-1), Box (N, *shape) -> (N, prod(shape))."""
    if isinstance(space, spaces.Discrete):
        idx = to_tensor(x, torch.long).reshape(-1) - int(space.start)
        return nn.functional.one_hot(idx, int(space.n)).float()
    d = flat_dim(space)
    return to_tensor(x, torch.float32).reshape(-1, d)


class ObsEncoder(nn.Module):
    """Raw observations (N, *obs_shape) -> (N, obs_dim) inputs: one-hot (Discrete) or ``(x - obs_mean) /
    obs_scale`` flattened (Box; mean 0 and scale 1 when not given)."""

    def __init__(self, observation_space: spaces.Space, obs_mean: np.ndarray | None = None,
                 obs_scale: np.ndarray | None = None):
        super().__init__()
        self.observation_space = observation_space
        self.obs_dim = d_in = flat_dim(observation_space)
        mean = np.zeros(d_in) if obs_mean is None else np.asarray(obs_mean, dtype=np.float64).reshape(-1)
        scale = np.ones(d_in) if obs_scale is None else np.asarray(obs_scale, dtype=np.float64).reshape(-1)
        if mean.shape != (d_in,) or scale.shape != (d_in,) or not (np.all(np.isfinite(mean)) and np.all(scale > 0)):
            raise ValidationError(f"obs_mean / obs_scale: shapes {mean.shape} / {scale.shape}; expected ({d_in},), "
                                  "finite, scale > 0")
        self.register_buffer("obs_mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("obs_scale", torch.as_tensor(scale, dtype=torch.float32))

    def encode(self, obs: Any) -> torch.Tensor:
        """(N, *obs_shape) raw observations -> (N, obs_dim) network inputs."""
        x = encode(obs, self.observation_space)
        if isinstance(self.observation_space, spaces.Discrete):
            return x
        return (x - self.obs_mean) / self.obs_scale

    def forward(self, obs: Any) -> torch.Tensor:
        return self.encode(obs)
