"""AIRL (Fu, Luo & Levine 2018, "Learning Robust Rewards with Adversarial Inverse Reinforcement Learning").

The discriminator has the form of the soft-optimal policy's odds,

    D(s, a, s') = exp(f(s, a, s')) / (exp(f(s, a, s')) + pi(a | s)),
    f(s, a, s') = g(s) + gamma (1 - done) h(s') - h(s)          (g(s, a) with state_only=False),

so its logit is f - log pi(a | s), with pi the current generator's likelihood. At the optimum f recovers
the expert's advantage, g the reward up to a constant (state-only g, deterministic dynamics) and h the
value function: h is a potential-based shaping term that absorbs the dynamics, which is why a state-only
g transfers to new dynamics and g(s, a) does not. The generator maximises log D - log(1 - D) =
f - log pi: entropy-regularised RL on f. ``Result.reward`` is g, the reward to re-optimise elsewhere
(``irlhf.rl.wrappers.RewardVecEnvWrapper``); the shaped f is ``shaped_reward``.

    result = airl.train("Pendulum-v1", demos, airl.Config(algo="sac", total_timesteps=100_000))
    result.reward(obs, acts, next_obs)       # g(s), (n,)
    airl.shaped_reward(result, obs, acts, next_obs, dones)   # f(s, a, s'), (n,)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from irlhf.core.config import Fraction
from irlhf.core.errors import ValidationError
from irlhf.irl import adversarial
from irlhf.nn.mlp import mlp
from irlhf.rl.sb3 import hyperparams

__all__ = ["AirlDiscriminator", "Config", "shaped_reward", "train"]


@dataclasses.dataclass(frozen=True)
class Config(adversarial.Config):
    """AIRL settings: ``irlhf.irl.adversarial.Config`` (generator, rounds, discriminator networks: g and h
    each get ``disc_hidden_sizes``) plus

    state_only: g(s) (disentangled, transfers across dynamics) instead of g(s, a).
    gamma: the shaping discount in f; None = the generator's discount (as the theory needs).

    """

    state_only: bool = True
    gamma: Fraction | None = None


class AirlDiscriminator(adversarial.Discriminator):
    """g (reward) and h (potential) networks; logit = f(s, a, s') - log pi(a | s)."""

    needs_log_pi = True

    def __init__(self, features: adversarial.Features, hidden_sizes: tuple[int, ...], activation: str,
                 gamma: float, state_only: bool, seed: int):
        super().__init__()
        g_in = features.obs_dim + (0 if state_only else features.act_dim)
        self.g = mlp(g_in, hidden_sizes, 1, activation, seed=seed)
        self.h = mlp(features.obs_dim, hidden_sizes, 1, activation, seed=seed + 1)
        self.gamma, self.state_only = float(gamma), bool(state_only)

    def reward(self, x: tuple[torch.Tensor, torch.Tensor, torch.Tensor], dones: torch.Tensor) -> torch.Tensor:
        """g(s) or g(s, a), (N,)."""
        return self.g(x[0] if self.state_only else torch.cat([x[0], x[1]], dim=1))[:, 0]

    def f(self, x: tuple[torch.Tensor, torch.Tensor, torch.Tensor], dones: torch.Tensor) -> torch.Tensor:
        """f = g + gamma (1 - done) h(s') - h(s), (N,)."""
        h_s, h_next = self.h(x[0])[:, 0], self.h(x[2])[:, 0]
        return self.reward(x, dones) + self.gamma * (1.0 - dones) * h_next - h_s

    def logit(self, x: tuple[torch.Tensor, torch.Tensor, torch.Tensor], dones: torch.Tensor,
              log_pi: torch.Tensor | None) -> torch.Tensor:
        if log_pi is None:
            raise ValidationError("AIRL's logit needs the generator's log pi(a | s)")
        return self.f(x, dones) - log_pi

    def policy_reward(self, logit: torch.Tensor, log_pi: torch.Tensor | None) -> torch.Tensor:
        return logit  # log D - log(1 - D) = f - log pi


def shaped_reward(result: adversarial.Result, obs: Any, acts: Any, next_obs: Any, dones: Any = None) -> np.ndarray:
    """f(s, a, s') of a trained AIRL result: obs / next_obs (n, *obs_shape), acts (n, ...), dones (n,) (1 =
    s' terminal; default none) -> (n,) numpy."""
    disc, features = result.discriminator, result.features
    if not isinstance(disc, AirlDiscriminator):
        raise ValidationError(f"result: discriminator {type(disc).__name__}; expected an AIRL result")
    x = features.obs(obs)
    d = torch.zeros(len(x)) if dones is None else torch.as_tensor(np.asarray(dones, dtype=np.float32)).reshape(-1)
    if len(d) != len(x):
        raise ValidationError(f"dones: {len(d)} values for {len(x)} observations; expected one per observation")
    with torch.no_grad():
        return disc.f((x, features.acts(acts), features.obs(next_obs)), d).numpy().astype(np.float64)


def train(source: str, data: Any, config: Config | None = None, *,
          callback: Callable[[dict, Any], bool | None] | None = None) -> adversarial.Result:
    """Train AIRL on ``source`` (a gymnasium id) from the demonstrations ``data`` (list of ``Trajectory`` or
    ``Transitions``).

    Returns ``irlhf.irl.adversarial.Result``; its ``reward`` is g. callback(record, policy) as in GAIL.
    """
    config = Config() if config is None else config
    if not isinstance(config, Config):
        raise ValidationError(f"config: {type(config).__name__}; expected irlhf.irl.airl.Config")
    gamma = config.gamma
    if gamma is None:
        gamma = float(hyperparams(source, config.algo, **config.rl_kwargs).get("gamma", 0.99))
    return adversarial.train(
        source, data, config,
        lambda features: AirlDiscriminator(features, config.disc_hidden_sizes, config.disc_activation, gamma,
                                           config.state_only, config.seed),
        name="airl", callback=callback)
