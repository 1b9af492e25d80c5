"""Guided cost learning (Finn, Levine & Abbeel 2016, "Guided Cost Learning: Deep Inverse Optimal Control via
Policy Optimization"): sample-based MaxEnt IOC with a neural cost, no dynamics model.

Model: trajectories are exponentially less likely the more they cost, p(tau) = exp(-c_theta(tau)) / Z with
c_theta(tau) = sum_t c_theta(s_t, a_t) (undiscounted) and an MLP c_theta (standardised observations + one-hot
Discrete / raw Box action). Z = int exp(-c_theta(tau)) dtau is estimated by importance sampling from
background trajectories tau_j ~ z (dynamics cancel in z(tau) / p(tau), so only the policies' action
likelihoods enter):

    L_IOC(theta) = (1/N) sum_{i in demos} c_theta(tau_i) + log (1/M) sum_{j in bg} exp(-c_theta(tau_j)) / z(tau_j)
                 = mean_i c_theta(tau_i) + logsumexp_j(-c_theta(tau_j) - log z(tau_j)) - log M,

    log z(tau_j) = logsumexp_k log q_k(tau_j) - log K      (the mixture of the K sampling distributions),
    log q_k(tau) = sum_t log pi_k(a_t | s_t)               (``irlhf.rl.sb3.action_log_prob``).

The gradient is E_demos[grad c] - sum_j w_j grad c(tau_j) with self-normalised weights
w_j proportional to exp(-c(tau_j)) / z(tau_j): push the demos' cost down, the (re-weighted) samples' cost up.

Fusion of demonstrations and samples (paper, section 4): each minibatch of demonstrations is also added to the
background minibatch, and z is a mixture. What is computed here (K = 2 components per trajectory):

- a policy sample tau_j: log z = logmeanexp(log q_gen(tau_j), log pi_cur(tau_j)), where q_gen is the product of
  the action probabilities of the policies that actually generated it, recorded step by step *at generation
  time* (PPO's policy is fixed during a rollout, SAC's changes every step; both are exact this way), and
  pi_cur is the current policy (re-evaluated at each iteration on the whole pool);
- a demonstration: its density is unknown; the paper calls for a rough demo density. ``demo_density="bc"``
  (default): a behaviour-cloning policy q_bc fitted once on the demos (``irlhf.imitation.bc``, tanh units),
  mixed 1:1 with the policy part, for *every* background trajectory (the fused mixture
  z = (q_bc + q_policy) / 2): a demo's q_policy is pi_cur, a sample's is the mean of (q_gen, pi_cur) above.
  ``demo_density="policy"`` (the earlier form): no BC; demos get log z = log pi_cur(tau_i), samples the
  2-component (q_gen, pi_cur) mixture.

This replaces the paper's full mixture (1/k) sum_k q_k(tau_j) over every past sampling policy (which needs
each trajectory evaluated under every past policy) by its two most informative components; ``ioc_loss``
itself takes any (M, K) matrix of component log-densities. Without the demos in the background
(``demos_in_background=False``) L_IOC is unbounded below once the cost separates demos from samples (measured:
the loss ran to -2e4 in 10k CartPole steps), which is why the paper adds them.

Episode ends (``absorbing=True``, default; the absorbing state of Kostrikov et al. 2019): the MaxEnt model is
over trajectories of one fixed horizon H (``Config.horizon``, default the env's ``max_episode_steps``,
500 on CartPole-v1). A trajectory that really terminated after T < H steps continues in an absorbing state
whose cost per step is a learned scalar c_abs (``CostNet.absorbing_cost``, initialised at 0):

    c(tau) = sum_{t<T} c(s_t, a_t) + (H - T) c_abs            (a time-limit cut: the plain sum, no padding)

(``padded_trajectory_costs``). The absorbing state has one action with probability 1, so z(tau) is unchanged.
Now every trajectory spans H steps and L_IOC is invariant to adding b to c(s, a) and c_abs together; only
c - c_abs matters, and c_abs is learned from how the demos' and the weighted samples' lengths differ. The
policy's reward is the same model seen by a discounted learner: -c(s, a) per step, and on a step that
terminates the episode (the wrapper's ``terminated``, not a time-limit cut) also the discounted absorbing
tail -sum_{k>=1} gamma^k c_abs = -gamma / (1 - gamma) c_abs (gamma: the RL model's). So ending an episode
pays off for the policy only when c_abs < c on the states it would otherwise visit. ``absorbing=False``: the
plain sums of the length effect below.

BC warm start (``bc_warm_start``, default on for PPO): the PPO generator's actor starts as the BC policy
(``irlhf.rl.sb3.ppo_from_bc``), the paper's "initialise the policy" step, so that early samples resemble the
demos.

What it does on CartPole-v1 (``benchmarks/gcl_cartpole.py``: 4 scripted-expert trajectories, 50k steps,
seeds 0-2; docs/RESULTS.md): the policy ends at 110 (BC warm start) and 165 (none) of 500, and a fresh PPO on
the learned cost does not balance the pole. The importance weights sit on the demos from the first phases on
(effective sample size 4.0 of 204 background trajectories): a demo's log z sums ~500 steps of near-deterministic
BC log-likelihood (log z ~ -25) while a short sample's is ~ -7, so exp(-c) / z favours the demos by ~e^18 even
at c = 0; L_IOC then sits at its demos-only floor and gives the samples' costs and c_abs almost no gradient.
This is the variance problem of trajectory-level importance sampling that AIRL's per-step discriminator
removes. Without the BC demo density (``demo_density="policy"``) an earlier run's ESS was lower still (1-2).

Regularisers (paper, section 4.1), both off by default (weight 0):

    g_lcr(tau)  = sum_{t=1..T-2} ((c_{t+1} - c_t) - (c_t - c_{t-1}))^2     local constancy, on demos and samples
    g_mono(tau) = sum_{t=1..T-1} max(0, c_t - c_{t-1} - margin)^2          monotonic decrease, on demos only

each averaged over the minibatch's trajectories and added with weights ``lcr_weight`` / ``mono_weight``.

Loop ("partial policy optimisation"): an SB3 PPO (or SAC, Box actions) from ``irlhf.rl.sb3.make_model`` learns
on the reward -c_theta(s, a) through a ``RewardVecEnvWrapper``; every ``steps_per_iteration`` environment steps
(at the end of a rollout) the finished episodes join a pool of the ``sample_pool`` most recent ones, and the
cost takes ``cost_updates_per_iteration`` Adam steps on minibatches of demos and pool samples; SAC's replay
buffer is relabelled with the new reward. The policy is never trained to convergence on any one cost.

Episodes of different lengths without padding (``absorbing=False``; CartPole terminates early): the costs are
plain sums, as the objective says. A consequence: the level of c is identified. Adding b to every per-step
cost changes L_IOC by b (mean demo length - sum_j w_j T_j), so when the demos are longer than the weighted
samples (a CartPole expert lasts 500 steps, a poor policy ~20) the gradient lowers c everywhere, i.e. the
reward -c carries a survival bonus; when the expert's episodes are the short ones it carries a penalty for
living. With equal lengths L_IOC is invariant to that shift.

    result = gcl.train("CartPole-v1", demos, gcl.Config(total_timesteps=50_000))
    actions = result.policy(obs_batch)                  # the SB3 policy (deterministic)
    rewards = result.reward(obs, acts, next_obs)        # -c_theta(s, a), (n,)
"""

