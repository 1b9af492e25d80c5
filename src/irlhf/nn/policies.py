"""Policies for gymnasium spaces: an MLP with a categorical (Discrete) or Gaussian (Box) head.

    module = MLPPolicy(observation_space, action_space, hidden_sizes=(64, 64), obs_mean=m, obs_scale=s, seed=0)
    module.log_prob(obs, act), module.entropy(obs)        # torch tensors, (N,)
    policy = Policy(module)                              # the callable form learners return
    actions = policy(obs_batch)                          # numpy, argmax / mean (clipped to the box)
    save_policy("policy.safetensors", policy); policy = load_policy("policy.safetensors")

Observations: a Box is flattened and standardised with ``(obs - obs_mean) / obs_scale`` (buffers of the
module, so the same normalisation is applied when acting and travels with the saved weights); a
Discrete observation is one-hot encoded. Actions: Discrete(n, start) -> n logits, actions start..start+n-1;
Box -> a plain Gaussian with mean net(obs) and a state-independent log standard deviation (one per action
dimension); acting deterministically returns the mean, clipped to the box.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from irlhf.core.errors import ValidationError
from irlhf.core.io import atomic_open
from irlhf.nn.mlp import mlp

FORMAT = "irlhf.policy"
VERSION = "1"


def check_spaces(observation_space: Any, action_space: Any) -> None:
    """Raise ``ValidationError`` unless the observation space is Box/Discrete and the action space Discrete/Box."""
    if not isinstance(observation_space, (spaces.Box, spaces.Discrete)):
        raise ValidationError(f"observation_space={observation_space!r}: expected a gymnasium Box or Discrete space")
    if not isinstance(action_space, (spaces.Box, spaces.Discrete)):
        raise ValidationError(f"action_space={action_space!r}: expected a gymnasium Discrete or Box space")
    if isinstance(observation_space, spaces.Box) and int(np.prod(observation_space.shape)) < 1:
        raise ValidationError(f"observation_space={observation_space!r}: expected at least one dimension")
    if isinstance(action_space, spaces.Box) and int(np.prod(action_space.shape)) < 1:
        raise ValidationError(f"action_space={action_space!r}: expected at least one dimension")


def obs_dim(space: spaces.Space) -> int:
    """Width of the network input for an observation space (flattened Box, or one-hot Discrete)."""
    return int(space.n) if isinstance(space, spaces.Discrete) else int(np.prod(space.shape))


def _tensor(x: torch.Tensor | np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """``x`` as a ``dtype`` tensor; numpy input is copied (torch warns on read-only arrays, e.g. a Trajectory's)."""
    return x.to(dtype) if torch.is_tensor(x) else torch.tensor(np.asarray(x), dtype=dtype)


class MLPPolicy(nn.Module):
    """Stochastic policy pi(a|s) for a Discrete or Box action space (see the module docstring)."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 hidden_sizes: Sequence[int] = (64, 64), activation: str = "relu", *,
                 obs_mean: np.ndarray | None = None, obs_scale: np.ndarray | None = None,
                 log_std_init: float = 0.0, seed: int | None = None):
        super().__init__()
        check_spaces(observation_space, action_space)
        self.observation_space = observation_space
        self.action_space = action_space
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.activation = activation
        self.discrete = isinstance(action_space, spaces.Discrete)
        d_in = obs_dim(observation_space)
        self.act_dim = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        self.net = mlp(d_in, self.hidden_sizes, self.act_dim, activation, seed=seed)
        mean = np.zeros(d_in) if obs_mean is None else np.asarray(obs_mean, dtype=np.float64).reshape(-1)
        scale = np.ones(d_in) if obs_scale is None else np.asarray(obs_scale, dtype=np.float64).reshape(-1)
        if mean.shape != (d_in,) or scale.shape != (d_in,) or not (np.all(np.isfinite(mean)) and np.all(scale > 0)):
            raise ValidationError(f"obs_mean / obs_scale: shapes {mean.shape} / {scale.shape}; expected ({d_in},), "
                                  "finite, scale > 0")
        self.register_buffer("obs_mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("obs_scale", torch.as_tensor(scale, dtype=torch.float32))
        if not self.discrete:
            self.log_std = nn.Parameter(torch.full((self.act_dim,), float(log_std_init)))

    # -- inputs ---------------------------------------------------------------------------------
    def preprocess(self, obs: torch.Tensor | np.ndarray) -> torch.Tensor:
        """(N, *obs_shape) raw observations -> (N, d_in) network inputs (one-hot or standardised)."""
        if isinstance(self.observation_space, spaces.Discrete):
            idx = _tensor(obs, torch.long).reshape(-1)
            return nn.functional.one_hot(idx - int(self.observation_space.start), self.obs_mean.shape[0]).float()
        x = _tensor(obs, torch.float32).reshape(-1, self.obs_mean.shape[0])
        return (x - self.obs_mean) / self.obs_scale

    def forward(self, obs: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Logits (N, n) for a Discrete action space, the Gaussian mean (N, act_dim) for a Box."""
        return self.net(self.preprocess(obs))

    def distribution(self, obs: torch.Tensor | np.ndarray) -> torch.distributions.Distribution:
        out = self(obs)
        if self.discrete:
            return torch.distributions.Categorical(logits=out)
        std = self.log_std.exp().expand_as(out)
        return torch.distributions.Independent(torch.distributions.Normal(out, std), 1)

    def _action_tensor(self, act: torch.Tensor | np.ndarray) -> torch.Tensor:
        if self.discrete:
            return _tensor(act, torch.long).reshape(-1) - int(self.action_space.start)
        return _tensor(act, torch.float32).reshape(-1, self.act_dim)

    def log_prob(self, obs: torch.Tensor | np.ndarray, act: torch.Tensor | np.ndarray) -> torch.Tensor:
        """log pi(act | obs), (N,)."""
        return self.distribution(obs).log_prob(self._action_tensor(act))

    def entropy(self, obs: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Entropy of pi(. | obs), (N,)."""
        return self.distribution(obs).entropy()

    def act(self, obs: np.ndarray, deterministic: bool = True,
            generator: torch.Generator | None = None) -> np.ndarray:
        """Batch of raw observations -> numpy actions (argmax / mean when deterministic, else sampled)."""
        n = len(obs)
        with torch.no_grad():
            out = self(obs)
            if self.discrete:
                if deterministic:
                    idx = out.argmax(dim=-1)
                else:
                    idx = torch.multinomial(out.softmax(dim=-1), 1, generator=generator).reshape(-1)
                return (idx.numpy() + int(self.action_space.start)).astype(self.action_space.dtype)
            if deterministic:
                a = out
            else:
                noise = torch.randn(out.shape, generator=generator)
                a = out + noise * self.log_std.exp()
        a = a.numpy().astype(np.float64).reshape(n, *self.action_space.shape)
        a = np.clip(a, self.action_space.low, self.action_space.high)
        return a.astype(self.action_space.dtype)


class Policy:
    """The callable form of a policy: ``policy(obs_batch) -> actions`` (numpy in, numpy out).

    A single observation (shaped like the observation space) gives a single action. ``deterministic``
    (default True): argmax / mean; False samples with a generator seeded by ``seed``.
    """

    def __init__(self, module: MLPPolicy, deterministic: bool = True, seed: int | None = None):
        self.module = module
        self.deterministic = deterministic
        self._generator = torch.Generator()
        if seed is not None:
            self._generator.manual_seed(seed)
        else:
            self._generator.seed()

    @property
    def observation_space(self) -> spaces.Space:
        return self.module.observation_space

    @property
    def action_space(self) -> spaces.Space:
        return self.module.action_space

    def __call__(self, obs: Any) -> np.ndarray:
        x = np.asarray(obs)
        space = self.observation_space
        single = x.shape == tuple(space.shape)
        batch = x[None] if single else x
        if batch.shape[1:] != tuple(space.shape):
            raise ValidationError(f"obs: shape {x.shape}; expected {tuple(space.shape)} or (N, *{tuple(space.shape)})")
        self.module.eval()
        actions = self.module.act(batch, self.deterministic, self._generator)
        return actions[0] if single else actions


# -- saving ------------------------------------------------------------------------------------
def space_to_dict(space: spaces.Space) -> dict[str, Any]:
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):
        def enc(v: np.ndarray) -> list:
            return [x if np.isfinite(x) else str(x) for x in np.asarray(v, dtype=np.float64).reshape(-1).tolist()]
        return {"type": "Box", "shape": list(space.shape), "low": enc(space.low), "high": enc(space.high),
                "dtype": str(space.dtype)}
    raise ValidationError(f"space={space!r}: expected a Box or Discrete space")


def space_from_dict(d: dict[str, Any]) -> spaces.Space:
    if d.get("type") == "Discrete":
        return spaces.Discrete(int(d["n"]), start=int(d["start"]))
    if d.get("type") == "Box":
        shape = tuple(int(s) for s in d["shape"])
        dtype = np.dtype(d["dtype"])
        low = np.array([float(x) for x in d["low"]]).reshape(shape).astype(dtype)
        high = np.array([float(x) for x in d["high"]]).reshape(shape).astype(dtype)
        return spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
    raise ValidationError(f"space description {d!r}: expected type Box or Discrete")


def write_module(path: str | os.PathLike[str], module: nn.Module, fmt: str, version: str,
                 spec: dict[str, Any]) -> None:
    """Write a module's state dict as safetensors with ``{"format", "version", "spec" (JSON)}`` metadata.
    Atomic: a failed write leaves any old file intact. Shared by every model file irlhf writes."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    data = save(tensors, metadata={"format": fmt, "version": version, "spec": json.dumps(spec)})
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def read_module(path: str | os.PathLike[str], fmt: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a file written by :func:`write_module` with metadata format ``fmt``: (spec, tensors).
    A missing, corrupt or foreign file raises ``ValidationError`` naming the path."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except FileNotFoundError:
        raise ValidationError(f"path={str(path)!r}: no such file") from None
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise ValidationError(f"path={str(path)!r}: not a safetensors file ({exc})") from None
    if meta.get("format") != fmt:
        raise ValidationError(f"path={str(path)!r}: metadata format {meta.get('format')!r}; expected {fmt!r}")
    return json.loads(meta["spec"]), tensors


def save_policy(path: str | os.PathLike[str], policy: Policy | MLPPolicy) -> None:
    """Write the policy's weights (including the observation normalisation) as safetensors; the spaces and
    architecture go in the file's metadata as JSON. Atomic: a failed write leaves any old file intact."""
    module = policy.module if isinstance(policy, Policy) else policy
    if not isinstance(module, MLPPolicy):
        raise ValidationError(f"policy: {type(policy).__name__}; expected a Policy or MLPPolicy")
    spec = {"observation_space": space_to_dict(module.observation_space),
            "action_space": space_to_dict(module.action_space),
            "hidden_sizes": list(module.hidden_sizes), "activation": module.activation}
    write_module(path, module, FORMAT, VERSION, spec)


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read a policy written by :func:`save_policy`; returns the callable ``Policy`` (deterministic)."""
    spec, tensors = read_module(path, FORMAT)
    module = MLPPolicy(space_from_dict(spec["observation_space"]), space_from_dict(spec["action_space"]),
                       spec["hidden_sizes"], spec["activation"])
    module.load_state_dict(tensors)
    module.eval()
    return Policy(module)
