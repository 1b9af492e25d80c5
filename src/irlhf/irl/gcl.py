"""Guided cost learning (Finn, Levine & Abbeel 2016, "Guided Cost Learning: Deep Inverse Optimal Control via
Policy Optimization"): sample-based MaxEnt IOC with a neural cost, no dynamics model.

Model: p(tau) = exp(-c_theta(tau)) / Z with c_theta(tau) = sum_t c_theta(s_t, a_t) (undiscounted), c_theta an
MLP on standardised observations and one-hot Discrete / raw Box actions. Z is estimated by importance sampling
from background trajectories tau_j ~ z (the dynamics cancel in z(tau) / p(tau)):

    L_IOC(theta) = mean_i c_theta(tau_i) + logsumexp_j(-c_theta(tau_j) - log z(tau_j)) - log M,

    log z(tau_j) = logsumexp_k log q_k(tau_j) - log K      (the mixture of the K sampling distributions),
    log q_k(tau) = sum_t log pi_k(a_t | s_t)               (``irlhf.rl.sb3.action_log_prob``),

i over the demos, j over the M background trajectories. Its gradient is E_demos[grad c] - sum_j w_j grad
c(tau_j), w_j proportional to exp(-c(tau_j)) / z(tau_j).

Fusion (paper, section 4): each demo minibatch is also added to the background (``demos_in_background``;
without it L_IOC is unbounded below). With ``background="all_past"`` (the paper's) the background keeps every
policy sample so far and z is the mixture of all past policies (``PastPolicyMixture``). The default "recent"
keeps the last ``sample_pool`` samples and z mixes K = 2 components per trajectory: for a policy sample the
policies that generated it (log-likelihoods recorded at generation time) and the current policy; for a
demo the current policy. ``demo_density="bc"`` (default) mixes in a behaviour-cloning density q_bc fitted
once on the demos, 1:1 for every background trajectory, z = (q_bc + q_policy) / 2. ``ioc_loss`` takes any
(M, K) matrix of component log-densities.

Episode ends (``absorbing=True``; the absorbing state of Kostrikov et al. 2019): trajectories span one
horizon H (``Config.horizon``, default the env's ``max_episode_steps``); one that terminated after T < H
steps continues in an absorbing state of learned cost c_abs (``CostNet.absorbing_cost``),

    c(tau) = sum_{t<T} c(s_t, a_t) + (H - T) c_abs                (``padded_trajectory_costs``),

and the policy's reward is -c(s, a) per step plus, on a terminating step, -gamma / (1 - gamma) c_abs.

Regularisers (paper, section 4.1; weight 0 = off):

    g_lcr(tau)  = sum_{t=1..T-2} ((c_{t+1} - c_t) - (c_t - c_{t-1}))^2     local constancy, demos and samples
    g_mono(tau) = sum_{t=1..T-1} max(0, c_t - c_{t-1} - margin)^2          monotonic decrease, demos only

Loop ("partial policy optimisation"): an SB3 PPO (or SAC, Box actions) learns on -c_theta through a
``RewardVecEnvWrapper``; every ``steps_per_iteration`` environment steps the finished episodes join a pool
of the ``sample_pool`` most recent ones and the cost takes ``cost_updates_per_iteration`` Adam steps; SAC's
replay buffer is relabelled with the new reward. ``bc_warm_start`` (default for PPO) starts the actor from
the BC policy. What the method does on CartPole, and why, is in docs/irl.md.

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
from typing import Annotated, Any, Literal

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback

from irlhf.core.config import BaseConfig, Check, NonNegative, OneOf, Positive, PositiveInt, Seed, Widths
from irlhf.core.errors import ValidationError, describe
from irlhf.data.demos import check_demos, obs_stats
from irlhf.data.types import Trajectory
from irlhf.envs.spaces import act_dim, episode_limit
from irlhf.irl.gcl_background import PastPolicyMixture, make_sampler
from irlhf.nn.encoders import ObsEncoder, encode
from irlhf.nn.mlp import ACTIVATIONS, mlp
from irlhf.rl.pretrain import resolve_bc_warm_start, warm_start_policy
from irlhf.rl.rewards import RewardFunction
from irlhf.rl.sb3 import (RlKwargs, SB3Policy, action_log_prob, advance, check_algo_space, env_spaces, make_model,
                          one_thread, ppo_from_bc, relabel_replay_buffer, run_user_callback, timestep_bar)

__all__ = ["Config", "CostNet", "CostReward", "PastPolicyMixture", "Result", "ioc_loss", "lcr_penalty",
           "mixture_log_density", "mono_penalty", "padded_trajectory_costs", "train"]


def _is_algo(value: Any) -> bool:
    return isinstance(value, str) and value.lower() in ("ppo", "sac")


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
    sample_pool: how many of the most recent policy episodes are kept as background samples ("recent" only).
    background: "recent" (default): the last ``sample_pool`` policy episodes, each sample's z the mixture of its
      generating policy and the current one; "all_past" (the paper's fusion): every policy episode so far, z
      the mixture of all past policies (``PastPolicyMixture``; one component per cost phase).
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
    weights: "trajectory" (default, the paper's): importance weights exp(-c(tau)) / z(tau); "per_step": both
      divided by the horizon H first (the weights' per-step geometric mean, tempered importance sampling): a
      500-step demonstration's near-deterministic log z no longer outweighs every shorter sample by hundreds of
      nats, at the price of a biased estimate of Z.
    seed: seeds the cost initialisation, the minibatches and the RL model.  progress: tqdm bar over steps.
    """

    algo: Annotated[str, Check(_is_algo, "'ppo' or 'sac' (any case; a stochastic policy with a likelihood)")] = "ppo"
    total_timesteps: PositiveInt = 50_000
    rl_kwargs: RlKwargs = dataclasses.field(default_factory=dict)
    steps_per_iteration: PositiveInt = 1024
    cost_updates_per_iteration: PositiveInt = 20
    hidden_sizes: Widths = (32, 32)
    activation: Annotated[str, OneOf(ACTIVATIONS)] = "relu"
    lr: Positive = 1e-3
    weight_decay: NonNegative = 0.0
    demo_batch_size: PositiveInt = 8
    sample_batch_size: PositiveInt = 32
    sample_pool: PositiveInt = 200
    background: Literal["recent", "all_past"] = "recent"
    demos_in_background: bool = True
    lcr_weight: NonNegative = 0.0
    mono_weight: NonNegative = 0.0
    mono_margin: float = 1.0
    normalize_reward: bool = False
    normalize_obs: bool = True
    absorbing: bool = True
    horizon: PositiveInt | None = None
    demo_density: Literal["bc", "policy"] = "bc"
    bc_warm_start: bool | None = None
    weights: Literal["trajectory", "per_step"] = "trajectory"
    seed: Seed = 0
    progress: bool = False

    def validate(self) -> None:
        object.__setattr__(self, "algo", self.algo.lower())
        object.__setattr__(self, "bc_warm_start", resolve_bc_warm_start(self.bc_warm_start, self.algo))