from __future__ import annotations

import collections
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from tqdm.auto import tqdm

from irlhf.core.config import BaseConfig, check_bool, check_choice, check_hidden_sizes, check_number
from irlhf.core.errors import ValidationError, describe
from irlhf.data.types import Trajectory
from irlhf.imitation.bc import _check_demos
from irlhf.nn.mlp import ACTIVATIONS, mlp

__all__ = ["Config", "CostNet", "CostReward", "Result", "ioc_loss", "lcr_penalty", "mixture_log_density",
           "mono_penalty", "padded_trajectory_costs", "train"]


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """Guided cost learning settings.

    algo: "ppo" (Discrete or Box actions) or "sac" (Box actions); built by ``irlhf.rl.sb3.make_model`` with
      its tuned defaults for the env, updated by ``rl_kwargs`` (e.g. ``{"n_envs": 4, "ent_coef": 0.01}``).
    total_timesteps: environment steps of the whole run (policy and cost learn alternately during it).
    steps_per_iteration: environment steps between two cost-update phases (rounded up to whole rollouts).
    cost_updates_per_iteration: Adam steps on the cost per phase (K in the paper's Algorithm 1).
    hidden_sizes / activation: the cost MLP (``irlhf.nn.mlp``).
    lr: Adam step size of the cost.  weight_decay: Adam's L2 on the cost weights (>= 0).
    demo_batch_size / sample_batch_size: trajectories per cost minibatch (all of them when fewer exist);
      the demo minibatch is also added to the background samples.
    sample_pool: how many of the most recent policy episodes are kept as background samples.
    demos_in_background: add the demo minibatch to the background samples (the paper's fusion; module
      docstring). False: the background is the policy samples alone, log z = the 2-component mixture.
    lcr_weight / mono_weight / mono_margin: the paper's local-constancy and monotonicity regularisers
      (module docstring); 0 = off (default).
    normalize_reward: divide the reward -c given to the policy by the std of c over the pool's and demos'
      steps (recomputed after each phase; no shift, so the survival sign is kept). Default off.
    normalize_obs: standardise Box observations in the cost with the demos' mean / std.
    absorbing: pad really terminated trajectories to ``horizon`` with the learned absorbing cost c_abs and give
      the policy the discounted absorbing tail at terminations (module docstring). Default on.
    horizon: H for the padding; None = the env's ``max_episode_steps`` (an error if it has none).
    demo_density: "bc" (default): z mixes a BC policy fitted on the demos 1:1 with the policy densities, for
      demos and samples; "policy": the current policy stands in for the demo density (module docstring).
    bc_warm_start: start PPO's actor from that BC policy (``ppo_from_bc``); None (default) = on for PPO, off for
      SAC (True with SAC is refused).
    seed: seeds the cost initialisation, the minibatches and the RL model.  progress: tqdm bar over steps.
    """

    algo: str = "ppo"
    total_timesteps: int = 50_000
    rl_kwargs: dict = dataclasses.field(default_factory=dict)
    steps_per_iteration: int = 1024
    cost_updates_per_iteration: int = 20
    hidden_sizes: tuple[int, ...] = (32, 32)
    activation: str = "relu"
    lr: float = 1e-3
    weight_decay: float = 0.0
    demo_batch_size: int = 8
    sample_batch_size: int = 32
    sample_pool: int = 200
    demos_in_background: bool = True
    lcr_weight: float = 0.0
    mono_weight: float = 0.0
    mono_margin: float = 1.0
    normalize_reward: bool = False
    normalize_obs: bool = True
    absorbing: bool = True
    horizon: int | None = None
    demo_density: str = "bc"
    bc_warm_start: bool | None = None
    seed: int = 0
    progress: bool = False

    def __post_init__(self) -> None:
        from irlhf.rl.sb3 import ALGOS

        if not isinstance(self.algo, str) or self.algo.lower() not in ("ppo", "sac"):
            raise ValidationError(f"algo={describe(self.algo)}: unknown or unsupported algorithm; expected 'ppo' "
                                  f"or 'sac' (a stochastic policy with a likelihood; sb3 knows {list(ALGOS)})")
        object.__setattr__(self, "algo", self.algo.lower())
        check_number("total_timesteps", self.total_timesteps, low=1, integer=True)
        if not isinstance(self.rl_kwargs, dict):
            raise ValidationError(f"rl_kwargs={describe(self.rl_kwargs)}: expected a dict of make_model overrides")
        check_number("steps_per_iteration", self.steps_per_iteration, low=1, integer=True)
        check_number("cost_updates_per_iteration", self.cost_updates_per_iteration, low=1, integer=True)
        object.__setattr__(self, "hidden_sizes", check_hidden_sizes("hidden_sizes", self.hidden_sizes))
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_number("lr", self.lr, low=0, low_open=True)
        check_number("weight_decay", self.weight_decay, low=0)
        check_number("demo_batch_size", self.demo_batch_size, low=1, integer=True)
        check_number("sample_batch_size", self.sample_batch_size, low=1, integer=True)
        check_number("sample_pool", self.sample_pool, low=1, integer=True)
        check_bool("demos_in_background", self.demos_in_background)
        check_number("lcr_weight", self.lcr_weight, low=0)
        check_number("mono_weight", self.mono_weight, low=0)
        check_number("mono_margin", self.mono_margin)
        check_bool("normalize_reward", self.normalize_reward)
        check_bool("normalize_obs", self.normalize_obs)
        check_bool("absorbing", self.absorbing)
        if self.horizon is not None:
            check_number("horizon", self.horizon, low=1, integer=True)
        check_choice("demo_density", self.demo_density, ("bc", "policy"))
        if self.bc_warm_start is not None:
            check_bool("bc_warm_start", self.bc_warm_start)
            if self.bc_warm_start and self.algo != "ppo":
                raise ValidationError(f"bc_warm_start=True with algo={self.algo!r}: expected algo='ppo'")
        check_number("seed", self.seed, low=0, integer=True)
        check_bool("progress", self.progress)


