"""IQ-Learn (Garg et al. 2021, "IQ-Learn: Inverse soft-Q Learning for Imitation"): offline and online,
Discrete (soft Q) and continuous (soft actor-critic) actions.

Discrete actions: one network Q(s, a) stands for both the reward and the policy ("max over Q"):

    V(s)          = alpha * logsumexp_a(Q(s, a) / alpha)                 (soft value, temperature alpha)
    pi(a | s)     = softmax_a(Q(s, a) / alpha) = exp((Q(s, a) - V(s)) / alpha)
    r(s, a, s')   = Q(s, a) - gamma * V(s')                              (the recovered reward; V(s') = 0 when
                                                                          s' is terminal)

The inverse soft-Q objective is  max_Q  E_expert[phi(r)] - (1 - gamma) E_{s0}[V(s0)]  with, for the
chi^2 divergence, phi(x) = x - x^2 / (4 alpha_chi). Offline the authors replace (1 - gamma) E_{s0}[V(s0)] by
its telescoped form on expert transitions, E_expert[V(s) - gamma V(s')] (their ``method.loss=value_expert``;
the ``v0`` option is not used), so the loss minimised here, over expert transitions (s, a, s', done) only, is

    L(Q) = -E[r] + E[V(s) - gamma (1 - done) V(s')] + E[r^2] / (4 alpha_chi),
    r    = Q(s, a) - gamma (1 - done) V(s').

The first two terms telescope to E[V(s) - Q(s, a)] = alpha E[-log pi(a | s)]: soft behaviour cloning. The
chi^2 term E[(Q(s, a) - gamma V(s'))^2] / (4 alpha_chi) is a TD-consistency penalty that ties the Q levels
to the observed next states, so that r is a reward for which pi is soft-optimal (and not just any logits).
``divergence="none"`` drops it (phi(x) = x): then L is exactly soft BC with logits Q / alpha.

Online (``Config(online=True)``, the authors' ``method.loss=value``): the agent acts in the environment with
its own soft policy, stores its transitions in a replay buffer, and every update uses a batch of
``batch_size`` expert transitions plus ``batch_size`` policy transitions; the value term then runs over
both (rho = expert U policy), which estimates (1 - gamma) E[V(s0)] with states the policy visits:

    L(Q) = -E_expert[r] + E_{expert U policy}[V(s) - gamma (1 - done) V(s')] + chi2,
    chi2 = E_expert[r^2] / (4 alpha_chi)        (default; the authors' ``method.chi``)
         = E_{expert U policy}[r^2] / (4 alpha_chi)   (``regularize_mixed=True``; their ``method.regularize``)

``done`` is "terminated" only (a time-limit truncation keeps V(s')), as in the authors' replay buffers.
V(s') comes from the trained network (gradient flows through it, the authors' default
``train.use_target=False``) or, with ``use_target=True``, from a Polyak-averaged target copy
(theta' <- tau theta + (1 - tau) theta', ``target_tau``).

Continuous (Box) actions, the soft actor-critic form (authors' ``agent=sac``): a critic Q(s, a) (an MLP on
concat(obs, a), a in [-1, 1]^d, i.e. the action rescaled from the Box bounds) and a tanh-squashed Gaussian
actor a = tanh(u), u ~ N(mu(s), sigma(s)^2):

    log pi(a | s) = log N(u; mu, sigma) - sum_i log(1 - tanh(u_i)^2)     (in the [-1, 1] action units)
    V(s)          = Q(s, a~pi) - alpha log pi(a | s)                      (one sample; no gradient to the actor)
    critic:  the same loss L(Q) as above, with r = Q(s, a) - gamma (1 - done) V(s') on expert transitions
    actor:   min_pi  E_s[alpha log pi(a | s) - Q(s, a)],  a ~ pi(. | s)   (the SAC actor update)
             over expert and policy states online, expert states offline.

alpha is fixed (no temperature learning). The greedy policy is a = tanh(mu(s)) scaled to the Box bounds.

    result = iq_learn.train("CartPole-v1", demos, iq_learn.Config())                  # offline, Discrete
    result = iq_learn.train("CartPole-v1", demos, iq_learn.Config(online=True))       # online, Discrete
    result = iq_learn.train("Pendulum-v1", demos, iq_learn.Config(hidden_sizes=(64, 64)))  # continuous
    actions = result.policy(obs_batch)                 # argmax_a Q(s, a), or tanh(mu(s)) scaled
    rewards = result.reward(obs, acts, next_obs)       # Q(s, a) - gamma V(s'), for irlhf.rl.wrappers
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from torch import nn
from tqdm.auto import tqdm

from irlhf.core.config import BaseConfig, check_bool, check_choice, check_hidden_sizes, check_number
from irlhf.core.errors import ValidationError
from irlhf.imitation.bc import _check_demos, _demo_arrays, resolve_spaces
from irlhf.nn.mlp import ACTIVATIONS, mlp
from irlhf.nn.policies import MLPPolicy, Policy, obs_dim

__all__ = ["ActorPolicy", "Config", "Critic", "Result", "SACReward", "SoftQReward", "TanhGaussianActor",
           "actor_loss", "iq_loss", "iq_objective", "sac_iq_loss", "soft_value", "train"]

DIVERGENCES = ("chi2", "none")
LOG_STD_BOUNDS = (-5.0, 2.0)  # the authors' SAC actor (agent/sac.yaml log_std_bounds)


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """IQ-Learn settings (offline defaults: the authors' offline CartPole run, ``agent=softq method.chi=True
    method.loss=value_expert agent.init_temp=0.001``, except the temperature, see ``alpha``).

    alpha: soft temperature of V and pi (> 0). Small alpha makes V ~ max_a Q and the BC term a margin loss.
      Continuous actions: the fixed SAC temperature (authors' ``agent.init_temp`` default 1e-2).
    gamma: discount in [0, 1).
    divergence: "chi2" (phi(x) = x - x^2 / (4 chi_alpha), the TD-consistency penalty) or "none" (phi(x) = x;
      the loss is then soft behaviour cloning).
    chi_alpha: alpha_chi of the chi^2 divergence (> 0); the penalty weight is 1 / (4 chi_alpha). Authors: 0.5.
    regularize_mixed: online only: chi^2 penalty on expert and policy transitions (authors'
      ``method.regularize``) instead of expert only (default False, their ``method.chi``).
    hidden_sizes / activation: the Q network (``irlhf.nn.mlp``), output one Q value per action; for Box
      actions the critic (input concat(obs, a), output 1) and the actor (output mu, log sigma).
    lr: Adam step size of the Discrete Q network.  critic_lr / actor_lr: Adam step sizes of the continuous
      critic and actor (authors' SAC: 3e-4 and 3e-4; their MuJoCo runs lower actor_lr to 3e-5).
    batch_size: expert transitions per update (all of them when there are fewer, offline Discrete);
      online, as many policy transitions again from the replay buffer.
    updates: gradient updates (offline). Online the count is (env_steps - learning_starts) * updates_per_step.
    online: act in the environment (env must be an id or a gymnasium.Env), half expert / half policy batches.
    env_steps: online environment steps.  learning_starts: uniformly random steps before the first update
      (authors' ``num_seed_steps``).  buffer_size: replay capacity (transitions).
    updates_per_step: gradient updates per env step after learning_starts.
    use_target: V(s') from a Polyak target network (default False, the authors' ``train.use_target``).
    target_tau: Polyak rate in (0, 1] (0.005 as the authors' SAC ``critic_tau``).
    eval_every: every this many updates, evaluate the greedy policy on ``eval_episodes`` episodes
      (``irlhf.envs.gym.evaluate``; needs an env id or an env with a spec); 0 = never.
    normalize_obs: standardise Box observations with the demonstrations' mean / std (stored in the module).
    log_every: updates between history records (and callback calls).
    seed: seeds the initialisation, the minibatches, the actions and the env resets.  progress: a tqdm bar.
    """

    alpha: float = 0.01
    gamma: float = 0.99
    divergence: str = "chi2"
    chi_alpha: float = 0.5
    regularize_mixed: bool = False
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "elu"
    lr: float = 1e-3
    critic_lr: float = 3e-4
    actor_lr: float = 3e-4
    batch_size: int = 32
    updates: int = 5000
    online: bool = False
    env_steps: int = 20_000
    learning_starts: int = 1000
    buffer_size: int = 100_000
    updates_per_step: int = 1
    use_target: bool = False
    target_tau: float = 0.005
    eval_every: int = 0
    eval_episodes: int = 5
    normalize_obs: bool = True
    log_every: int = 100
    seed: int = 0
    progress: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_sizes", check_hidden_sizes("hidden_sizes", self.hidden_sizes))
        check_number("alpha", self.alpha, low=0, low_open=True)
        check_number("gamma", self.gamma, low=0, high=1, high_open=True)
        check_choice("divergence", self.divergence, DIVERGENCES)
        check_number("chi_alpha", self.chi_alpha, low=0, low_open=True)
        check_bool("regularize_mixed", self.regularize_mixed)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        for name in ("lr", "critic_lr", "actor_lr"):
            check_number(name, getattr(self, name), low=0, low_open=True)
        check_number("batch_size", self.batch_size, low=1, integer=True)
        check_number("updates", self.updates, low=1, integer=True)
        check_bool("online", self.online)
        check_number("env_steps", self.env_steps, low=1, integer=True)
        check_number("learning_starts", self.learning_starts, low=0, integer=True)
        check_number("buffer_size", self.buffer_size, low=1, integer=True)
        check_number("updates_per_step", self.updates_per_step, low=1, integer=True)
        check_bool("use_target", self.use_target)
        check_number("target_tau", self.target_tau, low=0, high=1, low_open=True)
        check_number("eval_every", self.eval_every, low=0, integer=True)
        check_number("eval_episodes", self.eval_episodes, low=1, integer=True)
        check_bool("normalize_obs", self.normalize_obs)
        check_number("log_every", self.log_every, low=1, integer=True)
        check_number("seed", self.seed, low=0, integer=True)
        check_bool("progress", self.progress)
        if self.online and self.learning_starts >= self.env_steps:
            raise ValidationError(f"learning_starts={self.learning_starts}: expected < env_steps={self.env_steps} "
                                  "(no update would run)")


# -- the objective ------------------------------------------------------------------------------
def soft_value(q: torch.Tensor, alpha: float) -> torch.Tensor:
    """V = alpha * logsumexp(Q / alpha) over the last axis: (N, A) -> (N,)."""
    return alpha * torch.logsumexp(q / alpha, dim=-1)


def _parts(parts: dict[str, torch.Tensor], as_float: bool) -> dict[str, Any]:
    return {k: float(t.detach()) for k, t in parts.items()} if as_float else {k: t.detach() for k, t in parts.items()}


def iq_objective(q_sa: torch.Tensor, v: torch.Tensor, v_next: torch.Tensor, dones: torch.Tensor,
                 is_expert: torch.Tensor | None = None, *, gamma: float, divergence: str = "chi2",
                 chi_alpha: float = 0.5, regularize_mixed: bool = False,
                 as_float: bool = True) -> tuple[torch.Tensor, dict[str, Any]]:
    """The IQ-Learn loss (module docstring) from per-transition values, all (N,).

    q_sa = Q(s, a), v = V(s), v_next = V(s') (before masking), dones (1 = s' terminal), is_expert (bool;
    None = all expert, the offline case). Returns the scalar loss and its parts: softq_loss = -E_expert[r],
    value_loss = E_all[V(s) - gamma (1 - d) V(s')], chi2_loss (0 for "none"), reward = E_expert[r],
    v = E_all[V(s)], expert_q / policy_q = mean Q(s, a) on expert / policy transitions (nan when absent).
    """
    check_choice("divergence", divergence, DIVERGENCES)
    if is_expert is None:
        is_expert = torch.ones(len(q_sa), dtype=torch.bool)
    y = gamma * (1.0 - dones.to(q_sa.dtype)) * v_next
    r = q_sa - y
    r_expert = r[is_expert]
    softq_loss = -r_expert.mean()
    value_loss = (v - y).mean()  # offline: expert only ("value_expert"); online: expert U policy ("value")
    loss = softq_loss + value_loss
    chi2_loss = torch.zeros((), dtype=q_sa.dtype)
    if divergence == "chi2":
        w = r if regularize_mixed else r_expert
        chi2_loss = (w * w).mean() / (4.0 * chi_alpha)
        loss = loss + chi2_loss
    policy_q = q_sa[~is_expert].mean() if bool((~is_expert).any()) else torch.full((), float("nan"))
    parts = {"softq_loss": softq_loss, "value_loss": value_loss, "chi2_loss": chi2_loss,
             "reward": r_expert.mean(), "v": v.mean(), "expert_q": q_sa[is_expert].mean(), "policy_q": policy_q}
    return loss, _parts(parts, as_float)


def iq_loss(q: torch.Tensor, q_next: torch.Tensor, acts: torch.Tensor, dones: torch.Tensor, *, alpha: float,
            gamma: float, divergence: str = "chi2", chi_alpha: float = 0.5, is_expert: torch.Tensor | None = None,
            regularize_mixed: bool = False, as_float: bool = True) -> tuple[torch.Tensor, dict[str, Any]]:
    """The Discrete IQ-Learn loss (module docstring) on a batch.

    q, q_next: Q(s, .) and Q(s', .), (N, A) (q_next from the target network when one is used); acts (N,)
    action indices 0..A-1; dones (N,) (1 = s' terminal); is_expert (N,) bool (None: all expert, offline).
    Returns the scalar loss and the parts of ``iq_objective``; floats, or detached tensors with
    ``as_float=False`` (no device sync per update).
    """
    q_sa = q.gather(1, acts.long()[:, None])[:, 0]
    return iq_objective(q_sa, soft_value(q, alpha), soft_value(q_next, alpha), dones, is_expert, gamma=gamma,
                        divergence=divergence, chi_alpha=chi_alpha, regularize_mixed=regularize_mixed,
                        as_float=as_float)


# -- continuous actions: critic and tanh-Gaussian actor -----------------------------------------
class _ObsInput(nn.Module):
    """Raw observations (N, *obs_shape) -> network inputs (N, d_in): one-hot (Discrete) or standardised (Box)."""

    def __init__(self, observation_space: spaces.Space, obs_mean: np.ndarray | None, obs_scale: np.ndarray | None):
        super().__init__()
        self.observation_space = observation_space
        d_in = obs_dim(observation_space)
        self.register_buffer("obs_mean", torch.as_tensor(np.zeros(d_in) if obs_mean is None else obs_mean,
                                                         dtype=torch.float32).reshape(d_in))
        self.register_buffer("obs_scale", torch.as_tensor(np.ones(d_in) if obs_scale is None else obs_scale,
                                                          dtype=torch.float32).reshape(d_in))

    def forward(self, obs: torch.Tensor | np.ndarray) -> torch.Tensor:
        if isinstance(self.observation_space, spaces.Discrete):
            idx = torch.as_tensor(np.asarray(obs) if not torch.is_tensor(obs) else obs).long().reshape(-1)
            return nn.functional.one_hot(idx - int(self.observation_space.start), self.obs_mean.shape[0]).float()
        x = torch.as_tensor(np.asarray(obs) if not torch.is_tensor(obs) else obs, dtype=torch.float32)
        return (x.reshape(-1, self.obs_mean.shape[0]) - self.obs_mean) / self.obs_scale


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


# -- results ------------------------------------------------------------------------------------
class SoftQReward:
    """The recovered reward r(s, a, s') = Q(s, a) - gamma V(s'), V = alpha logsumexp(Q / alpha).

    ``reward(obs (n, ...), acts (n,), next_obs (n, ...)) -> (n,)`` numpy (the batched form
    ``irlhf.rl.wrappers.RewardVecEnvWrapper`` calls); a single (obs, act, next_obs) gives a float (the
    ``RewardWrapper`` form). It cannot see episode ends: V(s') is used even when s' is terminal.
    """

    def __init__(self, q_module: MLPPolicy, alpha: float, gamma: float):
        self.q_module, self.alpha, self.gamma = q_module, float(alpha), float(gamma)

    def __call__(self, obs: Any, acts: Any, next_obs: Any) -> np.ndarray | float:
        space = self.q_module.observation_space
        x, xn = np.array(obs), np.array(next_obs)  # copies: torch warns on read-only arrays
        single = x.shape == tuple(space.shape)
        if single:
            x, xn, acts = x[None], xn[None], np.asarray(acts).reshape(1)
        a = np.asarray(acts).reshape(-1)
        if x.shape[1:] != tuple(space.shape) or xn.shape != x.shape or len(a) != len(x):
            raise ValidationError(f"reward: obs {x.shape}, acts {a.shape}, next_obs {xn.shape}; expected (n, "
                                  f"*{tuple(space.shape)}), (n,), (n, *{tuple(space.shape)})")
        n_act, start = int(self.q_module.action_space.n), int(self.q_module.action_space.start)
        if np.any(a != np.round(a)) or a.min() < start or a.max() >= start + n_act:
            raise ValidationError(f"reward: actions {a}; expected integers in [{start}, {start + n_act})")
        self.q_module.eval()
        with torch.no_grad():
            q = self.q_module(x)
            v_next = soft_value(self.q_module(xn), self.alpha)
            r = q.gather(1, torch.as_tensor(a - start).long()[:, None])[:, 0] - self.gamma * v_next
        out = r.numpy().astype(np.float64)
        return float(out[0]) if single else out


class _BoxScaling:
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

    def __init__(self, actor: TanhGaussianActor, obs_input: _ObsInput, action_space: spaces.Box):
        self.actor, self.obs_input, self.action_space = actor, obs_input, action_space
        self.observation_space = obs_input.observation_space
        self._scaling = _BoxScaling(action_space)

    def __call__(self, obs: Any) -> np.ndarray:
        x = np.array(obs)
        space = self.observation_space
        single = x.shape == tuple(space.shape)
        batch = x[None] if single else x
        if batch.shape[1:] != tuple(space.shape):
            raise ValidationError(f"obs: shape {x.shape}; expected {tuple(space.shape)} or (N, *{tuple(space.shape)})")
        self.actor.eval()
        with torch.no_grad():
            unit, _ = self.actor.mean_action(self.obs_input(batch))
        actions = self._scaling.to_env(unit.numpy(), self.action_space)
        return actions[0] if single else actions


class SACReward:
    """The recovered reward r(s, a, s') = Q(s, a) - gamma V(s') for Box actions, with V(s') estimated
    deterministically at the actor's mean action: V(s') = Q(s', tanh(mu(s'))) - alpha log pi(tanh(mu(s')) | s').

    ``reward(obs (n, ...), acts (n, *act_shape), next_obs (n, ...)) -> (n,)`` numpy (env-unit actions); a
    single transition gives a float. Episode ends are not seen: V(s') is always used.
    """

    def __init__(self, critic: Critic, actor: TanhGaussianActor, obs_input: _ObsInput, action_space: spaces.Box,
                 alpha: float, gamma: float):
        self.critic, self.actor, self.obs_input, self.action_space = critic, actor, obs_input, action_space
        self.alpha, self.gamma = float(alpha), float(gamma)
        self._scaling = _BoxScaling(action_space)

    def __call__(self, obs: Any, acts: Any, next_obs: Any) -> np.ndarray | float:
        space, a_shape = self.obs_input.observation_space, tuple(self.action_space.shape)
        x, xn, a = np.array(obs), np.array(next_obs), np.array(acts, dtype=np.float64)
        single = x.shape == tuple(space.shape)
        if single:
            x, xn, a = x[None], xn[None], a.reshape(1, *a_shape)
        if x.shape[1:] != tuple(space.shape) or xn.shape != x.shape or a.shape != (len(x), *a_shape):
            raise ValidationError(f"reward: obs {x.shape}, acts {a.shape}, next_obs {xn.shape}; expected (n, "
                                  f"*{tuple(space.shape)}), (n, *{a_shape}), (n, *{tuple(space.shape)})")
        self.critic.eval()
        self.actor.eval()
        with torch.no_grad():
            xt, xnt = self.obs_input(x), self.obs_input(xn)
            a_next, log_pi_next = self.actor.mean_action(xnt)
            v_next = self.critic(xnt, a_next) - self.alpha * log_pi_next
            r = self.critic(xt, torch.as_tensor(self._scaling.to_unit(a))) - self.gamma * v_next
        out = r.numpy().astype(np.float64)
        return float(out[0]) if single else out


@dataclasses.dataclass
class Result:
    """policy: Discrete: a ``Policy`` acting argmax_a Q (its module's logits are Q / alpha, so
    ``policy.module.distribution`` is softmax(Q / alpha)); Box: an ``ActorPolicy`` (greedy tanh(mu)).
    reward: ``SoftQReward`` / ``SACReward``. q_net: the ``MLPPolicy`` whose forward gives Q(s, .) (N, A), or
    the continuous ``Critic``. actor: the ``TanhGaussianActor`` (None for Discrete). history: one dict per
    ``log_every`` updates (update, loss, softq_loss, value_loss, chi2_loss, reward, v, expert_q, policy_q,
    seconds; Discrete: expert_accuracy; Box: actor_loss; online: env_steps, episode_return = mean return of
    the last 10 finished training episodes (nan before the first); eval_return with eval_every).
    n_transitions: expert transitions trained on."""

    policy: Policy | ActorPolicy
    reward: SoftQReward | SACReward
    q_net: MLPPolicy | Critic
    history: list[dict]
    n_transitions: int
    config: Config
    actor: TanhGaussianActor | None = None


def policy_from_q(q_module: MLPPolicy, alpha: float, seed: int = 0) -> Policy:
    """The softmax(Q / alpha) policy as a plain ``MLPPolicy`` (1 / alpha folded into the output layer)."""
    module = copy.deepcopy(q_module)
    last = module.net[-1]
    with torch.no_grad():
        last.weight.div_(alpha)
        last.bias.div_(alpha)
    module.eval()
    return Policy(module, seed=seed)


# -- inputs -------------------------------------------------------------------------------------
def _transitions(demos: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    obs, acts, next_obs, dones = _demo_arrays(demos, ("obs", "acts", "next_obs", "dones"), "transition")
    if next_obs.shape != obs.shape:
        raise ValidationError(f"demos: obs {obs.shape}, next_obs {next_obs.shape}; expected next_obs shaped like obs")
    return obs, acts, next_obs, dones.reshape(len(obs)).astype(bool)


def _resolve_env(env: Any, online: bool) -> tuple[spaces.Space, spaces.Space, gymnasium.Env | None, str | None]:
    """(observation_space, action_space, env to act in (online), env id for evaluation or None)."""
    if online and not isinstance(env, (str, gymnasium.Env)):
        raise ValidationError(f"env={type(env).__name__}: online IQ-Learn acts in the environment; expected a "
                              "gymnasium id or a gymnasium.Env, not a pair of spaces")
    obs_space, act_space = resolve_spaces(env)
    env_id = env if isinstance(env, str) else getattr(getattr(env, "spec", None), "id", None)
    if not online:
        return obs_space, act_space, None, env_id
    if isinstance(env, str):
        from irlhf.envs.gym import make_env

        return obs_space, act_space, make_env(env), env_id
    return obs_space, act_space, env, env_id


class _Replay:
    """A ring buffer of raw transitions (obs, act, next_obs, terminated), numpy."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], act_shape: tuple[int, ...], act_dtype: Any):
        self.obs = np.zeros((capacity, *obs_shape), dtype=np.float32)
        self.next_obs = np.zeros_like(self.obs)
        self.acts = np.zeros((capacity, *act_shape), dtype=act_dtype)
        self.dones = np.zeros(capacity, dtype=np.float32)
        self.capacity, self.size, self.pos = capacity, 0, 0

    def add(self, obs: Any, act: Any, next_obs: Any, done: bool) -> None:
        i = self.pos
        self.obs[i], self.acts[i], self.next_obs[i], self.dones[i] = obs, act, next_obs, float(done)
        self.pos, self.size = (i + 1) % self.capacity, min(self.size + 1, self.capacity)


# -- learners -----------------------------------------------------------------------------------
class _SoftQLearner:
    """Discrete actions: Q network, optional target copy, Adam; one IQ-Learn update per call."""

    def __init__(self, obs_space: spaces.Space, act_space: spaces.Discrete, mean: Any, scale: Any, config: Config):
        self.config, self.act_space = config, act_space
        self.q = MLPPolicy(obs_space, act_space, config.hidden_sizes, config.activation,
                           obs_mean=mean, obs_scale=scale, seed=config.seed)
        self.target = copy.deepcopy(self.q).requires_grad_(False) if config.use_target else None
        self.optimizer = torch.optim.Adam(self.q.parameters(), lr=config.lr)
        self.params = list(self.q.parameters())

    def inputs(self, obs: np.ndarray) -> torch.Tensor:
        return self.q.preprocess(obs if isinstance(self.q.observation_space, spaces.Discrete)
                                 else obs.reshape(len(obs), -1))

    def actions(self, acts: np.ndarray) -> torch.Tensor:
        return self.q._action_tensor(acts)

    def explore(self, obs: np.ndarray, gen: torch.Generator) -> Any:
        """A sample of softmax(Q(s, .) / alpha) for one raw observation (an env action)."""
        with torch.no_grad():
            q = self.q.net(self.inputs(np.asarray(obs)[None]))
        idx = int(torch.multinomial(torch.softmax(q / self.config.alpha, dim=-1), 1, generator=gen)[0, 0])
        return idx + int(self.act_space.start)

    def update(self, x: torch.Tensor, a: torch.Tensor, xn: torch.Tensor, d: torch.Tensor,
               is_expert: torch.Tensor | None, gen: torch.Generator) -> dict[str, torch.Tensor]:
        c = self.config
        self.q.train()
        q_both = self.q.net(torch.cat([x, xn]))  # one forward for s and s'
        q_next = q_both[len(x):]
        if self.target is not None:
            with torch.no_grad():
                q_next = self.target.net(xn)
        loss, parts = iq_loss(q_both[:len(x)], q_next, a, d, alpha=c.alpha, gamma=c.gamma, divergence=c.divergence,
                              chi_alpha=c.chi_alpha, is_expert=is_expert, regularize_mixed=c.regularize_mixed,
                              as_float=False)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        _polyak(self.q, self.target, c.target_tau)
        return {"loss": loss.detach(), **parts}

    def diagnostics(self, x_all: torch.Tensor, a_all: torch.Tensor) -> dict[str, float]:
        with torch.no_grad():
            return {"expert_accuracy": float((self.q.net(x_all).argmax(dim=-1) == a_all).double().mean())}

    def policy(self) -> Policy:
        self.q.eval()
        return policy_from_q(self.q, self.config.alpha, self.config.seed)

    def result_parts(self) -> dict[str, Any]:
        self.q.eval()
        return {"policy": self.policy(), "reward": SoftQReward(self.q, self.config.alpha, self.config.gamma),
                "q_net": self.q}


class _SACLearner:
    """Box actions: critic (+ optional target), tanh-Gaussian actor, fixed alpha; one critic and one actor
    step per call (actor on all states of the batch: expert offline, expert + policy online)."""

    def __init__(self, obs_space: spaces.Space, act_space: spaces.Box, mean: Any, scale: Any, config: Config):
        if not (np.all(np.isfinite(act_space.low)) and np.all(np.isfinite(act_space.high))):
            raise ValidationError(f"action_space={act_space}: unbounded; expected finite Box bounds for the "
                                  "tanh-squashed actor")
        self.config, self.act_space = config, act_space
        self.scaling = _BoxScaling(act_space)
        d_in, act_dim = obs_dim(obs_space), int(np.prod(act_space.shape))
        self.obs_input = _ObsInput(obs_space, mean, scale)
        self.critic = Critic(d_in, act_dim, config.hidden_sizes, config.activation, config.seed)
        self.actor = TanhGaussianActor(d_in, act_dim, config.hidden_sizes, config.activation, config.seed + 1)
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
        _polyak(self.critic, self.target, c.target_tau)
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


def _polyak(net: nn.Module, target: nn.Module | None, tau: float) -> None:
    """theta' <- tau theta + (1 - tau) theta' (no-op without a target)."""
    if target is None:
        return
    with torch.no_grad():
        for p, tp in zip(net.parameters(), target.parameters()):
            tp.lerp_(p, tau)


# -- training -----------------------------------------------------------------------------------
def train(env: Any, demos: Any, config: Config = Config(), *,
          callback: Callable[[dict, Any], bool | None] | None = None) -> Result:
    """Fit IQ-Learn on the demonstrations: offline (no environment steps) or, with ``config.online``,
    acting in the environment with half expert / half policy batches.

    env: a gymnasium id, a ``gymnasium.Env`` or (offline only) a pair (observation_space, action_space);
    Discrete actions use the soft-Q form, Box actions the actor-critic form. A given Env is used as is (not
    closed); an id is made with ``irlhf.envs.gym.make_env`` and closed at the end. demos: a list of
    ``Trajectory`` or a ``Transitions`` (anything with obs, acts, next_obs, dones). callback(record, policy),
    called with each history record and the current greedy policy, may return True to stop early.
    """
    if not isinstance(config, Config):
        raise ValidationError(f"config: {type(config).__name__}; expected irlhf.irl.iq_learn.Config")
    obs_space, act_space, live_env, env_id = _resolve_env(env, config.online)
    if config.eval_every and env_id is None:
        raise ValidationError("eval_every>0: evaluation needs an environment id (or an env with a spec); "
                              "expected env to be an id or a registered gymnasium.Env")
    obs_np, acts_np, next_np, dones_np = _transitions(demos)
    acts_np = _check_demos(obs_np, acts_np, obs_space, act_space)
    _check_demos(next_np, acts_np, obs_space, act_space)  # next observations must fit the space too
    n = len(obs_np)

    mean = scale = None
    if config.normalize_obs and isinstance(obs_space, spaces.Box):
        x = obs_np.reshape(n, -1).astype(np.float64)
        mean, std = x.mean(axis=0), x.std(axis=0)
        scale = np.where(std > 1e-8 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    discrete = isinstance(act_space, spaces.Discrete)
    learner = (_SoftQLearner if discrete else _SACLearner)(obs_space, act_space, mean, scale, config)
    with torch.no_grad():
        x_all, xn_all = learner.inputs(obs_np), learner.inputs(next_np)
    a_all = learner.actions(acts_np)
    d_all = torch.as_tensor(dones_np, dtype=torch.float32)

    gen = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)  # the random actions before learning_starts
    online = config.online
    total_updates = (config.env_steps - config.learning_starts) * config.updates_per_step if online else config.updates
    history: list[dict] = []
    bar = tqdm(total=total_updates, desc="iq_learn", disable=not config.progress, leave=False)
    t0 = time.perf_counter()
    callback_seconds = 0.0
    full = config.batch_size >= n and not online

    replay = returns = None
    if online:
        replay = _Replay(min(config.buffer_size, config.env_steps), tuple(obs_space.shape), tuple(act_space.shape),
                         np.int64 if discrete else np.float32)
        returns = deque(maxlen=10)  # the last 10 finished training episodes
        obs, _ = live_env.reset(seed=config.seed)
        episode_return, env_steps = 0.0, 0
    is_expert = torch.cat([torch.ones(config.batch_size, dtype=torch.bool),
                           torch.zeros(config.batch_size, dtype=torch.bool)]) if online else None
    update, stop = 0, False
    try:
        for step in range(1, (config.env_steps if online else config.updates) + 1):
            if online:
                # one env step: uniformly random before learning_starts (authors' seed steps), then pi's sample
                action = _random_action(act_space, rng) if step <= config.learning_starts \
                    else learner.explore(obs, gen)
                next_obs, rew, terminated, truncated, _ = live_env.step(action)
                replay.add(obs, action, next_obs, terminated)  # truncation is not terminal: V(s') stays
                episode_return, env_steps, obs = episode_return + float(rew), step, next_obs
                if terminated or truncated:
                    returns.append(episode_return)
                    episode_return = 0.0
                    obs, _ = live_env.reset()  # seeded once at the start; the env's RNG carries on
                if step <= config.learning_starts:
                    continue
            for _ in range(config.updates_per_step if online else 1):
                update += 1
                if online:
                    ie = torch.randint(n, (config.batch_size,), generator=gen)
                    ip = torch.randint(replay.size, (config.batch_size,), generator=gen).numpy()
                    with torch.no_grad():
                        xb = torch.cat([x_all[ie], learner.inputs(replay.obs[ip])])
                        xnb = torch.cat([xn_all[ie], learner.inputs(replay.next_obs[ip])])
                    ab = torch.cat([a_all[ie], learner.actions(replay.acts[ip])])
                    db = torch.cat([d_all[ie], torch.as_tensor(replay.dones[ip])])
                elif full:
                    xb, xnb, ab, db = x_all, xn_all, a_all, d_all
                else:
                    idx = torch.randperm(n, generator=gen)[:config.batch_size]
                    xb, xnb, ab, db = x_all[idx], xn_all[idx], a_all[idx], d_all[idx]
                parts = learner.update(xb, ab, xnb, db, is_expert, gen)
                bar.update(1)
                evaluate_now = config.eval_every and update % config.eval_every == 0
                if update % config.log_every == 0 or update == total_updates or evaluate_now:
                    loss_value = float(parts["loss"])
                    if not np.isfinite(loss_value):
                        raise ValidationError(f"loss={loss_value}: training diverged; expected a smaller lr or "
                                              "larger alpha")
                    record: dict[str, Any] = {"update": update}
                    if online:
                        record["env_steps"] = env_steps
                        record["episode_return"] = float(np.mean(returns)) if returns else float("nan")
                    record.update({k: float(t) for k, t in parts.items()})
                    record.update(learner.diagnostics(x_all, a_all))
                    if evaluate_now:
                        from irlhf.envs.gym import evaluate

                        record["eval_return"] = evaluate(env_id, learner.policy(), config.eval_episodes,
                                                         config.seed + 10_000)[0]
                    record["seconds"] = time.perf_counter() - t0 - callback_seconds
                    history.append(record)
                    bar.set_postfix(loss=f"{loss_value:.4g}", refresh=False)
                    if callback is not None:
                        t_cb = time.perf_counter()
                        stop = bool(callback(record, learner.policy()))
                        callback_seconds += time.perf_counter() - t_cb  # "seconds" is training time only
                        if stop:
                            break
            if stop:
                break
    finally:
        bar.close()
        if online and isinstance(env, str):
            live_env.close()
    return Result(**learner.result_parts(), history=history, n_transitions=n, config=config)


def _random_action(space: spaces.Space, rng: np.random.Generator) -> Any:
    """A uniform action from ``rng`` (not ``space.sample()``, whose RNG is not ours to seed)."""
    if isinstance(space, spaces.Discrete):
        return int(space.start) + int(rng.integers(int(space.n)))
    return rng.uniform(space.low, space.high).astype(space.dtype)