# -- the objective ------------------------------------------------------------------------------
def mixture_log_density(log_q: torch.Tensor) -> torch.Tensor:
    """log z = log (1/K) sum_k q_k from component log-densities: (M, K) -> (M,); (M,) is returned as is."""
    if log_q.ndim == 1:
        return log_q
    return torch.logsumexp(log_q, dim=-1) - math.log(log_q.shape[-1])


def ioc_loss(demo_costs: torch.Tensor, sample_costs: torch.Tensor, sample_log_q: torch.Tensor,
             temperature: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_IOC = mean(demo_costs) + logsumexp(-sample_costs - log z) - log M (module docstring); with a
    ``temperature`` T every cost and log-density is divided by T first (tempered importance weights:
    T = the horizon gives per-step weights, ``Config.weights="per_step"``).

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
    logits = (-sample_costs - log_z.to(sample_costs.dtype)) / temperature
    log_z_hat = torch.logsumexp(logits, dim=0) - math.log(len(sample_costs))
    loss = demo_costs.mean() / temperature + log_z_hat
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
class CostNet(ObsEncoder):
    """c_theta(s, a): an MLP on [(s - mean) / scale, one_hot(a) (Discrete) or a (Box)] -> one cost per step,
    and a learned scalar ``absorbing_cost`` c_abs (the absorbing state's cost per step; 0 at the start).

    forward(obs (n, *obs_shape), acts (n,) or (n, *act_shape)) -> (n,) float32 costs (numpy or tensors).
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, hidden_sizes: Sequence[int],
                 activation: str = "relu", obs_mean: np.ndarray | None = None, obs_scale: np.ndarray | None = None,
                 seed: int = 0):
        super().__init__(observation_space, obs_mean, obs_scale)
        self.action_space = action_space
        self.discrete = isinstance(action_space, spaces.Discrete)
        self.act_dim = act_dim(action_space)
        self.net = mlp(self.obs_dim + self.act_dim, list(hidden_sizes), 1, activation, seed=seed)
        # c_abs: the cost of one step in the absorbing state after a real termination (``Config.absorbing``)
        self.absorbing_cost = torch.nn.Parameter(torch.zeros(()))

    def features(self, obs: Any, acts: Any) -> torch.Tensor:
        return torch.cat([self.encode(obs), encode(acts, self.action_space)], dim=1)

    def forward(self, obs: Any, acts: Any) -> torch.Tensor:
        return self.net(self.features(obs, acts))[:, 0]


class CostReward(RewardFunction):
    """The learned reward -c_theta(s, a) / scale (next_obs is ignored).

    ``reward(obs (n, ...), acts (n, ...), next_obs (n, ...), terminated (n,) bool = None) -> (n,)`` float64
    numpy (the ``RewardVecEnvWrapper`` form, ``with_dones=True``); a single transition gives a float.
    ``scale`` is 1 unless ``Config.normalize_reward``. ``tail`` (0 unless ``Config.absorbing``): a step that
    really terminated an episode also gets -tail * c_abs / scale, the discounted cost of the absorbing state
    that follows it for ever, tail = gamma / (1 - gamma) (module docstring).
    """

    def __init__(self, cost_net: CostNet, scale: float = 1.0, tail: float = 0.0):
        self.cost_net, self.scale, self.tail = cost_net, float(scale), float(tail)
        self.observation_space, self.action_space = cost_net.observation_space, cost_net.action_space

    def batch(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray | None,
              dones: np.ndarray | None) -> torch.Tensor:
        cost = self.cost_net(obs, acts).double()
        if dones is not None and self.tail:
            cost = cost + torch.as_tensor(dones).double() * self.tail * float(self.cost_net.absorbing_cost)
        return -cost / self.scale


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
            acts = check_demos(obs, acts, obs_space, act_space)
        except ValidationError as exc:
            raise ValidationError(f"demos[{k}] do not fit the environment: {exc}") from None
        out.append((obs[:-1].astype(np.float32), acts))
    return out


# -- training -----------------------------------------------------------------------------------
def train(source: str, data: Any, config: Config | None = None, *,
          callback: Callable[[dict, Any], bool | None] | None = None) -> Result:
    """Guided cost learning on ``source`` (a gymnasium id) from the demonstrations ``data`` (a list of
    whole-episode ``Trajectory``; module docstring). callback(record, policy), called with each iteration's
    history record and the current ``SB3Policy``, may return True to stop. Torch runs on one thread meanwhile."""
    with one_thread():
        return _train(source, data, Config() if config is None else config, callback)


def _train(env_id: str, demos: Any, config: Config, callback: Any) -> Result:
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
        horizon = episode_limit(env_id)
        if horizon is None:
            raise ValidationError(f"env={env_id!r} has no max_episode_steps; expected Config.horizon (the length "
                                  "every trajectory is padded to) or absorbing=False")
    temperature = 1.0
    if config.weights == "per_step":
        temperature = float(horizon or episode_limit(env_id) or max(demo_lengths))

    mean, scale = obs_stats(demo_obs, obs_space, config.normalize_obs)
    cost_net = CostNet(obs_space, act_space, config.hidden_sizes, config.activation, mean, scale, seed=config.seed)
    optimizer = torch.optim.Adam(cost_net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)

    bc_module = None
    if config.bc_warm_start or config.demo_density == "bc":
        bc_policy = warm_start_policy(env_id, demos, config.seed)
        bc_module = bc_policy.module.eval()
    if config.bc_warm_start:
        model = ppo_from_bc(env_id, bc_policy, seed=config.seed, **config.rl_kwargs)
    else:
        model = make_model(config.algo, env_id, seed=config.seed, **config.rl_kwargs)
    reward = CostReward(cost_net, tail=model.gamma / (1.0 - model.gamma) if config.absorbing else 0.0)
    venv = make_sampler(model.get_env(), lambda o, a, n, d: reward(o, a, n, d), model, config.sample_pool)
    model.set_env(venv)
    # pool entries: [obs (T, ...), acts (T, ...), log q_gen, terminated, log q_bc]
    all_past = config.background == "all_past"
    pool: collections.deque[list] = collections.deque(maxlen=None if all_past else config.sample_pool)
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

    actor = model.actor if config.algo == "sac" else model.policy  # what log pi(a | s) reads
    snapshots: list[dict[str, torch.Tensor]] = []

    def log_pi_of_snapshot(k: int, episodes: list) -> np.ndarray:
        current = {name: value.clone() for name, value in actor.state_dict().items()}
        actor.load_state_dict(snapshots[k])
        try:
            return log_pi(np.concatenate([e[0] for e in episodes]), np.concatenate([e[1] for e in episodes]),
                          [len(e[1]) for e in episodes])
        finally:
            actor.load_state_dict(current)

    mixture = PastPolicyMixture(log_pi_of_snapshot, len(demo_list)) if all_past else None

    def batch(items: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, list[int]]:
        obs = np.concatenate([o for o, _ in items])
        acts = np.concatenate([a for _, a in items])
        return cost_net(obs, acts), [len(a) for _, a in items]

    def iteration(timesteps: int) -> None:
        n_before = len(pool)
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
        # the policy part of z (module docstring): "recent": (generating policy, current policy) for samples, the
        # current policy for demos; "all_past": every past phase's policy; demo_density="bc" mixes q_bc in 1:1
        cur_pool = log_pi(pool_obs, pool_acts, pool_lengths)
        cur_demo = log_pi(demo_obs, demo_acts, demo_lengths)
        gen_pool = np.array([p[2] for p in items])
        if all_past:
            new = items[n_before:]
            pol_pool, pol_demo = mixture.add_phase(new, gen_pool[n_before:], cur_pool, cur_demo)
            snapshots.append({name: value.clone() for name, value in actor.state_dict().items()})
        else:
            pol_pool, pol_demo = np.logaddexp(gen_pool, cur_pool) - math.log(2.0), cur_demo
        if config.demo_density == "bc":
            lq_pool = torch.as_tensor(np.stack([[p[4] for p in items], pol_pool], axis=1))
            lq_demo = torch.as_tensor(np.stack([bc_demo, pol_demo], axis=1))
        else:
            lq_pool, lq_demo = torch.as_tensor(pol_pool), torch.as_tensor(pol_demo)
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
                loss, _ = ioc_loss(costs[:n_d], costs, torch.cat([lq_demo[di], lq_pool[si]]), temperature)
            else:
                loss, _ = ioc_loss(costs[:n_d], costs[n_d:], lq_pool[si], temperature)
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
                                            torch.cat([lq_demo, lq_pool]), temperature)
            else:
                full_loss, parts = ioc_loss(demo_c.double(), pool_c.double(), lq_pool, temperature)
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
        run_user_callback(callback, record, model, config.algo, state)

    class _Loop(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_at = config.steps_per_iteration
            self.bar = timestep_bar(model, config.total_timesteps, desc="gcl", leave=False,
                                    disable=not config.progress)

        def _on_step(self) -> bool:
            if config.algo == "sac" and self.num_timesteps >= self.next_at:
                self._iterate()  # SAC's rollouts are single steps: iterate from here
            return not state["stop"]

        def _on_rollout_end(self) -> None:
            advance(self.bar, self.num_timesteps)  # every rollout, so the bar also moves between iterations
            if config.algo != "sac" and self.num_timesteps >= self.next_at:
                self._iterate()

        def _iterate(self) -> None:
            while self.next_at <= self.num_timesteps:
                self.next_at += config.steps_per_iteration
            iteration(self.num_timesteps)

    loop = _Loop()
    try:
        model.learn(config.total_timesteps, callback=loop)
    finally:
        loop.bar.close()
    cost_net.eval()
    return Result(policy=SB3Policy(model, config.algo), reward=reward, cost_net=cost_net, model=model,
                  history=history, config=config)
