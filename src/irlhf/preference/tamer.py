"""TAMER (Knox & Stone 2009, "Interactively shaping agents via human reinforcement: the TAMER framework").

A person watches the agent act and now and then presses a key: +1 "good", -1 "bad" (any real number is
allowed). TAMER learns H_hat(s, a), a model of that human reinforcement, and acts greedily on it,

    a_t = argmax_a H_hat(s_t, a)            (myopic: no bootstrapping, gamma = 0).

H_hat is linear, H_hat(s, a) = w_a . phi(s): one weight vector per action over features of the observation
(``features``): normalised Gaussian RBFs on a grid over the observation box ("rbf"), tile coding ("tiles"),
or one-hot for a Discrete observation space (always).

Credit assignment. Feedback is asynchronous: an event (t_f, h) arrives at wall time t_f, some time after
the step it is about. Step k occupied the interval [t_k, t_{k+1}) (the step still on screen ends at t_f).
With the delay model "uniform" (the default, delays uniform on [delay_min, delay_max] = [0.2, 4] s as in
Knox & Stone), step k gets the credit

    c_k = integral_{t_k}^{t_{k+1}} f(t_f - t) dt,      f = the delay density,

normalised so the credited steps sum to 1 (steps outside [t_f - 4, t_f - 0.2] get 0). With "window" the
last ``window`` steps that started at or before t_f get equal credit 1 / n. The update is one
credit-weighted LMS step:

    w <- w + lr * sum_k c_k (h - H_hat(s_k, a_k)) grad_w H_hat(s_k, a_k).

The learner API is built on timestamped events, so a person (a web page sending key presses with their
times) can replace the synthetic trainer:

    agent = TamerAgent(observation_space, n_actions, config)
    a = agent.act(obs)                      # greedy on H_hat
    agent.observe(step, t, obs, a)           # step `step` started at time t
    agent.feedback(t_f, h)                   # a key press at time t_f: credit + update

A trainer is any object with ``watch(t, obs, action)`` (it sees the step starting at t) and
``poll(t) -> list[Feedback]`` (the events with time <= t, in order). :class:`SyntheticTrainer` rates the
action just taken by its true advantage (for MountainCar-v0, from a value iteration of the known dynamics,
:func:`mountaincar_q`), rates only a fraction ``p`` of the steps, flips a fraction ``noise`` of its ratings
and answers after a random delay.

    trainer = make_synthetic_trainer("MountainCar-v0", seed=0)
    result = tamer.train("MountainCar-v0", trainer, tamer.Config())
    result.policy(obs_batch)       # greedy actions on H_hat
    result.weights                 # (n_actions, n_features)
    result.history                 # one dict per episode: return, steps, feedback, reached_goal

Time is simulated: step k of an episode starts at k * step_seconds, so runs are fast and deterministic.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Annotated, Any, Literal, Protocol

import gymnasium as gym
import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from irlhf.core.config import BaseConfig, NonNegative, Positive, PositiveInt, Range, Seed, check_number
from irlhf.core.errors import ValidationError, describe
from irlhf.envs.gym import make_env
from irlhf.envs.spaces import one_hot

__all__ = ["Config", "Feedback", "Trainer", "TamerAgent", "SyntheticTrainer", "Result", "credit",
           "mountaincar_q", "make_synthetic_trainer", "train"]


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """TAMER settings.

    episodes: training episodes (>= 1).
    lr: step size of the credit-weighted LMS update (> 0). Features have norm <= 1 (RBFs sum to 1, the
      ``n_tilings`` active tiles are 1 / sqrt(n_tilings), one-hot is 1), so lr is the fraction of the
      error removed by one fully credited update.
    features: "rbf" (Gaussian RBFs, ``rbf_centers`` per dimension on a grid over the observation box,
      width ``rbf_width`` grid spacings, normalised to sum 1) or "tiles" (``n_tilings`` offset grids of
      ``tiles`` tiles per dimension). Ignored (one-hot) for a Discrete observation space.
    rbf_centers, rbf_width, tiles, n_tilings: see ``features``.
    obs_low, obs_high: the observation box the features cover (None = the space's bounds, which must then
      be finite); a list with one number per observation dimension.
    credit: "uniform" (uniform delay density on [delay_min, delay_max] seconds, integrated over each step's
      interval, normalised) or "window" (the last ``window`` steps, equal credit).
    delay_min, delay_max: the uniform delay model's support in seconds (0 <= min < max); default 0.2, 4.
    window: steps credited by the "window" model (>= 1).
    step_seconds: simulated duration of one step (> 0); step k starts at k * step_seconds.
    max_steps: cut an episode after this many steps (None = the environment's own time limit).
    seed: seeds tie-breaking among equal H_hat values (numpy Generator) and the resets (episode e resets
      with seed + e); same seed and same trainer, same run.
    progress: show a progress bar over episodes.
    """

    episodes: PositiveInt = 20
    lr: Positive = 0.2
    features: Literal["rbf", "tiles"] = "tiles"
    rbf_centers: Annotated[int, Range(2)] = 12
    rbf_width: Positive = 1.0
    tiles: PositiveInt = 8
    n_tilings: PositiveInt = 8
    obs_low: tuple[float, ...] | None = None
    obs_high: tuple[float, ...] | None = None
    credit: Literal["uniform", "window"] = "uniform"
    delay_min: NonNegative = 0.2
    delay_max: NonNegative = 4.0
    window: PositiveInt = 4
    step_seconds: Positive = 0.25
    max_steps: PositiveInt | None = None
    seed: Seed = 0
    progress: bool = False

    def validate(self) -> None:
        for name in ("obs_low", "obs_high"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
                raise ValidationError(f"{name}={value!r}: expected None or a non-empty list of numbers")
            for k, v in enumerate(value):
                check_number(f"{name}[{k}]", v)
            object.__setattr__(self, name, tuple(float(v) for v in value))
        if (self.obs_low is None) != (self.obs_high is None):
            raise ValidationError(f"obs_low={self.obs_low!r}, obs_high={self.obs_high!r}: expected both or neither")
        if self.obs_low is not None and (len(self.obs_low) != len(self.obs_high) or not all(
                lo < hi for lo, hi in zip(self.obs_low, self.obs_high))):
            raise ValidationError(f"obs_low={list(self.obs_low)}, obs_high={list(self.obs_high)}: expected "
                                  "lists of equal length with obs_low[i] < obs_high[i]")
        if self.delay_max <= self.delay_min:
            raise ValidationError(f"delay_max={self.delay_max!r}: expected > delay_min={self.delay_min!r}")


# -- credit assignment ---------------------------------------------------------------------------
def credit(starts: np.ndarray, ends: np.ndarray, t_feedback: float, *, model: str = "uniform",
           delay_min: float = 0.2, delay_max: float = 4.0, window: int = 4) -> np.ndarray:
    """Credit of each step for a feedback event at ``t_feedback``.

    Step k occupied [starts[k], ends[k]). "uniform": c_k = |[t_f - ends[k], t_f - starts[k]] n [delay_min,
    delay_max]| / (delay_max - delay_min), i.e. the probability that a uniform delay lands in the step;
    "window": 1 for the last ``window`` steps with starts <= t_f. Either way normalised to sum 1; all zeros
    when no step can have caused the event (e.g. it came earlier than delay_min after the first step)."""
    starts = np.asarray(starts, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.float64)
    if model == "uniform":
        lo = np.maximum(t_feedback - ends, delay_min)   # delays that land in step k: [t_f - end, t_f - start]
        hi = np.minimum(t_feedback - starts, delay_max)
        c = np.clip(hi - lo, 0.0, None) / (delay_max - delay_min)
    elif model == "window":
        c = np.zeros(len(starts))
        eligible = np.flatnonzero(starts <= t_feedback)
        c[eligible[-window:]] = 1.0
    else:
        raise ValidationError(f"model={model!r}: expected one of ['uniform', 'window']")
    total = c.sum()
    return c / total if total > 0 else c


# -- features ---------------------------------------------------------------------------------------
def _box(space: gym.Space, config: Config) -> tuple[np.ndarray, np.ndarray]:
    if config.obs_low is not None:
        low, high = np.asarray(config.obs_low), np.asarray(config.obs_high)
        if low.shape != space.shape:
            raise ValidationError(f"obs_low={list(config.obs_low)}: {low.size} numbers; expected one per "
                                  f"observation dimension, shape {space.shape}")
        return low, high
    low, high = np.asarray(space.low, dtype=np.float64).ravel(), np.asarray(space.high, dtype=np.float64).ravel()
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ValidationError(f"observation space {space}: unbounded; set obs_low and obs_high (one number per "
                              "dimension) to the box the features should cover")
    return low, high


class Features:
    """phi(s) for a batch of observations: (N, n_features), each row of norm <= 1."""

    def __init__(self, space: gym.Space, config: Config):
        self.kind = "onehot" if isinstance(space, gym.spaces.Discrete) else config.features
        if self.kind == "onehot":
            self.space, self.n_features = space, int(space.n)
            return
        if not isinstance(space, gym.spaces.Box):
            raise ValidationError(f"observation space {space}: unsupported; expected Box or Discrete")
        self.low, self.high = _box(space, config)
        self.dim = self.low.size
        if self.kind == "rbf":
            n = config.rbf_centers
            if n ** self.dim > 200_000:
                raise ValidationError(f"rbf_centers={n}: {n}^{self.dim} RBFs for {self.dim} dimensions; expected "
                                      "at most 200000 (lower rbf_centers or use features='tiles')")
            axes = np.meshgrid(*[np.linspace(0.0, 1.0, n)] * self.dim, indexing="ij")
            self.centers = np.stack([a.ravel() for a in axes], axis=1)       # (n^d, d) in unit box
            self.inv_two_sigma2 = 1.0 / (2.0 * (config.rbf_width / (n - 1)) ** 2)
            self.n_features = len(self.centers)
        else:
            self.tiles, self.n_tilings = config.tiles, config.n_tilings
            self.per_tiling = (self.tiles + 1) ** self.dim   # one extra tile per dim for the offsets
            # tiling j is shifted by j / n_tilings of a tile along dim i times (1, 3, 5, ...) (asymmetric offsets)
            odd = 2 * np.arange(self.dim) + 1
            self.offsets = (np.arange(self.n_tilings)[:, None] * odd[None, :] / self.n_tilings) % 1.0
            self.strides = (self.tiles + 1) ** np.arange(self.dim)
            self.n_features = self.n_tilings * self.per_tiling

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        if self.kind == "onehot":
            return one_hot(obs, self.space)
        x = (obs.reshape(len(obs), -1).astype(np.float64) - self.low) / (self.high - self.low)
        x = np.clip(x, 0.0, 1.0)
        if self.kind == "rbf":
            d2 = ((x[:, None, :] - self.centers[None]) ** 2).sum(-1)
            act = np.exp(-(d2 - d2.min(axis=1, keepdims=True)) * self.inv_two_sigma2)
            return act / act.sum(axis=1, keepdims=True)
        out = np.zeros((len(x), self.n_features))
        scaled = x[:, None, :] * self.tiles + self.offsets[None]          # (N, T, d)
        cells = np.minimum(np.floor(scaled).astype(np.int64), self.tiles)
        idx = (cells * self.strides).sum(-1) + np.arange(self.n_tilings) * self.per_tiling
        np.put_along_axis(out, idx, 1.0 / math.sqrt(self.n_tilings), axis=1)
        return out


# -- the learner ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Feedback:
    """One scalar reinforcement h given at time t (seconds)."""

    t: float
    h: float


class Trainer(Protocol):
    """Who gives the feedback: a person behind a UI or :class:`SyntheticTrainer`."""

    def watch(self, t: float, obs: np.ndarray, action: int) -> None:
        """The step that starts at time t: the agent in state obs takes action."""

    def poll(self, t: float) -> list[Feedback]:
        """Feedback events with time <= t not yet returned, oldest first."""


class TamerAgent:
    """Linear H_hat(s, a) = weights[a] . phi(s), greedy actions, credit-assigned LMS updates."""

    def __init__(self, observation_space: gym.Space, n_actions: int, config: Config = Config(),
                 rng: np.random.Generator | None = None):
        self.config = config
        self.phi = Features(observation_space, config)
        self.n_actions = int(n_actions)
        self.weights = np.zeros((self.n_actions, self.phi.n_features))
        self.rng = rng if rng is not None else np.random.default_rng(config.seed)
        self.reset()

    def reset(self) -> None:
        """Forget the steps of the last episode (credit never crosses an episode boundary)."""
        self._steps: list[int] = []
        self._starts: list[float] = []
        self._feats: list[np.ndarray] = []
        self._actions: list[int] = []

    def H(self, obs: np.ndarray) -> np.ndarray:
        """H_hat for a batch of observations: (N, n_actions)."""
        return self.phi(obs) @ self.weights.T

    def act(self, obs: np.ndarray) -> int:
        """argmax_a H_hat(obs, a); ties broken uniformly at random (seeded)."""
        h = self.H(np.asarray(obs)[None])[0]
        best = np.flatnonzero(h >= h.max() - 1e-12)
        return int(best[0] if len(best) == 1 else self.rng.choice(best))

    def policy(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions for a batch (ties -> lowest index): the ``policy(obs_batch)`` callable form."""
        return np.argmax(self.H(obs), axis=1).astype(np.int64)

    def observe(self, step: int, t: float, obs: np.ndarray, action: int) -> None:
        """Record that step ``step`` started at time ``t`` in state ``obs`` with ``action``."""
        self._steps.append(int(step))
        self._starts.append(float(t))
        self._feats.append(self.phi(np.asarray(obs)[None])[0])
        self._actions.append(int(action))
        # forget steps no later event can credit: for "uniform", those that ended over delay_max (+1 s of
        # slack for late-delivered events) before t; for "window", all but the last window + 64
        c = self.config
        while len(self._starts) > 1 and (self._starts[1] < t - c.delay_max - 1.0 if c.credit == "uniform"
                                         else len(self._starts) > c.window + 64):
            for buf in (self._steps, self._starts, self._feats, self._actions):
                buf.pop(0)

    def credit(self, t: float) -> np.ndarray:
        """Credit of each remembered step for feedback at time t (the last step ends at t)."""
        starts = np.asarray(self._starts)
        ends = np.append(starts[1:], max(t, starts[-1])) if len(starts) else starts
        c = self.config
        return credit(starts, ends, t, model=c.credit, delay_min=c.delay_min, delay_max=c.delay_max,
                      window=c.window)

    def feedback(self, t: float, h: float) -> int:
        """Apply feedback h at time t; returns how many steps got credit (0: nothing to credit)."""
        if not self._starts or h == 0:
            return 0
        c = self.credit(t)
        k = np.flatnonzero(c > 0)
        if not len(k):
            return 0
        feats = np.stack([self._feats[i] for i in k])                  # (K, F)
        acts = np.asarray([self._actions[i] for i in k])
        errors = h - np.einsum("kf,kf->k", feats, self.weights[acts])  # h - H_hat(s_k, a_k)
        np.add.at(self.weights, acts, self.config.lr * (c[k] * errors)[:, None] * feats)
        return len(k)


# -- the synthetic trainer --------------------------------------------------------------------------
class SyntheticTrainer:
    """Rates actions by the true advantage, like an attentive (not perfect) person.

    q: callable, batch of observations -> (N, n_actions) true Q*(s, .). The rating of action a in s is
    h = +1 if A*(s, a) = Q*(s, a) - max_b Q*(s, b) >= -tol (a is optimal up to tol) and -1 otherwise;
    no rating when max_b Q* - min_b Q* < tol (all actions look alike). Each step is rated with probability
    p, a rating is flipped with probability noise, and it arrives after a delay uniform on
    [delay_min, delay_max] seconds. Seeded: same seed and same steps, same events.
    """

    def __init__(self, q: Any, *, p: float = 0.5, noise: float = 0.0, delay_min: float = 0.3,
                 delay_max: float = 1.0, tol: float = 0.5, seed: int = 0):
        if not callable(q):
            raise ValidationError(f"q={describe(q)}: expected a callable, batch of observations -> Q values")
        check_number("p", p, low=0, high=1)
        check_number("noise", noise, low=0, high=1)
        check_number("delay_min", delay_min, low=0)
        check_number("delay_max", delay_max, low=0)
        if delay_max < delay_min:
            raise ValidationError(f"delay_max={delay_max!r}: expected >= delay_min={delay_min!r}")
        check_number("tol", tol, low=0)
        check_number("seed", seed, low=0, integer=True)
        self.q, self.p, self.noise, self.tol = q, float(p), float(noise), float(tol)
        self.delay_min, self.delay_max = float(delay_min), float(delay_max)
        self.rng = np.random.default_rng(seed)
        self.pending: list[Feedback] = []

    def rate(self, obs: np.ndarray, action: int) -> float:
        """The noiseless rating of (obs, action): +1, -1, or 0 (no opinion)."""
        q = np.asarray(self.q(np.asarray(obs)[None]), dtype=np.float64)[0]
        if q.max() - q.min() < self.tol:
            return 0.0
        return 1.0 if q[action] - q.max() >= -self.tol else -1.0

    def watch(self, t: float, obs: np.ndarray, action: int) -> None:
        # draw all coins every step, so the stream of randomness does not depend on the ratings
        give, flip, delay = self.rng.random(), self.rng.random(), self.rng.uniform(self.delay_min, self.delay_max)
        h = self.rate(obs, action)
        if h == 0 or give >= self.p:
            return
        if flip < self.noise:
            h = -h
        self.pending.append(Feedback(t + delay, h))
        self.pending.sort(key=lambda f: f.t)

    def poll(self, t: float) -> list[Feedback]:
        n = 0
        while n < len(self.pending) and self.pending[n].t <= t:
            n += 1
        due, self.pending = self.pending[:n], self.pending[n:]
        return due


_MC = dict(min_pos=-1.2, max_pos=0.6, max_speed=0.07, goal=0.5, force=0.001, gravity=0.0025)


def _mc_step(pos: np.ndarray, vel: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MountainCar-v0's dynamics (gymnasium), vectorised: next position, velocity, terminated."""
    vel = np.clip(vel + (action - 1) * _MC["force"] - np.cos(3 * pos) * _MC["gravity"], -_MC["max_speed"],
                  _MC["max_speed"])
    pos = np.clip(pos + vel, _MC["min_pos"], _MC["max_pos"])
    vel = np.where((pos == _MC["min_pos"]) & (vel < 0), 0.0, vel)
    return pos, vel, (pos >= _MC["goal"]) & (vel >= 0)


def _bilinear(n: int, pos: np.ndarray, vel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices (M, 4) and weights (M, 4) of the grid corners around each (pos, vel) (n x n grid)."""
    fx = (pos - _MC["min_pos"]) / (_MC["max_pos"] - _MC["min_pos"]) * (n - 1)
    fy = (vel + _MC["max_speed"]) / (2 * _MC["max_speed"]) * (n - 1)
    ix, iy = np.clip(np.floor(fx).astype(np.int64), 0, n - 2), np.clip(np.floor(fy).astype(np.int64), 0, n - 2)
    dx, dy = np.clip(fx - ix, 0, 1), np.clip(fy - iy, 0, 1)
    idx = np.stack([ix * n + iy, ix * n + iy + 1, (ix + 1) * n + iy, (ix + 1) * n + iy + 1], axis=1)
    w = np.stack([(1 - dx) * (1 - dy), (1 - dx) * dy, dx * (1 - dy), dx * dy], axis=1)
    return idx, w


@functools.lru_cache(maxsize=4)
def _mountaincar_values(n: int) -> np.ndarray:
    """V*(grid point) of MountainCar-v0 (reward -1 per step, undiscounted): value iteration on an n x n
    (position x velocity) grid; next states off the grid are interpolated bilinearly between the 4 corners
    (Munos & Moore's barycentric discretisation: a stochastic tabular MDP with 4 successors per row)."""
    pos, vel = np.meshgrid(np.linspace(_MC["min_pos"], _MC["max_pos"], n),
                           np.linspace(-_MC["max_speed"], _MC["max_speed"], n), indexing="ij")
    pos, vel = pos.ravel(), vel.ravel()
    S = n * n
    P, done = [], []
    for a in range(3):
        p2, v2, d = _mc_step(pos, vel, np.full(S, a))
        idx, w = _bilinear(n, p2, v2)
        P.append(sp.csr_matrix((w.ravel(), idx.ravel(), np.arange(0, 4 * S + 1, 4)), shape=(S, S)))
        done.append(d)
    V = np.zeros(S)
    for _ in range(5000):
        Q = np.stack([-1.0 + np.where(done[a], 0.0, P[a] @ V) for a in range(3)], axis=1)
        V_new = Q.max(axis=1)
        if np.max(np.abs(V_new - V)) < 1e-6:
            V = V_new
            break
        V = V_new
    return V


def mountaincar_q(grid: int = 150) -> Any:
    """Q*(s, a) of MountainCar-v0 for a batch of observations: (N, 3), -(steps to the goal).

    One exact step of the known dynamics from s, then V* of the next state interpolated bilinearly on the
    ``grid`` x ``grid`` value-iteration solution (:func:`_mountaincar_values`); 0 future cost at the goal."""
    check_number("grid", grid, low=10, integer=True)
    V = _mountaincar_values(int(grid))

    def q(obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64).reshape(-1, 2)
        out = np.empty((len(obs), 3))
        for a in range(3):
            p2, v2, d = _mc_step(obs[:, 0], obs[:, 1], np.full(len(obs), a))
            idx, w = _bilinear(int(grid), p2, v2)
            out[:, a] = -1.0 + np.where(d, 0.0, (V[idx] * w).sum(1))
        return out

    return q


SYNTHETIC_ENVS = ("MountainCar-v0",)


def make_synthetic_trainer(env_id: str, *, p: float = 0.5, noise: float = 0.0, delay_min: float = 0.3,
                           delay_max: float = 1.0, tol: float = 0.5, grid: int = 150,
                           seed: int = 0) -> SyntheticTrainer:
    """A :class:`SyntheticTrainer` for ``env_id`` (one of SYNTHETIC_ENVS) with its true Q*."""
    if env_id not in SYNTHETIC_ENVS:
        raise ValidationError(f"env={env_id!r}: no synthetic trainer (needs the true Q*); expected one of "
                              f"{list(SYNTHETIC_ENVS)}")
    return SyntheticTrainer(mountaincar_q(grid), p=p, noise=noise, delay_min=delay_min, delay_max=delay_max,
                            tol=tol, seed=seed)


# -- training loop ----------------------------------------------------------------------------------
@dataclasses.dataclass
class Result:
    """policy: greedy actions on H_hat for a batch of observations (ties -> lowest index);
    weights: H_hat's weights (n_actions, n_features); agent: the :class:`TamerAgent` (H, features);
    history: one dict per episode (episode, return, steps, feedback (events received), credited
    (credited steps, summed over events), reached_goal (terminated, not truncated), seconds)."""

    policy: Any
    weights: np.ndarray
    agent: TamerAgent
    history: list[dict]
    config: Config


def train(source: str, trainer: Trainer, config: Config | None = None) -> Result:
    """Run TAMER for ``config.episodes`` episodes of the gymnasium id ``source`` (Discrete actions) with
    ``trainer``, who gives the feedback (this learner's data)."""
    config = Config() if config is None else config
    if not isinstance(config, Config):
        raise ValidationError(f"config: {type(config).__name__}; expected irlhf.preference.tamer.Config")
    if not (callable(getattr(trainer, "watch", None)) and callable(getattr(trainer, "poll", None))):
        raise ValidationError(f"trainer={describe(trainer)}: expected an object with watch(t, obs, action) and "
                              "poll(t) -> list[Feedback]")
    env = make_env(source)
    if not isinstance(env.action_space, gym.spaces.Discrete):
        env.close()
        raise ValidationError(f"action space {env.action_space}: unsupported; TAMER needs Discrete actions")
    start = int(env.action_space.start)
    try:
        agent = TamerAgent(env.observation_space, int(env.action_space.n), config)
    except ValidationError:
        env.close()
        raise
    history: list[dict] = []
    dt = config.step_seconds
    t0 = time.perf_counter()
    bar = tqdm(total=config.episodes, desc="tamer", disable=not config.progress, leave=False)

    def deliver(t: float) -> tuple[int, int]:
        events = trainer.poll(t)
        credited = sum(agent.feedback(e.t, e.h) for e in events)
        return len(events), credited

    try:
        for e in range(config.episodes):
            obs, _ = env.reset(seed=config.seed + e)
            agent.reset()
            total, steps, n_feedback, n_credited = 0.0, 0, 0, 0
            terminated = truncated = False
            while not (terminated or truncated):
                t = steps * dt
                got, cred = deliver(t)            # key presses that arrived before this step starts
                n_feedback, n_credited = n_feedback + got, n_credited + cred
                action = agent.act(obs)
                agent.observe(steps, t, obs, action)
                trainer.watch(t, obs, action)
                obs, reward, terminated, truncated, _ = env.step(action + start)
                total += float(reward)
                steps += 1
                if config.max_steps is not None and steps >= config.max_steps:
                    truncated = True
            # the person keeps pressing after the episode ends: late events still credit its last steps
            got, cred = deliver(math.inf)
            n_feedback, n_credited = n_feedback + got, n_credited + cred
            history.append({"episode": e, "return": total, "steps": steps, "feedback": n_feedback,
                            "credited": n_credited, "reached_goal": bool(terminated),
                            "seconds": time.perf_counter() - t0})
            bar.update(1)
            bar.set_postfix(ret=f"{total:.0f}", fb=n_feedback, refresh=False)
    finally:
        bar.close()
        env.close()

    def policy(obs: np.ndarray) -> np.ndarray:
        return agent.policy(obs) + start

    return Result(policy=policy, weights=agent.weights, agent=agent, history=history, config=config)
