"""Density-based imitation: reward the policy with the log-density of the demonstrations (the ``imitation``
library's ``DensityAlgorithm``; Gleave et al. 2022, "imitation: Clean Imitation Learning Implementations",
arXiv:2211.11972), then RL on that fixed reward.

A Gaussian kernel density estimate (Rosenblatt 1956; Parzen 1962) is fitted on the M demonstration rows x_i,

    p_hat(x) = 1/M sum_i N(x; x_i, h^2 I),
    log p_hat(x) = logsumexp_i(-||x - x_i||^2 / (2 h^2)) - log M - d/2 log(2 pi h^2),

with x = s ("state"), (s, a) ("state_action") or (s, s') ("state_state"): Box observations (and Box actions)
standardised with the demonstrations' mean / std, Discrete values one-hot. The reward is the log-density,
floored (unbounded below, it would let a few far-off states outweigh everything else),

    r(s, a, s') = max(log p_hat(x(s, a, s')), f),    f = -log M - d/2 log(2 pi h^2) - k^2 / 2,

f being what one demonstration row gives at k = ``floor_distance`` bandwidths (5: 12.5 nats below its peak).
An SB3 PPO (or SAC, Box actions) with the rl-zoo settings of ``irlhf.rl.sb3.make_model`` maximises it through
``irlhf.rl.wrappers.RewardVecEnvWrapper``. The bandwidth h is a number or a rule of thumb for unit-variance
inputs, n points in d dimensions (Scott 1992, "Multivariate Density Estimation"; Silverman 1986, "Density
Estimation for Statistics and Data Analysis"; the factors of ``scipy.stats.gaussian_kde``):

    scott: h = n^(-1 / (d + 4))          silverman: h = (n (d + 2) / 4)^(-1 / (d + 4)).

Scoring N points is vectorised (||x||^2 + ||x_i||^2 - 2 x . x_i by BLAS) and chunked: no block of more than
``Config.max_block`` squared distances exists at once; column chunks combine by a running logaddexp.

Episode ends (``absorbing=True``; the absorbing state of Kostrikov et al. 2019, as in ``irlhf.irl.adversarial``):
the reward is mostly negative, a per-step penalty that pays a policy to end episodes early. So every state
input gets a flag column (0), each real termination in the demos adds one row for the absorbing state s_a (zero
observation, flag ``ABSORBING_FLAG``, zero action; for "state_state" the terminal row's s' is s_a too), and the
policy's reward on a terminal step gets the discounted tail gamma / (1 - gamma) r(s_a). The flag keeps s_a
apart from the real states: demos that never end (CartPole's expert) give r(s_a) = f, no better than the worst
state, so ending never pays; demos that end (Acrobot's, MountainCar's) give s_a the density of their terminations,
a bonus for reaching the goal. How much: the demonstrator, once its episode ended after T steps, stays in s_a
for the H - T steps left to the time limit H, so with ``absorbing_mass="horizon"`` (default) s_a's kernel
weighs sum_i (H - T_i) rows, the demonstrations' occupancy padded to H (as ``irlhf.irl.gcl`` pads). With one
row per termination ("once", as DAC's buffer holds one absorbing transition per episode) r(s_a) sits below the
densest demonstrated states, the start states every demo shares: on Acrobot hanging at rest beside the start
then pays about as much as swinging up (docs/RESULTS.md, issue 24, measures both choices).

Per time step (``stationary=False``, ``imitation``'s is_stationary=False): one KDE per step t over the N
demonstrations' t-th rows (an ended demonstration's rows from its end to H are s_a; h by the rule for N rows),
r_t = max(log p_hat_t(x), f), and a terminal step at t earns the tail gamma V(s_a, t + 1), V(s_a, t) = sum_k
gamma^k r_{t+k}(s_a) (steps past H scored as H - 1). The stationary density is highest where every
demonstration starts; where the demonstrator must leave the start to succeed (MountainCar) lingering there
pays about as much as the demonstration, while the per-step density pays for being where the demonstrator was
at that time.

Differences from ``imitation`` 1.0.1: it refuses variable-horizon episodes instead of an absorbing state, fits
sklearn's KernelDensity with a fixed bandwidth 0.5 on inputs all standardised (one-hot columns too), and hands
the raw, unfloored log-density to its RL algorithm (no running normalisation). Here PPO's reward is divided by
SB3's running estimate of the return's std (``normalize_reward``; no shift, so the sign of ending is kept).

    result = density.train("CartPole-v1", demos, density.Config(total_timesteps=50_000))
    result.policy(obs_batch)                        # deterministic actions
    result.reward(obs, acts, next_obs)              # max(log p_hat, f), (n,)
    reward = density.fit_reward("CartPole-v1", demos)   # the reward alone, no RL
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecNormalize

from irlhf.core.config import BaseConfig, Check, Positive, PositiveInt, Seed
from irlhf.core.errors import ValidationError, shown
from irlhf.core.newton import blas_threads_limited
from irlhf.data.demos import demo_arrays, demo_transitions, obs_stats
from irlhf.data.types import Trajectory
from irlhf.envs.spaces import episode_limit, flat_dim, one_hot, resolve_spaces
from irlhf.rl.pretrain import resolve_bc_warm_start, warm_start_policy
from irlhf.rl.rewards import RewardFunction
from irlhf.rl.sb3 import (RlKwargs, SB3Policy, advance, check_algo_space, episode_stats, make_model, ppo_from_bc,
                          run_user_callback, timestep_bar)
from irlhf.rl.wrappers import RewardVecEnvWrapper

__all__ = ["BANDWIDTH_RULES", "Config", "DensityReward", "GaussianKDE", "Result", "absorbing_mass", "bandwidth_rule",
           "fit_reward", "train"]

BANDWIDTH_RULES = ("scott", "silverman")
DENSITY_TYPES = ("state", "state_action", "state_state")
#: The absorbing state's flag, in standardised units: far enough (2000 bandwidths at h = 0.5) that it and the
#: real states share no kernel mass (for any h below ~25).
ABSORBING_FLAG = 1000.0


def _is_bandwidth(value: Any) -> bool:
    if isinstance(value, str):
        return value in BANDWIDTH_RULES
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """Density-based imitation settings.

    density_type: the KDE's inputs: "state" (s), "state_action" (s, a; default, as in ``imitation``) or
      "state_state" (s, s').
    bandwidth: the kernel's standard deviation h in standardised input units: a number > 0, or "scott"
      (default) / "silverman" (module docstring; n = the KDE's rows, d = its columns). ``imitation``: 0.5.
    normalize_obs: standardise Box observations and Box actions with the demonstrations' mean / std (default
      True; one-hot columns are left 0 / 1).
    absorbing: score episode ends through an absorbing state (module docstring; default True); False = the
      plain reward on every step, right for tasks that never end early.
    absorbing_mass: the absorbing state's weight in the KDE: "horizon" (default) = H - T for each demonstration
      that terminated after T steps (needs a list of Trajectory), "once" = 1 per termination.
    horizon: H for "horizon" and for stationary=False; None (default) = the env's ``max_episode_steps`` (an
      error if it has none).
    stationary: one KDE over every demonstration row (default; ``imitation``'s is_stationary=True); False = one
      KDE per time step t over the demonstrations' t-th rows (``imitation``'s is_stationary=False; an ended
      demonstration contributes s_a from its end to H, so absorbing_mass does not apply): a reward that follows
      the demonstrations in time, for tasks whose densest states are where every demonstration starts
      (MountainCar). Needs a list of Trajectory and a horizon.
    floor_distance: k of the reward's floor f (module docstring; default 5.0); a large k all but removes it.
    max_points: fit on at most this many demonstration rows, a uniform subset drawn with ``seed``; None
      (default) = all of them (scoring costs O(rows) per step).
    max_block: most squared distances (float64) held at once while scoring (default 2**22, 32 MiB).
    algo: the RL learner, "ppo" (default; any action space) or "sac" (Box actions).
    total_timesteps: environment steps of the RL learner (default 100_000).
    rl_kwargs: SB3 arguments over ``irlhf.rl.sb3.hyperparams(env, algo)`` (n_envs included); default none.
    bc_warm_start: start PPO's actor from behaviour cloning on the demonstrations
      (``irlhf.rl.pretrain.warm_start_policy``, as GAIL's); None (default) = on for PPO, off for SAC. From a
      random start PPO never reaches MountainCar's flag and decays on CartPole (docs/RESULTS.md, issue 24).
    normalize_reward: divide the policy's reward by SB3's running estimate of the discounted return's std
      (``VecNormalize(norm_reward=True)``, clipped to +-10; no shift, so ending an episode keeps its sign);
      None (default) = on for PPO, off for SAC.
    log_every: environment steps between history records (default 2048; at the end of a rollout).
    seed: seeds the subset, SB3 and its networks (default 0).  progress: a tqdm bar over timesteps (default off).
    """

    density_type: Literal["state", "state_action", "state_state"] = "state_action"
    bandwidth: Annotated[float | str, Check(_is_bandwidth, "a number > 0, 'scott' or 'silverman'")] = "scott"
    normalize_obs: bool = True
    absorbing: bool = True
    absorbing_mass: Literal["horizon", "once"] = "horizon"
    horizon: PositiveInt | None = None
    stationary: bool = True
    floor_distance: Positive = 5.0
    max_points: PositiveInt | None = None
    max_block: PositiveInt = 2**22
    algo: Literal["ppo", "sac"] = "ppo"
    total_timesteps: PositiveInt = 100_000
    rl_kwargs: RlKwargs = dataclasses.field(default_factory=dict)
    normalize_reward: bool | None = None
    bc_warm_start: bool | None = None
    log_every: PositiveInt = 2048
    seed: Seed = 0
    progress: bool = False

    def validate(self) -> None:
        object.__setattr__(self, "bc_warm_start", resolve_bc_warm_start(self.bc_warm_start, self.algo))


# -- the density ----------------------------------------------------------------------------------------
def bandwidth_rule(n: int, d: int, rule: str = "scott") -> float:
    """Scott's n^(-1/(d+4)) or Silverman's (n (d+2) / 4)^(-1/(d+4)): h for n unit-variance points in d dims."""
    if rule == "scott":
        return float(n ** (-1.0 / (d + 4)))
    if rule == "silverman":
        return float((n * (d + 2) / 4.0) ** (-1.0 / (d + 4)))
    raise ValidationError(f"bandwidth={shown(rule)}: expected a number > 0 or one of {list(BANDWIDTH_RULES)}")


def _logsumexp_rows(a: np.ndarray) -> np.ndarray:
    """log sum_j exp(a_ij) per row of a finite (n, m) array; overwrites ``a``."""
    peak = a.max(axis=1)
    a -= peak[:, None]
    np.exp(a, out=a)
    return np.log(a.sum(axis=1)) + peak


class GaussianKDE:
    """p_hat(x) = 1/W sum_i w_i N(x; x_i, h^2 I) over ``points`` (M, d), float64, with ``weights`` w (M,) > 0
    (default all 1) and W = sum_i w_i; ``log_density`` scores (N, d). ``log_norm`` = -log W - d/2 log(2 pi h^2),
    what a row of weight 1 adds to log p_hat at its own centre."""

    def __init__(self, points: np.ndarray, bandwidth: float, weights: np.ndarray | None = None):
        self.points = np.asarray(points, dtype=np.float64)
        if self.points.ndim != 2 or len(self.points) == 0:
            raise ValidationError(f"points: shape {self.points.shape}; expected (M, d) with M >= 1")
        if not _is_bandwidth(bandwidth) or isinstance(bandwidth, str):
            raise ValidationError(f"bandwidth={shown(bandwidth)}: expected a number > 0")
        m, d = self.points.shape
        w = np.ones(m) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (m,) or not np.all(np.isfinite(w) & (w > 0)):
            raise ValidationError(f"weights: shape {w.shape}; expected ({m},) finite numbers > 0")
        self.bandwidth = float(bandwidth)
        self._sq = np.einsum("ij,ij->i", self.points, self.points)
        self._log_w = None if weights is None else np.log(w)
        self.log_norm = -math.log(w.sum()) - 0.5 * d * math.log(2.0 * math.pi * self.bandwidth ** 2)

    def log_density(self, x: np.ndarray, max_block: int = 2**22) -> np.ndarray:
        """log p_hat of each row of x (N, d) -> (N,); at most ``max_block`` distances (N x M block) at once."""
        x = np.asarray(x, dtype=np.float64)
        m, d = self.points.shape
        if x.ndim != 2 or x.shape[1] != d:
            raise ValidationError(f"x: shape {x.shape}; expected (N, {d})")
        max_block = max(1, int(max_block))
        rows, cols = max(1, max_block // m), min(m, max_block)
        scale = -0.5 / self.bandwidth ** 2
        out = np.empty(len(x))
        with blas_threads_limited(len(x)):
            for r0 in range(0, len(x), rows):
                xr = x[r0:r0 + rows]
                xsq = np.einsum("ij,ij->i", xr, xr)[:, None]
                acc = np.full(len(xr), -np.inf)
                for c0 in range(0, m, cols):
                    block = xr @ self.points[c0:c0 + cols].T  # the one (rows, cols) array, updated in place
                    block *= -2.0
                    block += xsq
                    block += self._sq[None, c0:c0 + cols]
                    np.maximum(block, 0.0, out=block)  # squared distances, rounding kept >= 0
                    block *= scale
                    if self._log_w is not None:
                        block += self._log_w[None, c0:c0 + cols]
                    acc = np.logaddexp(acc, _logsumexp_rows(block))
                out[r0:r0 + rows] = acc
        return out + self.log_norm


class TimeKDE:
    """One Gaussian KDE per time step: p_hat_t(x) = 1/N_t sum_{i valid at t} N(x; x_{t,i}, h^2 I) over ``points``
    (H, N, d) float64 with ``valid`` (H, N) bool (default all; N_t = valid[t].sum()). ``log_density(x (n, d),
    t (n,) ints in [0, H))`` -> (n,), -inf where N_t = 0. ``log_norm`` = -log N - d/2 log(2 pi h^2), a row's peak
    when all N rows are valid."""

    def __init__(self, points: np.ndarray, bandwidth: float, valid: np.ndarray | None = None):
        self.points = np.asarray(points, dtype=np.float64)
        if self.points.ndim != 3 or 0 in self.points.shape:
            raise ValidationError(f"points: shape {self.points.shape}; expected (H, N, d) with H, N, d >= 1")
        if not _is_bandwidth(bandwidth) or isinstance(bandwidth, str):
            raise ValidationError(f"bandwidth={shown(bandwidth)}: expected a number > 0")
        h, n, d = self.points.shape
        self.valid = np.ones((h, n), bool) if valid is None else np.asarray(valid, dtype=bool)
        if self.valid.shape != (h, n):
            raise ValidationError(f"valid: shape {self.valid.shape}; expected ({h}, {n})")
        self.bandwidth = float(bandwidth)
        gauss = -0.5 * d * math.log(2.0 * math.pi * self.bandwidth ** 2)
        self.log_norm = -math.log(n) + gauss
        with np.errstate(divide="ignore"):
            self._log_norm_t = -np.log(self.valid.sum(axis=1)) + gauss  # (H,), inf where no row is valid

    @property
    def horizon(self) -> int:
        return len(self.points)

    def log_density(self, x: np.ndarray, t: np.ndarray, max_block: int = 2**22) -> np.ndarray:
        x, t = np.asarray(x, dtype=np.float64), np.asarray(t)
        h, n, d = self.points.shape
        if x.ndim != 2 or x.shape[1] != d:
            raise ValidationError(f"x: shape {x.shape}; expected (n, {d})")
        if t.shape != (len(x),) or not np.issubdtype(t.dtype, np.integer) or len(t) and not 0 <= t.min() <= t.max() < h:
            raise ValidationError(f"timesteps: shape {t.shape}, dtype {t.dtype}; expected ({len(x)},) ints in [0, {h})")
        rows = max(1, int(max_block) // (n * d))
        out = np.empty(len(x))
        for r0 in range(0, len(x), rows):
            tr = t[r0:r0 + rows]
            sq = np.square(x[r0:r0 + rows, None, :] - self.points[tr]).sum(axis=2)  # (rows, N)
            a = np.where(self.valid[tr], -0.5 / self.bandwidth ** 2 * sq, -np.inf)
            peak = a.max(axis=1, keepdims=True)
            with np.errstate(invalid="ignore", divide="ignore"):  # rows with no valid point: -inf + inf
                lse = np.log(np.exp(a - np.where(np.isfinite(peak), peak, 0.0)).sum(axis=1)) + peak[:, 0]
                out[r0:r0 + rows] = np.where(np.isfinite(peak[:, 0]), lse + self._log_norm_t[tr], -np.inf)
        return out


# -- inputs and the reward ------------------------------------------------------------------------------
class DensityReward(RewardFunction):
    """r(s, a, s') = max(log p_hat(x), floor): ``reward(obs (n, ...), acts (n, ...), next_obs (n, ...)) -> (n,)``
    float64 numpy (one transition: a float). next_obs may be None unless density_type is "state_state"; dones
    ((n,) bool, as ``RewardVecEnvWrapper(..., with_dones=True)`` passes them) make a terminal row's s' the
    absorbing state when ``absorbing``. ``kde``: the ``GaussianKDE``; ``floor``: f (module docstring);
    ``absorbing_reward``: r(s_a) (None without absorbing); ``inputs``: the KDE's x of transitions."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, density_type: str, *,
                 obs_stats: tuple = (None, None), act_stats: tuple = (None, None), absorbing: bool = True,
                 max_block: int = 2**22):
        self.observation_space, self.action_space = observation_space, action_space
        self.density_type, self.absorbing, self.max_block = density_type, bool(absorbing), int(max_block)
        self.obs_mean, self.obs_scale = obs_stats
        self.act_mean, self.act_scale = act_stats
        self.kde: GaussianKDE | None = None
        self.floor = -np.inf
        self.n_demo_transitions = 0

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        if isinstance(self.observation_space, spaces.Discrete):
            x = one_hot(obs, self.observation_space)
        else:
            x = np.asarray(obs, dtype=np.float64).reshape(len(obs), -1)
            if self.obs_mean is not None:
                x = (x - self.obs_mean) / self.obs_scale
        return np.concatenate([x, np.zeros((len(x), 1))], axis=1) if self.absorbing else x

    def _acts(self, acts: np.ndarray) -> np.ndarray:
        if isinstance(self.action_space, spaces.Discrete):
            return one_hot(acts, self.action_space)
        a = np.asarray(acts, dtype=np.float64).reshape(len(acts), -1)
        return a if self.act_mean is None else (a - self.act_mean) / self.act_scale

    def absorbing_inputs(self, n: int = 1) -> np.ndarray:
        """(n, d) inputs of the absorbing state (zeros, flag ABSORBING_FLAG; zero action; s' = s_a)."""
        s_a = np.zeros((n, flat_dim(self.observation_space) + 1))
        s_a[:, -1] = ABSORBING_FLAG
        if self.density_type == "state_action":
            return np.concatenate([s_a, np.zeros((n, flat_dim(self.action_space)))], axis=1)
        return np.concatenate([s_a, s_a], axis=1) if self.density_type == "state_state" else s_a

    def inputs(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray | None,
               dones: np.ndarray | None = None) -> np.ndarray:
        """x (n, d) of n transitions for the KDE (module docstring)."""
        x = self._obs(obs)
        if self.density_type == "state_action":
            return np.concatenate([x, self._acts(acts)], axis=1)
        if self.density_type == "state":
            return x
        if next_obs is None:
            raise ValidationError("reward: next_obs=None with density_type='state_state'; expected next_obs")
        xn = self._obs(next_obs)
        if self.absorbing and dones is not None:
            xn[np.asarray(dones, dtype=bool)] = self.absorbing_inputs(1)[0, x.shape[1]:]
        return np.concatenate([x, xn], axis=1)

    def batch(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray | None,
              dones: np.ndarray | None, timesteps: np.ndarray | None = None) -> np.ndarray:
        """Rewards (n,); timesteps (n,) ints, each row's step in its episode (steps past H score as H - 1): needed
        by a per-time-step density (``Config.stationary=False``), ignored by a stationary one."""
        x = self.inputs(obs, acts, next_obs, dones)
        if not isinstance(self.kde, TimeKDE):
            return np.maximum(self.kde.log_density(x, self.max_block), self.floor)
        if timesteps is None:
            raise ValidationError("reward: timesteps=None with a per-time-step density (stationary=False); expected "
                                  "(n,) ints, each row's step in its episode")
        t = np.minimum(np.asarray(timesteps), self.kde.horizon - 1)
        return np.maximum(self.kde.log_density(x, t, self.max_block), self.floor)

    @property
    def absorbing_reward(self) -> float | None:
        """max(log p_hat(s_a), floor): the reward of every step in the absorbing state (per-time-step density: of
        the last step, H - 1); None without it."""
        if not self.absorbing:
            return None
        args = (np.array([self.kde.horizon - 1]),) if isinstance(self.kde, TimeKDE) else ()
        return max(float(self.kde.log_density(self.absorbing_inputs(1), *args)[0]), self.floor)

    def absorbing_values(self, gamma: float) -> np.ndarray | None:
        """V(s_a, t) = sum_k gamma^k r_{t+k}(s_a), staying in s_a from step t on (steps past H score as H - 1):
        (H,) for a per-time-step density, (1,) = r(s_a) / (1 - gamma) for a stationary one; None without s_a."""
        if not self.absorbing:
            return None
        if not isinstance(self.kde, TimeKDE):
            return np.array([self.absorbing_reward / (1.0 - gamma)])
        horizon = self.kde.horizon
        r = np.maximum(self.kde.log_density(self.absorbing_inputs(horizon), np.arange(horizon)), self.floor)
        v = np.empty(horizon)
        v[-1] = r[-1] / (1.0 - gamma)
        for t in range(horizon - 2, -1, -1):
            v[t] = r[t] + gamma * v[t + 1]
        return v


def fit_reward(source: Any, data: Any, config: Config | None = None) -> DensityReward:
    """Fit the log-density reward on ``data`` (a list of ``Trajectory`` or a ``Transitions``) for ``source``
    (a gymnasium id, env, or (observation_space, action_space)); no RL."""
    config = Config() if config is None else config
    if not isinstance(config, Config):
        raise ValidationError(f"config: {type(config).__name__}; expected irlhf.irl.density.Config")
    obs_space, act_space = resolve_spaces(source)
    demo = demo_transitions(data, obs_space, act_space)
    reward = DensityReward(obs_space, act_space, config.density_type, absorbing=config.absorbing,
                           max_block=config.max_block,
                           obs_stats=obs_stats(demo["obs"], obs_space, config.normalize_obs),
                           act_stats=obs_stats(demo["acts"], act_space, config.normalize_obs))
    x = reward.inputs(demo["obs"], demo["acts"], demo["next_obs"], demo["dones"])
    reward.n_demo_transitions = len(x)
    if not config.stationary:
        return _fit_per_time_step(reward, x, source, data, config)
    if config.max_points is not None and len(x) > config.max_points:
        keep = np.random.default_rng(config.seed).choice(len(x), config.max_points, replace=False)
        x = x[np.sort(keep)]
    n_done = int(demo["dones"].sum()) if config.absorbing else 0
    weights = None
    if n_done:  # s_a is one kernel: its rows would all be equal
        weights = np.append(np.ones(len(x)), absorbing_mass(source, data, config))
        x = np.concatenate([x, reward.absorbing_inputs(1)])
    h = config.bandwidth
    n_rows = len(x) - 1 + n_done if n_done else len(x)  # the rule counts s_a once per termination, as before
    reward.kde = GaussianKDE(x, bandwidth_rule(n_rows, x.shape[1], h) if isinstance(h, str) else h, weights)
    reward.floor = reward.kde.log_norm - config.floor_distance ** 2 / 2
    return reward


def _fit_per_time_step(reward: DensityReward, x: np.ndarray, source: Any, data: Any, config: Config
                       ) -> DensityReward:
    """reward.kde = a TimeKDE over x (the demonstrations' rows, in order): demonstration i's row t at [t, i];
    after a termination s_a (absorbing) or nothing, up to H; h by the rule for N (demonstrations) rows."""
    what = "stationary=False"
    trajectories, horizon = _episodes(data, what), _horizon(source, config, what)
    points = np.zeros((horizon, len(trajectories), x.shape[1]))
    valid = np.zeros((horizon, len(trajectories)), bool)
    start = 0
    for i, traj in enumerate(trajectories):
        length = len(traj)
        k = min(length, horizon)
        points[:k, i], valid[:k, i] = x[start:start + k], True
        if reward.absorbing and traj.terminal and length < horizon:
            points[length:, i], valid[length:, i] = reward.absorbing_inputs(1)[0], True
        start += length
    h = config.bandwidth
    reward.kde = TimeKDE(points, bandwidth_rule(len(trajectories), x.shape[1], h) if isinstance(h, str) else h, valid)
    reward.floor = reward.kde.log_norm - config.floor_distance ** 2 / 2
    return reward


def _episodes(data: Any, what: str) -> list[Trajectory]:
    trajectories = [data] if isinstance(data, Trajectory) else data
    if not (isinstance(trajectories, Sequence) and all(isinstance(t, Trajectory) for t in trajectories)):
        raise ValidationError(f"demos: {type(data).__name__}; {what} needs each episode's length, expected a list "
                              "of Trajectory")
    return list(trajectories)


def _horizon(source: Any, config: Config, what: str) -> int:
    horizon = config.horizon or episode_limit(source)
    if horizon is None:
        raise ValidationError(f"env={shown(source)} has no max_episode_steps; {what} expects Config.horizon (the "
                              "time limit of the demonstrations' episodes)")
    return int(horizon)


def absorbing_mass(source: Any, data: Any, config: Config) -> float:
    """The absorbing state's weight in the KDE (rows): sum of H - T over the demonstrations that terminated
    after T steps ("horizon"; at least 1 each), or the number of terminations ("once")."""
    if config.absorbing_mass == "once":
        return float(np.sum(demo_arrays(data, ("dones",))[0]))
    what = "absorbing_mass='horizon'"
    trajectories, horizon = _episodes(data, what), _horizon(source, config, what)
    return float(sum(max(horizon - len(t), 1) for t in trajectories if t.terminal and len(t) > 0))


# -- RL on the reward ----------------------------------------------------------------------------------
@dataclasses.dataclass
class Result:
    """policy: ``SB3Policy`` (deterministic actions); reward: the ``DensityReward`` (max(log p_hat, floor), s'
    non-terminal unless dones are passed); model: the SB3 model; history: one dict per ``log_every`` steps
    (timesteps, mean_log_density (the reward's mean over the steps since the last record, without the absorbing
    tail), mean_return (true return of the last 20 finished episodes, None before any), mean_length, seconds);
    n_demo_transitions; bandwidth (h); config."""

    policy: Any
    reward: DensityReward
    model: Any
    history: list[dict]
    n_demo_transitions: int
    bandwidth: float
    config: Config


def train(source: str, data: Any, config: Config | None = None, *,
          callback: Callable[[dict, Any], bool | None] | None = None) -> Result:
    """Fit the log-density reward on the demonstrations ``data`` and train an SB3 policy on ``source`` (a
    gymnasium id) to maximise it. callback(record, policy) is called with each history record; returning True
    stops training."""
    config = Config() if config is None else config
    if not isinstance(source, str):
        raise ValidationError(f"env={shown(source)}: expected a gymnasium environment id (the policy trains on it)")
    reward = fit_reward(source, data, config)
    check_algo_space(config.algo, source, reward.action_space)
    if config.bc_warm_start:
        model = ppo_from_bc(source, warm_start_policy(source, data, config.seed), seed=config.seed,
                            **config.rl_kwargs)
    else:
        model = make_model(config.algo, source, seed=config.seed, **config.rl_kwargs)
    v_abs = reward.absorbing_values(model.gamma)  # V(s_a, t): the tail a terminal step at t earns, after gamma
    sums = {"reward": 0.0, "steps": 0}

    def policy_reward(obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray, dones: np.ndarray) -> np.ndarray:
        t = venv.episode_steps
        r = reward.batch(obs, acts, next_obs, dones, timesteps=t)
        sums["reward"] += float(r.sum())
        sums["steps"] += len(r)
        return r if v_abs is None else r + model.gamma * v_abs[np.minimum(t + 1, len(v_abs) - 1)] * dones

    venv = RewardVecEnvWrapper(model.get_env(), policy_reward, with_dones=True)
    normalize = config.algo == "ppo" if config.normalize_reward is None else config.normalize_reward
    model.set_env(VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=model.gamma) if normalize else venv)
    history: list[dict] = []
    state = {"next": config.log_every, "stop": False, "t0": time.perf_counter(), "callback_seconds": 0.0}
    bar = timestep_bar(model, config.total_timesteps, desc="density", disable=not config.progress, leave=False)

    class LogCallback(BaseCallback):
        def _on_step(self) -> bool:
            return not state["stop"]

        def _on_rollout_end(self) -> None:
            advance(bar, self.num_timesteps)
            if self.num_timesteps < state["next"]:
                return
            state["next"] = (self.num_timesteps // config.log_every + 1) * config.log_every
            record = {"timesteps": int(self.num_timesteps),
                      "mean_log_density": sums["reward"] / max(sums["steps"], 1),
                      **episode_stats(self.model),
                      "seconds": time.perf_counter() - state["t0"] - state["callback_seconds"]}
            sums.update(reward=0.0, steps=0)
            history.append(record)
            bar.set_postfix(log_p=f"{record['mean_log_density']:.2f}",
                            ret="-" if record["mean_return"] is None else f"{record['mean_return']:.1f}",
                            refresh=False)
            run_user_callback(callback, record, self.model, config.algo, state)

    try:
        model.learn(config.total_timesteps, callback=LogCallback())
    finally:
        bar.close()
    return Result(policy=SB3Policy(model, config.algo), reward=reward, model=model, history=history,
                  n_demo_transitions=reward.n_demo_transitions, bandwidth=reward.kde.bandwidth, config=config)
