"""T-REX (Brown, Goo, Nagarajan & Niekum 2019, "Extrapolating Beyond Suboptimal Demonstrations via Inverse
Reinforcement Learning from Observations").

Given trajectories ranked by quality (a larger rank is better: tau_i < tau_j when rank_i < rank_j; ties are
allowed, at least two distinct ranks are needed), learn a state reward r_theta(s) (an MLP over observations;
actions are never used) whose snippet sums explain the ranking. For a random pair of snippets, one from a
trajectory i and one from a better-ranked j, of one length L,

    P(j > i) = exp sum_{s in j} r(s) / (exp sum_{s in i} r(s) + exp sum_{s in j} r(s)),
    L(theta) = -E log P(j > i)                    (``irlhf.nn.losses.bradley_terry_loss``, label 1),

minimised with Adam. Snippets (``sample_snippet_pairs``) follow the paper: L drawn uniformly from
[snippet_min, snippet_max] and clipped to the shorter trajectory of the pair; the worse snippet starts
uniformly where it fits in both, the better one no earlier than it (later states of a better trajectory
should look better). States are the observations a step leads to, obs[1:]: the reward of step t is
r(s_{t+1}), which is what the RL agent is then paid. ``ensemble_size`` > 1 fits several networks, each on its
own pairs, and averages them.

Then RL: an SB3 model (``irlhf.rl.sb3.make_model``, rl-zoo settings) trains on the learned reward in place of
the environment's (``irlhf.rl.wrappers.RewardVecEnvWrapper``; the Monitor still logs true returns). The agent
is paid ``reward_transform`` of r: "standard" ((r - mean) / std over the ranked states; default), "sigmoid"
(the authors' Atari code does this; positive, so without the absorbing state below a live step never looks
worse than an ended episode; with it, the squashing leaves ending too small a margin: D-REX on Acrobot stays
at -500 with it and reaches the expert with "standard" or "none", docs/RESULTS.md) or "none";
PPO's rewards are further scaled by a running return std (``VecNormalize``) unless ``normalize_reward=False``.

Episode ends (``absorbing=True``; the absorbing state of Kostrikov et al. 2019): the snippet sums above cannot
tell a short trajectory from a long one, and a positive transform pays the agent to never end, which loses
every task where ending is the goal (Acrobot, MountainCar: D-REX sat at -500 on Acrobot). So a ranked trajectory
that terminated after T steps continues, for the learning, in an absorbing state s_a to the time limit H
(``horizon``, default the env's ``max_episode_steps``), every step of it paid r_abs, each member's reward of
a flagged absorbing input (``StateRewardNet.absorbing_input``): snippets may reach into those steps, so the ranking
decides whether ending is better or worse
than the states before it. The agent's terminal step is then paid the discounted tail
gamma / (1 - gamma) transform(r_abs) on top of its own reward.

    ranked = read_ranked({0: worst_demos, 1: better_demos, 2: best_demos})   # or [(traj, rank), ...]
    result = trex.train("CartPole-v1", ranked, trex.Config(total_timesteps=50_000))
    result.reward(obs, acts, next_obs)           # raw r_theta(next_obs), (n,)
    predicted_returns(result.reward, held_out)   # correlate with true returns (the paper's headline)

D-REX, which ranks its own noisy behaviour-cloning rollouts and then runs this, is ``irlhf.irl.drex``.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecNormalize
from torch import nn
from tqdm.auto import tqdm

from irlhf.core.config import (BaseConfig, NonNegative, NonNegativeInt, OneOf, Positive, PositiveInt, Range, Seed,
                               Widths)
from irlhf.core.errors import ValidationError, shown
from irlhf.data import load_demos, save_trajectories
from irlhf.data.demos import obs_stats
from irlhf.data.types import Trajectory
from irlhf.envs.spaces import episode_limit
from irlhf.nn.encoders import ObsEncoder
from irlhf.nn.losses import bradley_terry_loss
from irlhf.nn.mlp import ACTIVATIONS, mlp
from irlhf.rl.rewards import RewardFunction
from irlhf.rl.sb3 import (RlKwargs, SB3Policy, advance, env_spaces, episode_stats, hyperparams, make_model,
                          ppo_from_bc, timestep_bar)
from irlhf.rl.wrappers import RewardVecEnvWrapper

__all__ = ["Config", "RankedDemos", "Result", "RewardFit", "SnippetPairs", "StateReward", "StateRewardNet",
           "fit_reward", "load_ranked", "predicted_returns", "read_ranked", "return_correlation",
           "sample_snippet_pairs", "save_ranked", "snippet_loss", "train"]


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """T-REX settings (module docstring).

    Reward learning. n_pairs [3000]: snippet pairs per ensemble member (the paper: 6000 on Atari).
    snippet_min / snippet_max [20 / 50]: the range of snippet lengths, clipped per pair to its shorter
    trajectory. epochs [5]: passes over the pairs. batch_size [64]: pairs per Adam step. lr [1e-3],
    weight_decay [0]: Adam's. hidden_sizes [(64, 64)] / activation ["relu"]: the reward MLP.
    ensemble_size [1]: networks averaged, each on its own pairs. validation_fraction [0.1]: pairs held out for
    the per-epoch val_loss / val_accuracy. normalize_obs [True]: standardise Box observations with the ranked
    states' mean / std.
    absorbing [True]: pad terminated trajectories with s_a to the horizon, learn r_abs, pay the agent's terminal
    steps its tail (module docstring); False = the paper's snippets of real states only. horizon [None]: H, None
    = the env's ``max_episode_steps`` (no padding where it has none).
    RL. reward_transform ["standard"]: what the agent is paid, "sigmoid", "standard" or "none" of r (module
    docstring). algo ["ppo"]: "ppo", "dqn" (Discrete actions) or "sac" (Box actions). total_timesteps [None]:
    environment steps, None = the rl-zoo budget (``irlhf.rl.sb3.hyperparams``), 0 = fit the reward only.
    rl_kwargs [{}]: SB3 arguments over the zoo's. normalize_reward [None]: ``VecNormalize(norm_reward=True)``
    over the learned reward; None = on for PPO, off otherwise. log_every [1]: rollouts between RL records.
    seed [0]: pairs, networks, minibatches and SB3. progress [False]: progress bars.
    """

    n_pairs: PositiveInt = 3000
    snippet_min: PositiveInt = 20
    snippet_max: PositiveInt = 50
    epochs: PositiveInt = 5
    batch_size: PositiveInt = 64
    lr: Positive = 1e-3
    weight_decay: NonNegative = 0.0
    hidden_sizes: Widths = (64, 64)
    activation: Annotated[str, OneOf(ACTIVATIONS)] = "relu"
    ensemble_size: PositiveInt = 1
    validation_fraction: Annotated[float, Range(0, 1, high_open=True)] = 0.1
    normalize_obs: bool = True
    absorbing: bool = True
    horizon: PositiveInt | None = None
    reward_transform: Literal["sigmoid", "standard", "none"] = "standard"
    algo: Literal["ppo", "dqn", "sac"] = "ppo"
    total_timesteps: NonNegativeInt | None = None
    rl_kwargs: RlKwargs = dataclasses.field(default_factory=dict)
    normalize_reward: bool | None = None
    log_every: PositiveInt = 1
    seed: Seed = 0
    progress: bool = False

    def validate(self) -> None:
        if self.snippet_min > self.snippet_max:
            raise ValidationError(f"snippet_min={self.snippet_min}: larger than snippet_max={self.snippet_max}; "
                                  "expected snippet_min <= snippet_max")


# -- ranked data ----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class RankedDemos:
    """Trajectories and their ranks (larger = better), sorted by rank. ``summary``: which ranks were read,
    e.g. "ranks read: 0 (3 trajectories), 1 (2), 2 (2)"."""

    trajectories: tuple[Trajectory, ...]
    ranks: np.ndarray

    @property
    def summary(self) -> str:
        values, counts = np.unique(self.ranks, return_counts=True)
        return "ranks read: " + ", ".join(f"{rank_text(v)} ({c}{' trajectories' if k == 0 else ''})"
                                          for k, (v, c) in enumerate(zip(values, counts)))

    def by_rank(self) -> dict[Any, list[Trajectory]]:
        out: dict[Any, list[Trajectory]] = {}
        for traj, rank in zip(self.trajectories, self.ranks.tolist()):
            out.setdefault(rank, []).append(traj)
        return out


def rank_text(rank: Any) -> str:
    """A rank as written: 2 (also for 2.0 in a float array), 0.5."""
    value = float(rank)
    return str(int(value)) if value.is_integer() else repr(value)


def read_ranked(data: Any) -> RankedDemos:
    """Ranked trajectories from a ``RankedDemos``, a list of (Trajectory, rank) pairs, or a mapping rank ->
    list of Trajectory (or one Trajectory). Ranks are numbers, larger = better. Checks: every item a
    Trajectory with at least one step, at least 2 trajectories, at least 2 distinct ranks."""
    if isinstance(data, RankedDemos):
        pairs = list(zip(data.trajectories, data.ranks.tolist()))
    elif isinstance(data, Mapping):
        pairs = [(t, rank) for rank, trajs in data.items()
                 for t in ([trajs] if isinstance(trajs, Trajectory) else list(trajs))]
    elif isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        pairs = []
        for k, item in enumerate(data):
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise ValidationError(f"data[{k}]: {type(item).__name__}; expected a (Trajectory, rank) pair")
            pairs.append((item[0], item[1]))
    else:
        raise ValidationError(f"data: {type(data).__name__}; expected a list of (Trajectory, rank) pairs or a "
                              "mapping rank -> list of Trajectory")
    for k, (traj, rank) in enumerate(pairs):
        if not isinstance(traj, Trajectory):
            raise ValidationError(f"ranked trajectory {k}: {type(traj).__name__}; expected a Trajectory")
        if len(traj) == 0:
            raise ValidationError(f"ranked trajectory {k} (rank {shown(rank)}): no steps; expected at least one")
        if isinstance(rank, bool) or not isinstance(rank, (int, float, np.integer, np.floating)) \
                or not np.isfinite(rank):
            raise ValidationError(f"rank={shown(rank)} of trajectory {k}: expected a finite number")
    if len(pairs) < 2:
        raise ValidationError(f"data: {len(pairs)} trajectory; T-REX needs at least 2 ranked trajectories "
                              "of at least 2 distinct ranks")
    ranks = np.array([r for _, r in pairs])
    if len(np.unique(ranks)) < 2:
        raise ValidationError(f"ranks: all {len(pairs)} trajectories have rank {shown(ranks[0])} (ties only); "
                              "expected at least two distinct ranks")
    order = np.argsort(ranks, kind="stable")
    ranks = ranks[order]
    ranks.flags.writeable = False
    return RankedDemos(tuple(pairs[i][0] for i in order), ranks)


def save_ranked(directory: str | Path, data: Any) -> Path:
    """Write ranked trajectories as ``directory/rank_<r>/trajectories.npz``, one folder per rank."""
    ranked = read_ranked(data)
    root = Path(directory)
    for rank, trajs in ranked.by_rank().items():
        folder = root / f"rank_{rank_text(rank)}"
        folder.mkdir(parents=True, exist_ok=True)
        save_trajectories(folder / "trajectories.npz", trajs)
    return root


def load_ranked(path: str | Path, ranks: Sequence[float] | None = None) -> RankedDemos:
    """Ranked trajectories from a directory with one folder per rank (``rank_0/*.npz``, ``rank_1/``, ...: every
    demonstration file ``irlhf.data.load_demos`` reads) or from one demonstrations file with ``ranks`` (one
    number per trajectory; None = the file's own "ranks" array, for an .npz that holds one)."""
    source = Path(path)
    if source.is_dir():
        folders = [p for p in sorted(source.iterdir()) if p.is_dir() and p.name.startswith("rank_")]
        if not folders:
            raise ValidationError(f"path={str(source)!r}: no rank_<number> folders; expected dir/rank_0/*.npz ...")
        data: dict[float, list[Trajectory]] = {}
        for folder in folders:
            try:
                rank = float(folder.name[5:])
            except ValueError:
                raise ValidationError(f"folder {folder.name!r}: expected rank_<number>") from None
            files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
            data[int(rank) if rank.is_integer() else rank] = [t for f in files for t in load_demos(f)]
        return read_ranked(data)
    trajectories = load_demos(source)
    if ranks is None:
        held = np.load(source, allow_pickle=False) if source.suffix == ".npz" else None
        if held is None or "ranks" not in held.files:
            raise ValidationError(f"path={str(source)!r}: no 'ranks' array in it; expected ranks=[one per trajectory]")
        with held:
            ranks = held["ranks"].tolist()
    if len(ranks) != len(trajectories):
        raise ValidationError(f"ranks: {len(ranks)} values for {len(trajectories)} trajectories; expected one each")
    return read_ranked(list(zip(trajectories, ranks)))


# -- snippet pairs ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class SnippetPairs:
    """N snippet pairs (all (N,) int64): trajectory indices ``worse`` / ``better`` (rank[worse] < rank[better]),
    start states ``worse_start`` <= ``better_start`` and the common snippet ``length``."""

    worse: np.ndarray
    better: np.ndarray
    worse_start: np.ndarray
    better_start: np.ndarray
    length: np.ndarray

    def __len__(self) -> int:
        return len(self.length)

    def __getitem__(self, index: Any) -> "SnippetPairs":
        return SnippetPairs(*(getattr(self, f.name)[index] for f in dataclasses.fields(self)))


def sample_snippet_pairs(lengths: Sequence[int], ranks: Sequence[float], n: int, snippet_min: int,
                         snippet_max: int, seed: Any = 0) -> SnippetPairs:
    """``n`` pairs over trajectories of ``lengths`` states (module docstring): a pair of trajectories with
    different ranks uniformly, L ~ U{snippet_min..snippet_max} clipped to the shorter one, the worse snippet's
    start uniform in [0, min_len - L], the better one's uniform in [worse_start, len_better - L]."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    lengths, ranks = np.asarray(lengths, dtype=np.int64), np.asarray(ranks)
    worse_all, better_all = np.nonzero(ranks[:, None] < ranks[None, :])
    pick = rng.integers(0, len(worse_all), n)
    worse, better = worse_all[pick], better_all[pick]
    shortest = np.minimum(lengths[worse], lengths[better])
    length = np.minimum(rng.integers(snippet_min, snippet_max + 1, n), shortest)
    worse_start = (rng.random(n) * (shortest - length + 1)).astype(np.int64)
    better_start = worse_start + (rng.random(n) * (lengths[better] - length - worse_start + 1)).astype(np.int64)
    return SnippetPairs(worse, better, worse_start, better_start, length)


def snippet_sums(scores: Callable[[torch.Tensor], torch.Tensor], states: torch.Tensor, offsets: np.ndarray,
                 trajectory: np.ndarray, start: np.ndarray, length: np.ndarray, real_lengths: np.ndarray | None = None,
                 absorbing: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) sums of ``scores`` (encoded states (k, d) -> (k,)) over B snippets; ``states`` holds every
    trajectory's states back to back, trajectory t's from row offsets[t]. With ``real_lengths`` (states per
    trajectory), positions at or past a trajectory's real length are absorbing steps, each adding the scalar
    ``absorbing`` (r_abs)."""
    segment = np.repeat(np.arange(len(length)), length)
    position = np.repeat(start - np.cumsum(length) + length, length) + np.arange(length.sum())
    real = slice(None) if real_lengths is None else position < real_lengths[trajectory][segment]
    rows = offsets[trajectory][segment][real] + position[real]
    r = scores(states[torch.as_tensor(rows)])
    sums = torch.zeros(len(length), dtype=r.dtype).index_add_(0, torch.as_tensor(segment[real]), r)
    if real_lengths is None:
        return sums
    return sums + absorbing * torch.as_tensor(length - np.bincount(segment[real], minlength=len(length)), dtype=r.dtype)


def snippet_loss(returns_worse: torch.Tensor, returns_better: torch.Tensor) -> torch.Tensor:
    """Mean -log P(better > worse) = -log sigma(R_better - R_worse) over (B,) snippet returns."""
    return bradley_terry_loss(returns_better, returns_worse, 1.0)


# -- the reward -------------------------------------------------------------------------------------------
class StateRewardNet(ObsEncoder):
    """r_theta(s): observations (N, *obs_shape) -> (N,), the mean of ``ensemble_size`` MLPs over the encoded
    observation (``irlhf.nn.encoders.ObsEncoder``) and an absorbing flag column (0); ``members(x)`` gives each
    member's (M, N) on encoded x. The absorbing state s_a is zeros with the flag 1 (``absorbing_input``), as
    in DAC's discriminator: r_abs = ``absorbing_rewards()`` (M,), trained only by snippets that reach it."""

    def __init__(self, observation_space: spaces.Space, hidden_sizes: Sequence[int], activation: str,
                 ensemble_size: int = 1, obs_mean: np.ndarray | None = None, obs_scale: np.ndarray | None = None,
                 seed: int = 0):
        super().__init__(observation_space, obs_mean, obs_scale)
        self.nets = nn.ModuleList(mlp(self.obs_dim + 1, tuple(hidden_sizes), 1, activation, seed=seed + m)
                                  for m in range(ensemble_size))
        self.register_buffer("absorbing_input", torch.cat([torch.zeros(1, self.obs_dim), torch.ones(1, 1)], 1),
                             persistent=False)

    def encode(self, obs: Any) -> torch.Tensor:
        x = super().encode(obs)
        return torch.cat([x, torch.zeros(len(x), 1, dtype=x.dtype)], dim=1)

    def absorbing_rewards(self) -> torch.Tensor:
        return self.members(self.absorbing_input)[:, 0]

    def members(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([net(x)[:, 0] for net in self.nets])

    def forward(self, obs: Any) -> torch.Tensor:
        return self.members(self.encode(obs)).mean(dim=0)


class StateReward(RewardFunction):
    """``reward(obs, acts, next_obs) -> (n,)``: transform(r_theta(next_obs)) (of obs when next_obs is None);
    transform "none", "sigmoid" or "standard" ((r - mean) / std). Usable by ``RewardVecEnvWrapper``; with
    its dones (``with_dones=True``) a terminal step adds ``tail`` * transform(r_abs) (tail = gamma / (1 - gamma)
    when the absorbing state was learned, else 0). ``horizon``: H the ranked trajectories were padded to (None
    = not padded); ``predicted_returns`` pads terminated trajectories with it."""

    def __init__(self, net: StateRewardNet, action_space: spaces.Space, transform: str = "none",
                 mean: float = 0.0, std: float = 1.0, tail: float = 0.0):
        self.net, self.transform, self.mean, self.std = net, transform, float(mean), float(std)
        self.tail = float(tail)
        self.horizon: int | None = None
        self.observation_space, self.action_space = net.observation_space, action_space

    def _transformed(self, r: torch.Tensor) -> torch.Tensor:
        if self.transform == "sigmoid":
            return torch.sigmoid(r)
        if self.transform == "standard":
            return (r - self.mean) / self.std
        return r

    @property
    def absorbing_reward(self) -> float:
        """transform(r_abs): what each step in the absorbing state pays."""
        with torch.no_grad():
            return float(self._transformed(self.net.absorbing_rewards().mean()))

    def batch(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray | None,
              dones: np.ndarray | None) -> torch.Tensor:
        self.net.eval()
        r = self._transformed(self.net(obs if next_obs is None else next_obs))
        ended = None if dones is None else np.asarray(dones, dtype=bool)
        if self.tail and ended is not None and ended.any():  # r_abs costs a forward pass: only on episode ends
            r = r + self.tail * self.absorbing_reward * torch.as_tensor(ended, dtype=r.dtype)
        return r


def predicted_returns(reward: Callable[..., Any], trajectories: Sequence[Trajectory]) -> np.ndarray:
    """(n,) learned returns sum_t reward(s_t, a_t, s_{t+1}) of each trajectory (any reward callable); a
    ``StateReward`` learned with the absorbing state adds (H - T) transform(r_abs) for a terminated trajectory
    of T steps, as its snippets were scored."""
    horizon = getattr(reward, "horizon", None)
    pad = [max(horizon - len(t), 0) if horizon and t.terminal else 0 for t in trajectories]
    r_abs = reward.absorbing_reward if any(pad) else 0.0
    return np.array([float(np.sum(reward(t.obs[:-1], t.acts, t.obs[1:]))) + k * r_abs
                     for t, k in zip(trajectories, pad)])


def return_correlation(reward: Callable[..., Any], trajectories: Sequence[Trajectory]) -> dict[str, float]:
    """Pearson and Spearman correlation of learned with true returns (``rews`` needed) over trajectories."""
    from scipy import stats  # why: slow to import; only evaluation needs it

    if len(trajectories) < 2 or any(t.rews is None for t in trajectories):
        raise ValidationError("trajectories: expected at least 2, each with true rewards (rews)")
    learned = predicted_returns(reward, trajectories)
    true = np.array([float(np.sum(t.rews)) for t in trajectories])
    return {"pearson": float(stats.pearsonr(learned, true)[0]), "spearman": float(stats.spearmanr(learned, true)[0])}


def ranking_summary(result: Any) -> dict[str, Any]:
    """What a T-REX / D-REX ``result`` learned from: {"ranks": {rank: trajectories}} and, where every ranked
    trajectory has rewards and their true returns vary, the correlation of learned and true returns over them
    ("ranked_return_pearson", "ranked_return_spearman"; None where undefined: a constant learned return)."""
    ranked = result.ranked
    values, counts = np.unique(ranked.ranks, return_counts=True)
    out: dict[str, Any] = {"ranks": {rank_text(v): int(c) for v, c in zip(values, counts)}}
    trajectories = ranked.trajectories
    if any(t.rews is None for t in trajectories) or len({float(np.sum(t.rews)) for t in trajectories}) < 2:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant learned return: scipy warns, the correlation is nan
        correlation = return_correlation(result.reward, trajectories)
    for key, value in correlation.items():
        out[f"ranked_return_{key}"] = value if np.isfinite(value) else None
    return out


# -- fitting -------------------------------------------------------------------------------------------
@dataclasses.dataclass
class RewardFit:
    """net: the fitted ``StateRewardNet``; history: one record per epoch (phase "reward", epoch, loss,
    accuracy (share of training pairs with P(better > worse) > 1/2, during the epoch), val_loss, val_accuracy
    (None without held-out pairs), seconds); state_mean / state_std: of r over the ranked states (the
    "standard" transform); n_pairs per member; padded: whether snippets reached into the absorbing state (so
    the net's r_abs was learned)."""

    net: StateRewardNet
    history: list[dict]
    state_mean: float
    state_std: float
    n_pairs: int
    padded: bool = False


def fit_reward(data: Any, config: Config | None = None, observation_space: spaces.Space | None = None, *,
               horizon: int | None = None, callback: Callable[[dict, Any], bool | None] | None = None) -> RewardFit:
    """Fit r_theta to ranked trajectories (``read_ranked`` input) by the snippet Bradley-Terry loss.
    observation_space: the environment's (None = an unbounded Box of the trajectories' shape). horizon: H to
    pad terminated trajectories to with the absorbing state when ``config.absorbing`` (None = no padding)."""
    config = Config() if config is None else config
    ranked = read_ranked(data)
    trajs = ranked.trajectories
    if observation_space is None:  # an unbounded Box of the trajectories' observation shape
        observation_space = spaces.Box(-np.inf, np.inf, trajs[0].obs.shape[1:], np.float64)
    states_np = np.concatenate([t.obs[1:] for t in trajs])
    lengths = np.array([len(t) for t in trajs])
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    padded = lengths
    if config.absorbing and horizon is not None:
        padded = np.array([max(horizon, n) if t.terminal else n for t, n in zip(trajs, lengths)])
    real_lengths = None if np.array_equal(padded, lengths) else lengths
    mean, scale = obs_stats(states_np, observation_space, config.normalize_obs)
    net = StateRewardNet(observation_space, config.hidden_sizes, config.activation, config.ensemble_size,
                         mean, scale, seed=config.seed)
    with torch.no_grad():
        states = net.encode(states_np)  # encoded once; training feeds the members directly
    n_val = min(int(round(config.validation_fraction * config.n_pairs)), config.n_pairs - 1)
    pairs = [sample_snippet_pairs(padded, ranked.ranks, config.n_pairs, config.snippet_min, config.snippet_max,
                                  np.random.default_rng([config.seed, m])) for m in range(config.ensemble_size)]
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)

    def member_returns(m: int, p: SnippetPairs) -> tuple[torch.Tensor, torch.Tensor]:
        def score(x: torch.Tensor) -> torch.Tensor:
            return net.nets[m](x)[:, 0]
        both = snippet_sums(score, states, offsets, np.concatenate([p.worse, p.better]),
                            np.concatenate([p.worse_start, p.better_start]), np.concatenate([p.length, p.length]),
                            real_lengths, net.nets[m](net.absorbing_input)[0, 0])
        return both[:len(p)], both[len(p):]

    history: list[dict] = []
    n_train = config.n_pairs - n_val
    t0 = time.perf_counter()
    bar = tqdm(total=config.epochs, desc="t-rex reward", disable=not config.progress, leave=False)
    for epoch in range(1, config.epochs + 1):
        net.train()
        order = torch.randperm(n_train, generator=gen).numpy()
        total, correct = torch.zeros(()), torch.zeros(())
        for start in range(0, n_train, config.batch_size):
            idx = order[start:start + config.batch_size]
            loss = torch.zeros(())
            for m, p in enumerate(pairs):
                rw, rb = member_returns(m, p[n_val:][idx])
                loss = loss + snippet_loss(rw, rb)
                correct += (rb > rw).sum().detach()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(idx)
        record: dict[str, Any] = {"phase": "reward", "epoch": epoch,
                                  "loss": float(total) / (n_train * config.ensemble_size),
                                  "accuracy": float(correct) / (n_train * config.ensemble_size),
                                  "val_loss": None, "val_accuracy": None}
        if n_val:
            net.eval()
            with torch.no_grad():
                parts = [member_returns(m, p[:n_val]) for m, p in enumerate(pairs)]
            record["val_loss"] = float(np.mean([float(snippet_loss(rw, rb)) for rw, rb in parts]))
            record["val_accuracy"] = float(np.mean([float((rb > rw).double().mean()) for rw, rb in parts]))
        if not np.isfinite(record["loss"]):
            raise ValidationError(f"loss={record['loss']}: reward learning diverged; expected a smaller lr")
        record["seconds"] = time.perf_counter() - t0
        history.append(record)
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['accuracy']:.3f}", refresh=False)
        if callback is not None and callback(record, None):
            break
    bar.close()
    net.eval()
    with torch.no_grad():
        r = net.members(states).mean(dim=0)
    return RewardFit(net, history, float(r.mean()), float(r.std()) if len(r) > 1 else 1.0, config.n_pairs,
                     real_lengths is not None)


# -- the whole algorithm ----------------------------------------------------------------------------------
@dataclasses.dataclass
class Result:
    """reward: the learned r_theta(next_obs) (``StateReward``, no transform); rl_reward: what the agent was
    paid (``reward_transform`` of it); reward_net: the ``StateRewardNet``; policy (``SB3Policy``) and model (the
    SB3 model), None when total_timesteps = 0; history: the reward records (``RewardFit``) then the RL records
    (phase "rl", rollout, timesteps, mean_return and mean_length of the last 20 finished episodes, true
    reward, None before any, seconds); ranked: the ``RankedDemos`` learned from (``ranked.summary``: the ranks
    read); bc_policy: D-REX's behaviour-cloning policy (None for T-REX); config."""

    reward: StateReward
    rl_reward: StateReward
    reward_net: StateRewardNet
    policy: Any
    model: Any
    history: list[dict]
    ranked: RankedDemos
    config: Config
    bc_policy: Any = None


def train(source: str, data: Any, config: Config | None = None, *,
          callback: Callable[[dict, Any], bool | None] | None = None, name: str = "t-rex",
          warm_start: Any = None) -> Result:
    """T-REX on ``source`` (a gymnasium id) from ranked trajectories ``data`` (``read_ranked`` input);
    ``warm_start``: a Policy PPO's actor starts from (``ppo_from_bc``; D-REX passes its BC policy), None = a
    random start.

    callback(record, policy) is called with each history record (policy None while the reward is fitted);
    returning True ends that phase."""
    config = Config() if config is None else config
    if not isinstance(config, Config):
        raise ValidationError(f"config: {type(config).__name__}; expected irlhf.irl.trex.Config")
    if not isinstance(source, str):
        raise ValidationError(f"env={source!r}: expected a gymnasium environment id (the agent trains on it)")
    obs_space, act_space = env_spaces(source)
    ranked = read_ranked(data)
    for k, (traj, rank) in enumerate(zip(ranked.trajectories, ranked.ranks.tolist())):
        if tuple(traj.obs.shape[1:]) != tuple(obs_space.shape):
            raise ValidationError(f"trajectory {k} (rank {rank_text(rank)}): observation shape {traj.obs.shape[1:]}; "
                                  f"expected {tuple(obs_space.shape)}, the observation shape of env={source!r}")
    if config.progress:
        tqdm.write(f"{name}: {ranked.summary}")
    horizon = config.horizon or episode_limit(source)
    fit = fit_reward(ranked, config, obs_space, horizon=horizon, callback=callback)
    reward = StateReward(fit.net, act_space)
    rl_reward = StateReward(fit.net, act_space, config.reward_transform, fit.state_mean, max(fit.state_std, 1e-8))
    if fit.padded:
        reward.horizon = rl_reward.horizon = horizon
    history = list(fit.history)
    total = config.total_timesteps
    if total is None:
        total = hyperparams(source, config.algo, **config.rl_kwargs)["n_timesteps"]
    if total == 0:
        return Result(reward, rl_reward, fit.net, None, None, history, ranked, config)

    if warm_start is None:
        model = make_model(config.algo, source, seed=config.seed, **config.rl_kwargs)
    else:
        model = ppo_from_bc(source, warm_start, seed=config.seed, **config.rl_kwargs)
    if fit.padded:
        rl_reward.tail = model.gamma / (1.0 - model.gamma)
    venv = RewardVecEnvWrapper(model.get_env(), rl_reward, with_dones=True)
    normalize = config.algo == "ppo" if config.normalize_reward is None else config.normalize_reward
    model.set_env(VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=model.gamma) if normalize else venv)
    bar = timestep_bar(model, total, desc=name, disable=not config.progress, leave=False)
    state = {"rollout": 0, "stop": False, "t0": time.perf_counter()}

    class LogCallback(BaseCallback):
        def _on_step(self) -> bool:
            return not state["stop"]

        def _on_rollout_end(self) -> None:
            advance(bar, self.num_timesteps)
            state["rollout"] += 1
            if state["rollout"] % config.log_every:
                return
            record = {"phase": "rl", "rollout": state["rollout"], "timesteps": int(self.num_timesteps),
                      **episode_stats(self.model),
                      "seconds": time.perf_counter() - state["t0"]}
            history.append(record)
            if record["mean_return"] is not None:
                bar.set_postfix(ret=f"{record['mean_return']:.1f}", refresh=False)
            if callback is not None:
                state["stop"] = bool(callback(record, SB3Policy(self.model, config.algo)))

    try:
        model.learn(total, callback=LogCallback())
    finally:
        bar.close()
    return Result(reward, rl_reward, fit.net, SB3Policy(model, config.algo), model, history, ranked, config)