# -- the objective ------------------------------------------------------------------------------
def mixture_log_density(log_q: torch.Tensor) -> torch.Tensor:
    """log z = log (1/K) sum_k q_k from component log-densities: (M, K) -> (M,); (M,) is returned as is."""
    if log_q.ndim == 1:
        return log_q
    return torch.logsumexp(log_q, dim=-1) - math.log(log_q.shape[-1])


def ioc_loss(demo_costs: torch.Tensor, sample_costs: torch.Tensor, sample_log_q: torch.Tensor
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_IOC = mean(demo_costs) + logsumexp(-sample_costs - log z) - log M (module docstring).

    demo_costs (N,): c(tau_i) of the demonstrations; sample_costs (M,): c(tau_j) of the background set (include
    the demos there yourself, as ``train`` does); sample_log_q (M,) log z(tau_j) or (M, K) log q_k(tau_j), the
    component log-densities (nats, summed over steps) averaged as the uniform mixture. Returns the scalar loss
    and detached parts: log_z_hat (the log partition estimate), weights (M,) the normalised importance weights,
    ess = 1 / sum w^2 (effective sample size, in [1, M]).
    """
    if demo_costs.ndim != 1 or sample_costs.ndim != 1 or len(demo_costs) == 0 or len(sample_costs) == 0:
        raise ValidationError(f"ioc_loss: demo_costs {tuple(demo_costs.shape)}, sample_costs "
                              f"{tuple(sample_costs.shape)}; expected non-empty (N,) and (M,)")
    log_z = mixture_log_density(sample_log_q)
    if log_z.shape != sample_costs.shape:
        raise ValidationError(f"ioc_loss: sample_log_q {tuple(sample_log_q.shape)}; expected ({len(sample_costs)},) "
                              f"or ({len(sample_costs)}, K)")
    logits = -sample_costs - log_z.to(sample_costs.dtype)
    log_z_hat = torch.logsumexp(logits, dim=0) - math.log(len(sample_costs))
    loss = demo_costs.mean() + log_z_hat
    weights = torch.softmax(logits.detach(), dim=0)
    return loss, {"log_z_hat": log_z_hat.detach(), "weights": weights, "ess": 1.0 / (weights * weights).sum()}


def _segments(lengths: Sequence[int], device: Any = None) -> torch.Tensor:
    return torch.repeat_interleave(torch.arange(len(lengths), device=device), torch.as_tensor(list(lengths)))


def trajectory_costs(step_costs: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
    """Per-trajectory sums of concatenated per-step costs: (sum(lengths),) -> (len(lengths),)."""
    out = torch.zeros(len(lengths), dtype=step_costs.dtype)
    return out.index_add(0, _segments(lengths), step_costs)


def padded_trajectory_costs(step_costs: torch.Tensor, lengths: Sequence[int], terminated: Sequence[bool],
                            horizon: int, absorbing_cost: torch.Tensor | float) -> torch.Tensor:
    """c(tau) over a fixed horizon H: sum_t c(s_t, a_t) + max(0, H - T) * c_abs for a trajectory that really
    terminated after T steps (the absorbing state filling the rest), the plain sum for one cut by a time limit
    (its T is H, or its future is unknown). (sum(lengths),) -> (len(lengths),); differentiable in c_abs."""
    sums = trajectory_costs(step_costs, lengths)
    pad = torch.as_tensor([max(0, int(horizon) - int(n)) if bool(d) else 0 for n, d in zip(lengths, terminated)],
                          dtype=sums.dtype)
    return sums + pad * absorbing_cost


def _within(lengths: Sequence[int], span: int) -> torch.Tensor:
    """Mask over starts t of windows [t, t + span] that lie inside one trajectory of the concatenation."""
    ids = _segments(lengths)
    total = len(ids)
    if total <= span:
        return torch.zeros(0, dtype=torch.bool)
    return ids[:total - span] == ids[span:]


def lcr_penalty(step_costs: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
    """Local constancy: mean over trajectories of sum_t (c_{t+1} - 2 c_t + c_{t-1})^2 (trajectories shorter than
    3 steps contribute 0). step_costs: the trajectories' per-step costs concatenated, (sum(lengths),)."""
    if len(lengths) == 0:
        return step_costs.new_zeros(())
    mask = _within(lengths, 2)
    if len(mask) == 0:
        return step_costs.new_zeros(())
    second = step_costs[2:] - 2.0 * step_costs[1:-1] + step_costs[:-2]
    return (second[mask] ** 2).sum() / len(lengths)


def mono_penalty(step_costs: torch.Tensor, lengths: Sequence[int], margin: float = 1.0) -> torch.Tensor:
    """Monotonic decrease (for demos): mean over trajectories of sum_t max(0, c_t - c_{t-1} - margin)^2."""
    if len(lengths) == 0:
        return step_costs.new_zeros(())
    mask = _within(lengths, 1)
    if len(mask) == 0:
        return step_costs.new_zeros(())
    rise = torch.clamp(step_costs[1:] - step_costs[:-1] - margin, min=0.0)
    return (rise[mask] ** 2).sum() / len(lengths)


# -- the cost network ---------------------------------------------------------------------------------
class CostNet(torch.nn.Module):
    """c_theta(s, a): an MLP on [(s - mean) / scale, one_hot(a) (Discrete) or a (Box)] -> one cost per step,
    and a learned scalar ``absorbing_cost`` c_abs (the absorbing state's cost per step; 0 at the start).

    forward(obs (n, *obs_shape), acts (n,) or (n, *act_shape)) -> (n,) float32 costs (numpy or tensors).
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, hidden_sizes: Sequence[int],
                 activation: str = "relu", obs_mean: np.ndarray | None = None, obs_scale: np.ndarray | None = None,
                 seed: int = 0):
        super().__init__()
        self.observation_space, self.action_space = observation_space, action_space
        self.obs_dim = int(np.prod(observation_space.shape))
        self.discrete = isinstance(action_space, spaces.Discrete)
        self.act_dim = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        self.net = mlp(self.obs_dim + self.act_dim, list(hidden_sizes), 1, activation, seed=seed)
        mean = np.zeros(self.obs_dim) if obs_mean is None else np.asarray(obs_mean).reshape(-1)
        scale = np.ones(self.obs_dim) if obs_scale is None else np.asarray(obs_scale).reshape(-1)
        self.register_buffer("obs_mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("obs_scale", torch.as_tensor(scale, dtype=torch.float32))
        # c_abs: the cost of one step in the absorbing state after a real termination (``Config.absorbing``)
        self.absorbing_cost = torch.nn.Parameter(torch.zeros(()))

    def features(self, obs: Any, acts: Any) -> torch.Tensor:
        x = torch.as_tensor(np.array(obs, dtype=np.float32) if not torch.is_tensor(obs) else obs).float()
        x = (x.reshape(len(x), -1) - self.obs_mean) / self.obs_scale
        a = torch.as_tensor(np.array(acts) if not torch.is_tensor(acts) else acts)
        if self.discrete:
            a = torch.nn.functional.one_hot(a.reshape(-1).long() - int(self.action_space.start), self.act_dim).float()
        else:
            a = a.reshape(len(a), -1).float()
        return torch.cat([x, a], dim=1)

    def forward(self, obs: Any, acts: Any) -> torch.Tensor:
        return self.net(self.features(obs, acts))[:, 0]


class CostReward:
    """The learned reward -c_theta(s, a) / scale (next_obs is ignored).

    ``reward(obs (n, ...), acts (n, ...), next_obs (n, ...), terminated (n,) bool = None) -> (n,)`` float64
    numpy (the ``RewardVecEnvWrapper`` form, ``with_dones=True``); a single transition gives a float.
    ``scale`` is 1 unless ``Config.normalize_reward``. ``tail`` (0 unless ``Config.absorbing``): a step that
    really terminated an episode also gets -tail * c_abs / scale, the discounted cost of the absorbing state
    that follows it for ever, tail = gamma / (1 - gamma) (module docstring).
    """

    def __init__(self, cost_net: CostNet, scale: float = 1.0, tail: float = 0.0):
        self.cost_net, self.scale, self.tail = cost_net, float(scale), float(tail)

    def __call__(self, obs: Any, acts: Any, next_obs: Any = None, terminated: Any = None) -> np.ndarray | float:
        shape = tuple(self.cost_net.observation_space.shape)
        x = np.array(obs, dtype=np.float32)
        single = x.shape == shape
        a = np.asarray(acts)
        if single:
            x, a = x[None], a.reshape(1, *a.shape)
        if x.shape[1:] != shape or len(a) != len(x):
            raise ValidationError(f"reward: obs {x.shape}, acts {a.shape}; expected (n, *{shape}) and n actions")
        with torch.no_grad():
            cost = self.cost_net(x, a).double()
            if terminated is not None and self.tail:
                done = torch.as_tensor(np.asarray(terminated, dtype=bool).reshape(-1))
                cost = cost + done.double() * self.tail * float(self.cost_net.absorbing_cost)
            out = (-cost / self.scale).numpy()
        return float(out[0]) if single else out


@dataclasses.dataclass
class Result:
    """policy: ``SB3Policy`` of the trained model (deterministic actions); reward: the ``CostReward``
    (-c_theta); cost_net: the ``CostNet``; model: the SB3 model; history: one dict per iteration (iteration,
    timesteps, ioc_loss, demo_cost and sample_cost (mean trajectory cost c(tau)), demo_step_cost and
    sample_step_cost (mean per-step cost), ess (effective sample size of the importance weights over the
    background set, its size in n_background), mean_true_return (the last 20 policy episodes' true returns),
    seconds; absorbing_cost (c_abs), sample_length (mean length of the pool's episodes)); config."""

    policy: Any
    reward: CostReward
    cost_net: CostNet
    model: Any
    history: list[dict]
    config: Config


# -- inputs -------------------------------------------------------------------------------------
def _demo_trajectories(demos: Any, obs_space: spaces.Space, act_space: spaces.Space
                       ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(obs (T, *obs_shape), acts (T, ...)) per demo episode (the final observation dropped), checked."""
    if isinstance(demos, Trajectory) or (hasattr(demos, "obs") and hasattr(demos, "acts")
                                         and not isinstance(demos, Sequence)):
        demos = [demos]
    if not isinstance(demos, Sequence) or isinstance(demos, (str, bytes)):
        raise ValidationError(f"demos: {describe(demos)}; expected a list of Trajectory (whole episodes)")
    if len(demos) == 0:
        raise ValidationError("demos: empty list; expected at least one Trajectory")
    out = []
    for k, demo in enumerate(demos):
        if not (hasattr(demo, "obs") and hasattr(demo, "acts")):
            raise ValidationError(f"demos[{k}]: {describe(demo)}; expected a Trajectory (obs, acts)")
        try:
            obs, acts = np.array(demo.obs, copy=True), np.array(demo.acts, copy=True)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"demos[{k}]: obs / acts not numeric arrays ({exc})") from None
        for name, a in (("obs", obs), ("acts", acts)):
            if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
                raise ValidationError(f"demos[{k}].{name}: dtype {a.dtype}; expected numbers")
            if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
                raise ValidationError(f"demos[{k}].{name}: non-finite values (NaN or inf); expected finite numbers")
        if acts.ndim == 0 or len(acts) == 0:
            raise ValidationError(f"demos[{k}]: no actions; expected episodes of at least one step")
        if len(obs) != len(acts) + 1:
            raise ValidationError(f"demos[{k}]: {len(obs)} observations for {len(acts)} actions; expected "
                                  "len(obs) == len(acts) + 1")
        try:
            acts = _check_demos(obs, acts, obs_space, act_space)
        except ValidationError as exc:
            raise ValidationError(f"demos[{k}] do not fit the environment: {exc}") from None
        out.append((obs[:-1].astype(np.float32), acts))
    return out


# -- sample collection --------------------------------------------------------------------------
def _make_sampler(venv: Any, reward_fn: Callable, model: Any, max_episodes: int) -> Any:
    """A RewardVecEnvWrapper (reward_fn(obs, acts, next_obs, terminated)) that also sums log pi(a_t | s_t) of
    each step's acting policy (at generation time) and hands finished episodes out as (Trajectory, log_q)
    through ``take()``."""
    from irlhf.rl.sb3 import action_log_prob
    from irlhf.rl.wrappers import RewardVecEnvWrapper

    class _Sampler(RewardVecEnvWrapper):
        def __init__(self) -> None:
            super().__init__(venv, reward_fn, record=True, max_episodes=max(max_episodes, venv.num_envs),
                             with_dones=True)
            self._log_q = np.zeros(self.num_envs)
            self._step_log_q = np.zeros(self.num_envs)
            self.fresh: list[tuple[Trajectory, float]] = []

        def reset(self) -> np.ndarray:
            self._log_q[:] = 0.0
            return super().reset()

        def step_async(self, actions: np.ndarray) -> None:
            if model.num_timesteps < getattr(model, "learning_starts", 0):  # SAC's uniform warm-up actions
                low, high = model.action_space.low, model.action_space.high
                self._step_log_q = np.full(self.num_envs, -float(np.sum(np.log(high - low))))
            else:
                with torch.no_grad():
                    self._step_log_q = action_log_prob(model, self._obs, np.asarray(actions)).double().numpy()
            super().step_async(actions)

        def step_wait(self) -> Any:
            obs, rewards, dones, infos = super().step_wait()
            self._log_q += self._step_log_q
            done = np.flatnonzero(dones)
            if len(done):
                episodes = list(self.episodes)[-len(done):]
                for i, episode in zip(done, episodes):
                    self.fresh.append((episode, float(self._log_q[i])))
                    self._log_q[i] = 0.0
            return obs, rewards, dones, infos

        def take(self) -> list[tuple[Trajectory, float]]:
            fresh, self.fresh = self.fresh, []
            return fresh

    return _Sampler()


# -- training -----------------------------------------------------------------------------------
def train(env_id: str, demos: Any, config: Config | None = None, *,
          callback: Callable[[dict, Any], bool | None] | None = None) -> Result:
    """Guided cost learning on ``env_id`` (a gymnasium id) from ``demos`` (a list of whole-episode
    ``Trajectory``; module docstring). callback(record, policy), called with each iteration's history record
    and the current ``SB3Policy``, may return True to stop. Torch runs on one thread meanwhile."""
    from irlhf.rl.sb3 import one_thread

    with one_thread():
        return _train(env_id, demos, Config() if config is None else config, callback)


def _train(env_id: str, demos: Any, config: Config, callback: Any) -> Result:
    from stable_baselines3.common.callbacks import BaseCallback

    from irlhf.rl.sb3 import SB3Policy, action_log_prob, check_algo_space, env_spaces, make_model, ppo_from_bc, \
        relabel_replay_buffer

    if not isinstance(config, Config):
        raise ValidationError(f"config: {type(config).__name__}; expected irlhf.irl.gcl.Config")
    obs_space, act_space = env_spaces(env_id)
    check_algo_space(config.algo, env_id, act_space)
    if not isinstance(obs_space, spaces.Box):
        raise ValidationError(f"env={env_id!r}: observation space {obs_space}; expected a Box")
    demo_list = _demo_trajectories(demos, obs_space, act_space)
    demo_obs = np.concatenate([o for o, _ in demo_list])
    demo_acts = np.concatenate([a for _, a in demo_list])
    demo_lengths = [len(a) for _, a in demo_list]
    demo_terminal = [bool(getattr(d, "terminal", True)) for d in (demos if isinstance(demos, Sequence) else [demos])]
    horizon = config.horizon
    if config.absorbing and horizon is None:
        import gymnasium

        horizon = gymnasium.spec(env_id).max_episode_steps
        if horizon is None:
            raise ValidationError(f"env={env_id!r} has no max_episode_steps; expected Config.horizon (the length "
                                  "every trajectory is padded to) or absorbing=False")

    mean = scale = None
    if config.normalize_obs:
        x = demo_obs.reshape(len(demo_obs), -1).astype(np.float64)
        mean, std = x.mean(axis=0), x.std(axis=0)
        scale = np.where(std > 1e-8 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    cost_net = CostNet(obs_space, act_space, config.hidden_sizes, config.activation, mean, scale, seed=config.seed)
    optimizer = torch.optim.Adam(cost_net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)

    warm_start = config.algo == "ppo" if config.bc_warm_start is None else config.bc_warm_start
    bc_module = None
    if warm_start or config.demo_density == "bc":
        from irlhf.imitation import bc

        bc_policy = bc.train(env_id, demos, bc.Config(activation="tanh", seed=config.seed)).policy
        bc_module = bc_policy.module.eval()
    if warm_start:
        model = ppo_from_bc(env_id, bc_policy, seed=config.seed, **config.rl_kwargs)
    else:
        model = make_model(config.algo, env_id, seed=config.seed, **config.rl_kwargs)
    reward = CostReward(cost_net, tail=model.gamma / (1.0 - model.gamma) if config.absorbing else 0.0)
    venv = _make_sampler(model.get_env(), lambda o, a, n, d: reward(o, a, n, d), model, config.sample_pool)
    model.set_env(venv)
    # pool entries: [obs (T, ...), acts (T, ...), log q_gen, terminated, log q_bc]
    pool: collections.deque[list] = collections.deque(maxlen=config.sample_pool)
    returns: collections.deque[float] = collections.deque(maxlen=20)
    history: list[dict] = []
    t0 = time.perf_counter()
    state = {"callback_seconds": 0.0, "stop": False, "iteration": 0}

    def log_pi(obs: np.ndarray, acts: np.ndarray, lengths: list[int]) -> np.ndarray:
        if not lengths:
            return np.zeros(0)
        with torch.no_grad():
            steps = torch.cat([action_log_prob(model, obs[i:i + 8192], acts[i:i + 8192])
                               for i in range(0, len(obs), 8192)]).double()
        return trajectory_costs(steps, lengths).numpy()

    def log_bc(obs: np.ndarray, acts: np.ndarray, lengths: list[int]) -> np.ndarray:
        with torch.no_grad():
            steps = torch.cat([bc_module.log_prob(obs[i:i + 8192], acts[i:i + 8192]).reshape(-1)
                               for i in range(0, len(obs), 8192)]).double()
        return trajectory_costs(steps, lengths).numpy()

    def costs_of(steps: torch.Tensor, lengths: list[int], terminal: list[bool]) -> torch.Tensor:
        if not config.absorbing:
            return trajectory_costs(steps, lengths)
        return padded_trajectory_costs(steps, lengths, terminal, horizon, cost_net.absorbing_cost)

    if config.demo_density == "bc":
        bc_demo = log_bc(demo_obs, demo_acts, demo_lengths)

    def batch(items: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, list[int]]:
        obs = np.concatenate([o for o, _ in items])
        acts = np.concatenate([a for _, a in items])
        return cost_net(obs, acts), [len(a) for _, a in items]

    def iteration(timesteps: int) -> None:
        for episode, log_q in venv.take():
            acts = np.asarray(episode.acts)
            if isinstance(act_space, spaces.Discrete):
                acts = acts.reshape(-1).astype(np.int64)
            obs = np.asarray(episode.obs[:-1], dtype=np.float32)
            q_bc = float(log_bc(obs, acts, [len(acts)])[0]) if config.demo_density == "bc" else 0.0
            pool.append([obs, acts, log_q, bool(episode.terminal), q_bc])
            returns.append(float(np.sum(episode.rews)))
        if not pool:
            return
        state["iteration"] += 1
        items = list(pool)
        pool_obs = np.concatenate([p[0] for p in items])
        pool_acts = np.concatenate([p[1] for p in items])
        pool_lengths = [len(p[1]) for p in items]
        pool_terminal = [p[3] for p in items]
        # component log-densities (module docstring): for samples the policy part is (generating policy,
        # current policy); for demos the current policy; with demo_density="bc" the BC density is mixed in 1:1
        cur_pool = log_pi(pool_obs, pool_acts, pool_lengths)
        cur_demo = log_pi(demo_obs, demo_acts, demo_lengths)
        gen_pool = np.array([p[2] for p in items])
        if config.demo_density == "bc":
            pol_pool = np.logaddexp(gen_pool, cur_pool) - math.log(2.0)
            lq_pool = torch.as_tensor(np.stack([[p[4] for p in items], pol_pool], axis=1))
            lq_demo = torch.as_tensor(np.stack([bc_demo, cur_demo], axis=1))
        else:
            lq_pool = torch.as_tensor(np.stack([gen_pool, cur_pool], axis=1))
            lq_demo = torch.as_tensor(np.stack([cur_demo, cur_demo], axis=1))
        cost_net.train()
        for _ in range(config.cost_updates_per_iteration):
            di = torch.randperm(len(demo_list), generator=gen)[:config.demo_batch_size].tolist()
            si = torch.randperm(len(items), generator=gen)[:config.sample_batch_size].tolist()
            demo_items = [demo_list[i] for i in di]
            sample_items = [(items[i][0], items[i][1]) for i in si]
            steps, lengths = batch(demo_items + sample_items)
            costs = costs_of(steps, lengths, [demo_terminal[i] for i in di] + [pool_terminal[i] for i in si])
            n_d = len(di)
            if config.demos_in_background:
                loss, _ = ioc_loss(costs[:n_d], costs, torch.cat([lq_demo[di], lq_pool[si]]))
            else:
                loss, _ = ioc_loss(costs[:n_d], costs[n_d:], lq_pool[si])
            if config.lcr_weight > 0:
                loss = loss + config.lcr_weight * lcr_penalty(steps, lengths)
            if config.mono_weight > 0:
                n_demo_steps = sum(lengths[:n_d])
                loss = loss + config.mono_weight * mono_penalty(steps[:n_demo_steps], lengths[:n_d],
                                                                config.mono_margin)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        cost_net.eval()
        with torch.no_grad():
            demo_steps = cost_net(demo_obs, demo_acts)
            pool_steps = cost_net(pool_obs, pool_acts)
            demo_c = costs_of(demo_steps, demo_lengths, demo_terminal)
            pool_c = costs_of(pool_steps, pool_lengths, pool_terminal)
            if config.demos_in_background:
                full_loss, parts = ioc_loss(demo_c.double(), torch.cat([demo_c, pool_c]).double(),
                                            torch.cat([lq_demo, lq_pool]))
            else:
                full_loss, parts = ioc_loss(demo_c.double(), pool_c.double(), lq_pool)
        value = float(full_loss)
        if not math.isfinite(value):
            raise ValidationError(f"ioc_loss={value}: training diverged; expected a smaller lr")
        if config.normalize_reward:
            std = float(torch.cat([demo_steps, pool_steps]).std())
            reward.scale = std if std > 1e-8 else 1.0
        if config.algo == "sac":
            relabel_replay_buffer(model, reward, with_dones=True)
        record = {"iteration": state["iteration"], "timesteps": int(timesteps), "ioc_loss": value,
                  "demo_cost": float(demo_c.mean()), "sample_cost": float(pool_c.mean()),
                  "demo_step_cost": float(demo_steps.mean()), "sample_step_cost": float(pool_steps.mean()),
                  "absorbing_cost": cost_net.absorbing_cost.item(),
                  "sample_length": float(np.mean(pool_lengths)), "ess": float(parts["ess"]),
                  "n_background": len(pool_c) + (len(demo_c) if config.demos_in_background else 0),
                  "mean_true_return": float(np.mean(returns)) if returns else None,
                  "seconds": time.perf_counter() - t0 - state["callback_seconds"]}
        history.append(record)
        if callback is not None:
            t_cb = time.perf_counter()
            state["stop"] = bool(callback(record, SB3Policy(model, config.algo)))
            state["callback_seconds"] += time.perf_counter() - t_cb

    class _Loop(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_at, self.shown = config.steps_per_iteration, 0
            self.bar = tqdm(total=config.total_timesteps, desc="gcl", unit="step", leave=False,
                            disable=not config.progress)

        def _on_step(self) -> bool:
            if config.algo == "sac" and self.num_timesteps >= self.next_at:
                self._iterate()  # SAC's rollouts are single steps: iterate from here
            return not state["stop"]

        def _on_rollout_end(self) -> None:
            if config.algo != "sac" and self.num_timesteps >= self.next_at:
                self._iterate()

        def _iterate(self) -> None:
            while self.next_at <= self.num_timesteps:
                self.next_at += config.steps_per_iteration
            self.bar.update(self.num_timesteps - self.shown)
            self.shown = self.num_timesteps
            iteration(self.num_timesteps)

    loop = _Loop()
    try:
        model.learn(config.total_timesteps, callback=loop)
    finally:
        loop.bar.close()
    cost_net.eval()
    return Result(policy=SB3Policy(model, config.algo), reward=reward, cost_net=cost_net, model=model,
                  history=history, config=config)
