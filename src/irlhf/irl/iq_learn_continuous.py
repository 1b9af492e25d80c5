"""IQ-Learn for continuous (Box) actions: the soft actor-critic form (Garg et al. 2021, "IQ-Learn: Inverse
soft-Q Learning for Imitation"; the authors' ``agent=sac``). ``irlhf.irl.iq_learn.train`` dispatches here for
Box action spaces; the loop, the config and the discrete form are in ``irlhf.irl.iq_learn``.

A critic Q(s, a) (an MLP on concat(obs, a), a in [-1, 1]^d, i.e. the action rescaled from the Box bounds) and
a tanh-squashed Gaussian actor a = tanh(u), u ~ N(mu(s), sigma(s)^2):

    log pi(a | s) = log N(u; mu, sigma) - sum_i log(1 - tanh(u_i)^2)     (in the [-1, 1] action units)
    V(s)          = Q(s, a~pi) - alpha log pi(a | s)                      (one sample; no gradient to the actor)
    critic:  the IQ-Learn loss L(Q) (``irlhf.nn.iq``) with r = Q(s, a) - gamma (1 - done) V(s')
    actor:   min_pi  E_s[alpha log pi(a | s) - Q(s, a)],  a ~ pi(. | s)   (the SAC actor update)
             over expert and policy states online, expert states offline.

alpha is fixed (no temperature learning). The greedy policy is a = tanh(mu(s)) scaled to the Box bounds.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from irlhf.core.errors import ValidationError
from irlhf.envs.spaces import act_dim, as_batch, obs_dim
from irlhf.nn.iq import iq_objective, polyak
from irlhf.nn.encoders import ObsEncoder
from irlhf.nn.mlp import mlp
from irlhf.rl.rewards import RewardFunction

__all__ = ["ActorPolicy", "BoxScaling", "Critic", "SACLearner", "SACReward", "TanhGaussianActor", "actor_loss",
           "sac_iq_loss"]

LOG_STD_BOUNDS = (-5.0, 2.0)  # the authors' SAC actor (agent/sac.yaml log_std_bounds)


# -- networks and losses -----------------------------------------------------------------------
class Critic(nn.Module):
    """Q(s, a): an MLP on concat(network input of s (N, d_in), a in [-1, 1]^act_dim (N, act_dim)) -> (N,)."""

    def __init__(self, d_in: int, act_dim: int, hidden_sizes: tuple[int, ...], activation: str, seed: int):
        super().__init__()
        self.net = mlp(d_in + act_dim, hidden_sizes, 1, activation, seed=seed)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, a], dim=-1))[:, 0]


class TanhGaussianActor(nn.Module):
    """pi(a | s): a = tanh(u), u ~ N(mu(x), sigma(x)^2), log sigma squashed into ``LOG_STD_BOUNDS``;
    actions in [-1, 1]^act_dim (the caller rescales to the Box). Inputs are network inputs x (N, d_in)."""

    def __init__(self, d_in: int, act_dim: int, hidden_sizes: tuple[int, ...], activation: str, seed: int):
        super().__init__()
        self.act_dim = act_dim
        self.net = mlp(d_in, hidden_sizes, 2 * act_dim, activation, seed=seed)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, log sigma), each (N, act_dim)."""
        mu, raw = self.net(x).chunk(2, dim=-1)
        lo, hi = LOG_STD_BOUNDS
        return mu, lo + 0.5 * (hi - lo) * (torch.tanh(raw) + 1.0)  # smooth clamp, as the authors' actor

    @staticmethod
    def _log_prob(u: torch.Tensor, mu: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
        """log pi(tanh(u)) (N,): Gaussian log-density minus log|d tanh/du| = 2 (log 2 - u - softplus(-2u))."""
        gauss = (-0.5 * ((u - mu) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        return gauss - (2.0 * (math.log(2.0) - u - nn.functional.softplus(-2.0 * u))).sum(-1)

    def sample(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised sample a (N, act_dim) in (-1, 1) and log pi(a | s) (N,)."""
        mu, log_std = self(x)
        u = mu + log_std.exp() * torch.randn(mu.shape, generator=generator)
        return torch.tanh(u), self._log_prob(u, mu, log_std)

    def mean_action(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The greedy action tanh(mu) (N, act_dim) and its log pi (N,)."""
        mu, log_std = self(x)
        return torch.tanh(mu), self._log_prob(mu, mu, log_std)


def sac_iq_loss(critic: Callable, actor: Any, x: torch.Tensor, a: torch.Tensor, xn: torch.Tensor,
                dones: torch.Tensor, is_expert: torch.Tensor | None = None, *, alpha: float, gamma: float,
                divergence: str = "chi2", chi_alpha: float = 0.5, regularize_mixed: bool = False,
                target_critic: Callable | None = None, generator: torch.Generator | None = None,
                as_float: bool = True) -> tuple[torch.Tensor, dict[str, Any]]:
    """The continuous critic loss: ``iq_objective`` with V(s) = Q(s, a') - alpha log pi(a' | s), a' ~ pi.

    critic(x (N, d_in), a (N, act_dim)) -> (N,); actor.sample(x, generator) -> (a' (N, act_dim), log pi (N,)),
    drawn once for s and once for s' and not differentiated (only the critic learns here). x, xn: network
    inputs of s and s'; a: actions in [-1, 1]; V(s') uses ``target_critic`` when given.
    """
    n = len(x)
    with torch.no_grad():
        a_pi, log_pi = actor.sample(torch.cat([x, xn]), generator)
    v = critic(x, a_pi[:n]) - alpha * log_pi[:n]
    v_next = (target_critic or critic)(xn, a_pi[n:]) - alpha * log_pi[n:]
    return iq_objective(critic(x, a), v, v_next, dones, is_expert, gamma=gamma, divergence=divergence,
                        chi_alpha=chi_alpha, regularize_mixed=regularize_mixed, as_float=as_float)


def actor_loss(critic: Callable, actor: Any, x: torch.Tensor, *, alpha: float,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """The SAC actor loss E_s[alpha log pi(a | s) - Q(s, a)], a ~ pi(. | s) reparameterised; x (N, d_in)."""
    a, log_pi = actor.sample(x, generator)
    return (alpha * log_pi - critic(x, a)).mean()


# -- policy and reward ---------------------------------------------------------------------------
class BoxScaling:
    """Box actions <-> [-1, 1]: a_env = low + (a + 1) (high - low) / 2."""

    def __init__(self, space: spaces.Box):
        self.low, self.high = space.low.astype(np.float64).reshape(-1), space.high.astype(np.float64).reshape(-1)

    def to_unit(self, a: np.ndarray) -> np.ndarray:
        """(N, *shape) env actions -> (N, act_dim) in [-1 + 1e-6, 1 - 1e-6] (clipped: expert actions at the
        bounds would otherwise be atanh(+-1) = inf for the actor)."""
        unit = 2.0 * (a.reshape(len(a), -1) - self.low) / (self.high - self.low) - 1.0
        return np.clip(unit, -1 + 1e-6, 1 - 1e-6).astype(np.float32)

    def to_env(self, unit: np.ndarray, space: spaces.Box) -> np.ndarray:
        a = self.low + 0.5 * (unit.astype(np.float64) + 1.0) * (self.high - self.low)
        return np.clip(a, self.low, self.high).reshape(len(unit), *space.shape).astype(space.dtype)


class ActorPolicy:
    """The greedy continuous policy: obs (N, *obs_shape) -> tanh(mu(s)) scaled to the Box, (N, *act_shape);
    a single observation gives a single action. ``observation_space`` / ``action_space`` as the env's."""

    def __init__(self, actor: TanhGaussianActor, obs_input: ObsEncoder, action_space: spaces.Box):
        self.actor, self.obs_input, self.action_space = actor, obs_input, action_space
        self.observation_space = obs_input.observation_space
        self._scaling = BoxScaling(action_space)

    def __call__(self, obs: Any) -> np.ndarray:
        batch, single = as_batch(obs, self.observation_space)
        self.actor.eval()
        with torch.no_grad():
            unit, _ = self.actor.mean_action(self.obs_input(batch))
        actions = self._scaling.to_env(unit.numpy(), self.action_space)
        return actions[0] if single else actions


class SACReward(RewardFunction):
    """The recovered reward r(s, a, s') = Q(s, a) - gamma V(s') for Box actions, with V(s') estimated
    deterministically at the actor's mean action: V(s') = Q(s', tanh(mu(s'))) - alpha log pi(tanh(mu(s')) | s').

    ``reward(obs (n, ...), acts (n, *act_shape), next_obs (n, ...)) -> (n,)`` numpy (env-unit actions); a
    single transition gives a float (``irlhf.rl.rewards.RewardFunction``). Episode ends are not seen: V(s')
    is always used.
    """

    def __init__(self, critic: Critic, actor: TanhGaussianActor, obs_input: ObsEncoder, action_space: spaces.Box,
                 alpha: float, gamma: float):
        self.critic, self.actor, self.obs_input, self.action_space = critic, actor, obs_input, action_space
        self.observation_space = obs_input.observation_space
        self.alpha, self.gamma = float(alpha), float(gamma)
        self._scaling = BoxScaling(action_space)

    def batch(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray | None,
              dones: np.ndarray | None) -> torch.Tensor:
        if next_obs is None:
            raise ValidationError("reward: next_obs is None; expected the next observations (V(s') needs them)")
        self.critic.eval()
        self.actor.eval()
        xt, xnt = self.obs_input(obs), self.obs_input(next_obs)
        a_next, log_pi_next = self.actor.mean_action(xnt)
        v_next = self.critic(xnt, a_next) - self.alpha * log_pi_next
        a = torch.as_tensor(self._scaling.to_unit(acts.astype(np.float64)))
        return self.critic(xt, a) - self.gamma * v_next


# -- the learner ---------------------------------------------------------------------------------
class SACLearner:
    """Box actions: critic (+ optional target), tanh-Gaussian actor, fixed alpha; one critic and one actor
    step per call (actor on all states of the batch: expert offline, expert + policy online). ``config``: an
    ``irlhf.irl.iq_learn.Config`` (read, not imported: that module dispatches to this one)."""

    def __init__(self, obs_space: spaces.Space, act_space: spaces.Box, mean: Any, scale: Any, config: Any):
        if not (np.all(np.isfinite(act_space.low)) and np.all(np.isfinite(act_space.high))):
            raise ValidationError(f"action_space={act_space}: unbounded; expected finite Box bounds for the "
                                  "tanh-squashed actor")
        self.config, self.act_space = config, act_space
        self.scaling = BoxScaling(act_space)
        d_in, a_dim = obs_dim(obs_space), act_dim(act_space)
        self.obs_input = ObsEncoder(obs_space, mean, scale)
        self.critic = Critic(d_in, a_dim, config.hidden_sizes, config.activation, config.seed)
        self.actor = TanhGaussianActor(d_in, a_dim, config.hidden_sizes, config.activation, config.seed + 1)
        self.target = copy.deepcopy(self.critic).requires_grad_(False) if config.use_target else None
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr)

    def inputs(self, obs: np.ndarray) -> torch.Tensor:
        return self.obs_input(obs)

    def actions(self, acts: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(self.scaling.to_unit(np.asarray(acts, dtype=np.float64)))

    def explore(self, obs: np.ndarray, gen: torch.Generator) -> np.ndarray:
        """A sample of pi(. | s) for one raw observation, in env units."""
        with torch.no_grad():
            unit, _ = self.actor.sample(self.inputs(np.asarray(obs)[None]), gen)
        return self.scaling.to_env(unit.numpy(), self.act_space)[0]

    def update(self, x: torch.Tensor, a: torch.Tensor, xn: torch.Tensor, d: torch.Tensor,
               is_expert: torch.Tensor | None, gen: torch.Generator) -> dict[str, torch.Tensor]:
        c = self.config
        self.critic.train()
        self.actor.train()
        loss, parts = sac_iq_loss(self.critic, self.actor, x, a, xn, d, is_expert, alpha=c.alpha, gamma=c.gamma,
                                  divergence=c.divergence, chi_alpha=c.chi_alpha,
                                  regularize_mixed=c.regularize_mixed, target_critic=self.target, generator=gen,
                                  as_float=False)
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_opt.step()
        a_loss = actor_loss(self.critic, self.actor, x, alpha=c.alpha, generator=gen)
        self.actor_opt.zero_grad(set_to_none=True)
        a_loss.backward()  # also leaves grads on the critic; its next zero_grad clears them
        self.actor_opt.step()
        polyak(self.critic, self.target, c.target_tau)
        return {"loss": loss.detach(), **parts, "actor_loss": a_loss.detach()}

    def diagnostics(self, x_all: torch.Tensor, a_all: torch.Tensor) -> dict[str, float]:
        return {}

    def policy(self) -> ActorPolicy:
        return ActorPolicy(self.actor, self.obs_input, self.act_space)

    def result_parts(self) -> dict[str, Any]:
        self.critic.eval()
        self.actor.eval()
        return {"policy": self.policy(), "q_net": self.critic, "actor": self.actor,
                "reward": SACReward(self.critic, self.actor, self.obs_input, self.act_space, self.config.alpha,
                                    self.config.gamma)}
