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
from safetensors import safe_open
from safetensors.torch import save
from torch import nn

from irlhf.core.errors import ValidationError
from irlhf.core.io import atomic_open
from irlhf.envs.spaces import act_dim, as_batch, check_spaces, obs_dim, space_from_dict, space_to_dict
from irlhf.nn.encoders import ObsEncoder, to_tensor
from irlhf.nn.mlp import mlp

# check_spaces, obs_dim, space_to_dict and space_from_dict moved to irlhf.envs.spaces; re-exported here
__all__ = ["FORMAT", "MLPPolicy", "Policy", "check_spaces", "load_policy", "obs_dim", "read_module", "save_policy",
           "space_from_dict", "space_to_dict", "write_module"]

FORMAT = "irlhf.policy"
VERSION = "1"


class MLPPolicy(ObsEncoder):
    """Stochastic policy pi(a|s) for a Discrete or Box action space (see the module docstring); the observation
    encoding (buffers ``obs_mean`` / ``obs_scale``) is ``irlhf.nn.encoders.ObsEncoder``'s."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 hidden_sizes: Sequence[int] = (64, 64), activation: str = "relu", *,
                 obs_mean: np.ndarray | None = None, obs_scale: np.ndarray | None = None,
                 log_std_init: float = 0.0, seed: int | None = None):
        check_spaces(observation_space, action_space)
        super().__init__(observation_space, obs_mean, obs_scale)
        self.action_space = action_space
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.activation = activation
        self.discrete = isinstance(action_space, spaces.Discrete)
        self.act_dim = act_dim(action_space)
        self.net = mlp(self.obs_dim, self.hidden_sizes, self.act_dim, activation, seed=seed)
        if not self.discrete:
            self.log_std = nn.Parameter(torch.full((self.act_dim,), float(log_std_init)))

    # -- inputs ---------------------------------------------------------------------------------
    def preprocess(self, obs: torch.Tensor | np.ndarray) -> torch.Tensor:
        """(N, *obs_shape) raw observations -> (N, d_in) network inputs (one-hot or standardised)."""
        return self.encode(obs)

    def forward(self, obs: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Logits (N, n) for a Discrete action space, the Gaussian mean (N, act_dim) for a Box."""
        return self.net(self.preprocess(obs))

    def distribution(self, obs: torch.Tensor | np.ndarray) -> torch.distributions.Distribution:
        out = self(obs)
        if self.discrete:
            return torch.distributions.Categorical(logits=out)
        std = self.log_std.exp().expand_as(out)
        return torch.distributions.Independent(torch.distributions.Normal(out, std), 1)

    def action_tensor(self, act: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Actions as the losses take them: (N,) indices 0..n-1 (Discrete) or (N, act_dim) float32 (Box)."""
        if self.discrete:
            return to_tensor(act, torch.long).reshape(-1) - int(self.action_space.start)
        return to_tensor(act, torch.float32).reshape(-1, self.act_dim)


    def log_prob(self, obs: torch.Tensor | np.ndarray, act: torch.Tensor | np.ndarray) -> torch.Tensor:
        """log pi(act | obs), (N,)."""
        return self.distribution(obs).log_prob(self.action_tensor(act))

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
        batch, single = as_batch(obs, self.observation_space)
        self.module.eval()
        actions = self.module.act(batch, self.deterministic, self._generator)
        return actions[0] if single else actions


# -- saving ------------------------------------------------------------------------------------
def write_module(path: str | os.PathLike[str], module: nn.Module, fmt: str, version: str,
                 spec: dict[str, Any]) -> None:
    """Write a module's state dict as safetensors with ``{"format", "version", "spec" (JSON)}`` metadata.
    Atomic: a failed write leaves any old file intact. Shared by every model file irlhf writes."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    data = save(tensors, metadata={"format": fmt, "version": version, "spec": json.dumps(spec)})
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def read_module(path: str | os.PathLike[str], fmt: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a file written by :func:`write_module` with metadata format ``fmt``: (spec, tensors).
    A missing, corrupt or foreign file raises ``ValidationError`` naming the path."""
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
