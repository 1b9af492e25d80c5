"""Deep RL from trajectory preferences (Christiano et al. 2017), with synthetic or human labellers.

The model (lecture 000, part 4). A reward network r_phi(s, a) scores a segment sigma = (s_0, a_0, ..., s_L-1,
a_L-1) by its sum R_phi(sigma) = sum_t r_phi(s_t, a_t); a labeller's judgement mu in {1, 0.5, 0} between two
segments is modelled as

    P(sigma_a > sigma_b) = exp R_phi(sigma_a) / (exp R_phi(sigma_a) + exp R_phi(sigma_b))

and r_phi minimises the cross-entropy  -[mu log P(a > b) + (1 - mu) log P(b > a)]  (``bradley_terry.loss`` on the
segment sums; a tie counts half each way).

The loop (``train``):

    round 0: roll out a random policy; cut segments; ask the labeller about the initial share of the budget;
             fit the reward ensemble; start the RL agent (SB3 PPO, or SAC / DQN) on the learned reward
    round r: the agent's own recent episodes (recorded while it trains, no extra steps) -> candidate segment
             pairs (candidates_factor x the labels asked) -> keep the pairs the ensemble disagrees on most ->
             ask the labeller -> refit the ensemble on all labels so far -> renormalise -> the agent continues
    (a last history row is written when training ends)

Details, with the paper's choices:

- Segments (``sample_segments``): fixed length L (default 25 steps; Christiano used 1-2 s clips) cut from
  episodes. An episode that *terminated* (not one cut by a time limit) is padded after its end with absorbing
  steps that have true reward 0 and are masked out of the model's sums: so in CartPole, where every live step
  earns 1, a segment that falls over early has a lower return, which is the whole signal.
- Reward ensemble (``RewardModel``): ``ensemble_size`` MLPs on (observation, one-hot or raw action), inputs
  standardised with statistics of the first labelled data; each member is fitted on its own bootstrap
  resample of the labelled pairs (seeded per member and round); L2 (weight decay) and dropout are options.
  The reward is the ensemble mean.
- Normalisation: the reward given to the agent is rescaled over recent samples after every refit. Bradley-Terry
  fixes only reward differences, so the level is a choice. ``"scale"`` divides by the root mean square and keeps
  zero where it is: with padded episode ends, zero means "the episode is over", and centring would make ending
  an episode look as good as an average step (a CartPole agent learns to fall over: 10 steps). It divides by
  the RMS, not the std, because a CartPole model learns about 90 +- 1 per live step, and std-scaling gave PPO
  rewards of ~90 whose value loss swamped its clipped gradient. ``"standard"`` (the paper's choice) subtracts
  the mean and divides by the std: right when episodes never end, where the offset is arbitrary. The default
  ``"auto"`` picks ``"scale"`` once any labelled segment contains an episode's end, else ``"standard"``;
  ``"none"`` leaves the raw ensemble mean.
- Queries (``select_disagreement``): the variance over members of P_m(a > b) (the paper used the variance of
  the members' predictions); ``selection="information"`` (``select_information``): the mutual information
  between the answer and the ensemble member, I = H(mean_m p_m) - mean_m H(p_m) with p_m = P_m(a > b) (BALD,
  Houlsby et al. 2011; the ensemble as the posterior, as Bıyık et al. 2019 use posterior samples), which prefers
  pairs the members answer confidently but differently over pairs every member finds a coin flip;
  ``selection="random"`` is the ablation.
- Schedule (``label_schedule``): the labels asked at round r are proportional to tau / (T_r + tau) (the paper:
  tau = 2e6 frames of 5e7, i.e. 1/25 of training; here tau = schedule_tau * total_timesteps), after an
  initial ``initial_label_fraction`` of the budget in round 0; the counts sum to ``n_labels`` exactly.
  Queries a labeller skips still count against the budget (as in B-Pref); a NaN label means skipped.
- Late labels: a labeller with a ``collect_late()`` method (a person, ``irlhf.label.people.WebLabeller``, whose
  answers may come after its timeout) is asked, in every round that asks new labels, for (segments_a, segments_b, mu) of
  earlier queries answered since; those pairs join the dataset as labels of the current round (they count in
  ``new_labels`` but not again in ``queries``). Labellers without it are unaffected.
- Off-policy agents (SAC, DQN): after every refit the replay buffer's rewards are relabelled with the new
  reward (as in PEBBLE, Lee et al. 2021).

    result = train("CartPole-v1", make_labeller("oracle"), Config(n_labels=200, total_timesteps=50_000))
    result.policy(obs_batch) -> actions;  result.reward(obs, acts) -> (N,);  result.history;  result.dataset
    save_reward_model("reward.safetensors", result.reward);  reward = load_reward_model("reward.safetensors")
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from torch import nn

from irlhf.core.config import (BaseConfig, Fraction, NonNegative, OneOf, Positive, PositiveInt, Range, Seed, Widths,
                               check_number)
from irlhf.core.errors import ValidationError, describe
from irlhf.core.seeding import as_generator
from irlhf.data.types import Trajectory
from irlhf.envs.gym import make_env
from irlhf.envs.spaces import flat_dim, space_from_dict, space_to_dict
from irlhf.nn.encoders import encode
from irlhf.nn.losses import bradley_terry_loss as bt_loss
from irlhf.nn.mlp import ACTIVATIONS, mlp
from irlhf.nn.policies import read_module, write_module
from irlhf.preference.segments import Preferences, Segments, sample_segments
from irlhf.rl.sb3 import (RlKwargs, SB3Policy, advance, check_algo_space, make_model, one_thread,
                          relabel_replay_buffer, timestep_bar)
from irlhf.rl.wrappers import RewardVecEnvWrapper

__all__ = ["Config", "Result", "Segments", "Preferences", "RewardModel", "sample_segments", "rollout_episodes",
           "label_schedule", "select_disagreement", "select_information", "select_random", "preference_probabilities",
           "segment_loss", "fit_reward", "train", "save_reward_model", "load_reward_model"]

NORMALIZATIONS = ("auto", "scale", "standard", "none")
SELECTIONS = ("disagreement", "information", "random")
FORMAT = "irlhf.trajectory_reward"
VERSION = "1"


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """Options of ``train`` (defaults in brackets).

    total_timesteps [50_000]: RL environment steps.  n_labels [200]: total queries to the labeller (>= 1).
    rounds [10]: query rounds (round 0 before RL starts, then evenly spaced in timesteps).
    segment_length [25]: steps per segment.  ensemble_size [3]: reward networks (>= 1).
    candidates_factor [10]: candidate pairs sampled per query asked (>= 1; 1 = no selection).
    selection ["disagreement"]: or "information" (mutual information, see module doc), "random" (ablation).  initial_label_fraction [0.25]: share of the budget
    asked in round 0.  schedule_tau [0.1]: tau of the decaying label rate, as a fraction of total_timesteps.
    random_rollout_steps [2000]: random-policy steps rolled out for round 0.  episode_pool [100]: most
    recent agent episodes kept to cut segments from.
    reward_hidden_sizes [(64, 64)], reward_activation ["relu"], reward_lr [1e-3], reward_epochs [30]
    (passes over each member's bootstrap sample per refit), reward_batch_size [64] (pairs),
    reward_weight_decay [1e-4] (L2), reward_dropout [0.0], reward_normalization ["auto"] (see module doc),
    normalization_samples [5000] (recent (s, a) samples for the normalisation statistics).
    algo ["ppo"]: "ppo", "sac" (Box actions) or "dqn" (Discrete).  rl_kwargs [{}]: overrides of the SB3
    hyperparameters (``irlhf.rl.sb3.make_model``).  seed [0].  progress [True]: a tqdm bar over timesteps.
    """

    total_timesteps: PositiveInt = 50_000
    n_labels: PositiveInt = 200
    rounds: PositiveInt = 10
    segment_length: PositiveInt = 25
    ensemble_size: PositiveInt = 3
    candidates_factor: PositiveInt = 10
    selection: Literal["disagreement", "information", "random"] = "disagreement"
    initial_label_fraction: Fraction = 0.25
    schedule_tau: Positive = 0.1
    random_rollout_steps: PositiveInt = 2000
    episode_pool: PositiveInt = 100
    reward_hidden_sizes: Widths = (64, 64)
    reward_activation: Annotated[str, OneOf(sorted(ACTIVATIONS))] = "relu"
    reward_lr: Positive = 1e-3
    reward_epochs: PositiveInt = 30
    reward_batch_size: PositiveInt = 64
    reward_weight_decay: NonNegative = 1e-4
    reward_dropout: Annotated[float, Range(0, 1, high_open=True)] = 0.0
    reward_normalization: Literal["auto", "scale", "standard", "none"] = "auto"
    normalization_samples: PositiveInt = 5000
    algo: Literal["ppo", "sac", "dqn"] = "ppo"
    rl_kwargs: RlKwargs = dataclasses.field(default_factory=dict)
    seed: Seed = 0
    progress: bool = True


def rollout_episodes(env_id: str, policy: Any, n_steps: int, seed: int = 0) -> list[Trajectory]:
    """Roll out ``policy`` (batch of obs -> actions, or None = uniformly random) for at least ``n_steps`` steps
    in whole episodes; episode k resets with seed + k. Returns Trajectories with true rewards."""
    env = make_env(env_id)
    env.action_space.seed(seed)
    episodes, total, k = [], 0, 0
    try:
        while total < n_steps:
            obs, _ = env.reset(seed=seed + k)
            observations, actions, rewards = [obs], [], []
            terminated = truncated = False
            while not (terminated or truncated):
                action = env.action_space.sample() if policy is None else np.asarray(policy(np.asarray(obs)[None]))[0]
                obs, reward, terminated, truncated, _ = env.step(action)
                observations.append(obs)
                actions.append(action)
                rewards.append(float(reward))
            episodes.append(Trajectory(np.stack(observations), np.stack(actions), np.asarray(rewards),
                                       terminal=bool(terminated)))
            total += len(actions)
            k += 1
    finally:
        env.close()
    return episodes


# -- reward model ------------------------------------------------------------------------------------------
def check_spaces(env_id: str, observation_space: gym.Space, action_space: gym.Space) -> None:
    for what, space in (("observation", observation_space), ("action", action_space)):
        if not isinstance(space, (gym.spaces.Discrete, gym.spaces.Box)):
            raise ValidationError(f"env={env_id!r}: {what} space {space} unsupported; expected Discrete or Box")


class RewardModel(nn.Module):
    """An ensemble of MLPs r_m(s, a); ``reward(obs, acts)`` / ``__call__`` is the normalised ensemble mean.

    obs (N, *obs_shape) (or ints for a Discrete observation space), acts (N,) ints for Discrete actions or
    (N, *act_shape) floats for Box. ``members(obs, acts)`` -> (M, N) raw per-member rewards (torch).
    """

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, ensemble_size: int = 3,
                 hidden_sizes: Sequence[int] = (64, 64), activation: str = "relu", dropout: float = 0.0,
                 seed: int = 0):
        super().__init__()
        check_spaces("?", observation_space, action_space)
        self.observation_space, self.action_space = observation_space, action_space
        self.hidden_sizes, self.activation, self.dropout = tuple(hidden_sizes), activation, float(dropout)
        dim = flat_dim(observation_space) + flat_dim(action_space)
        nets = []
        for m in range(ensemble_size):
            net = mlp(dim, self.hidden_sizes, 1, activation, seed=seed * 1000 + m)
            if dropout > 0:  # dropout after every hidden activation
                layers = []
                for layer in net:
                    layers.append(layer)
                    if not isinstance(layer, nn.Linear):
                        layers.append(nn.Dropout(dropout))
                net = nn.Sequential(*layers)
            nets.append(net)
        self.nets = nn.ModuleList(nets)
        self.register_buffer("in_mean", torch.zeros(dim))
        self.register_buffer("in_std", torch.ones(dim))
        self.register_buffer("out_shift", torch.zeros(()))
        self.register_buffer("out_scale", torch.ones(()))
        self.eval()

    @property
    def ensemble_size(self) -> int:
        return len(self.nets)

    def features(self, obs: Any, acts: Any) -> torch.Tensor:
        """(N, D) float32 network inputs (one-hot for Discrete spaces), before standardisation."""
        return torch.cat([encode(obs, self.observation_space), encode(acts, self.action_space)], dim=1)

    def members(self, obs: Any, acts: Any) -> torch.Tensor:
        x = (self.features(obs, acts) - self.in_mean) / self.in_std
        return torch.stack([net(x)[:, 0] for net in self.nets])

    def reward(self, obs: Any, acts: Any) -> np.ndarray:
        """(N,) normalised ensemble-mean reward, float64."""
        with torch.no_grad():
            mean = self.members(obs, acts).mean(dim=0)
            return ((mean - self.out_shift) / self.out_scale).double().numpy()

    def __call__(self, obs: Any, acts: Any) -> np.ndarray:  # type: ignore[override]
        return self.reward(obs, acts)

    def segment_returns(self, segments: Segments, grad: bool = False) -> torch.Tensor:
        """(M, N) per-member masked sums of raw predicted rewards over each segment."""
        n, length = segments.true_rews.shape
        obs = segments.obs.reshape(n * length, *segments.obs.shape[2:])
        acts = segments.acts.reshape(n * length, *segments.acts.shape[2:])
        with torch.set_grad_enabled(grad):
            r = self.members(obs, acts).reshape(self.ensemble_size, n, length)
            return (r * torch.as_tensor(segments.mask, dtype=r.dtype)).sum(dim=2)

    def set_input_stats(self, segments: Segments) -> None:
        x = self.features(segments.obs[segments.mask], segments.acts[segments.mask])
        self.in_mean.copy_(x.mean(dim=0))
        self.in_std.copy_(x.std(dim=0).clamp_min(1e-3) if len(x) > 1 else torch.ones(x.shape[1]))

    def set_normalization(self, obs: Any, acts: Any, mode: str) -> None:
        """"scale": divide the ensemble mean by its root mean square on these samples (zero stays zero);
        "standard": subtract its mean and divide by its std."""
        self.out_shift.zero_()
        self.out_scale.fill_(1.0)
        if mode == "none":
            return
        with torch.no_grad():
            mean = self.members(obs, acts).mean(dim=0)
        if mode == "standard":
            self.out_shift.fill_(float(mean.mean()))
            spread = float(mean.std()) if len(mean) > 1 else 1.0
        else:  # the RMS, not the std: a reward of 90 +- 1 per step must become ~1, not ~90 (PPO's value loss)
            spread = float(mean.square().mean().sqrt())
        self.out_scale.fill_(max(spread, 1e-6))


def _normalization(mode: str, data: Preferences) -> str:
    """"auto": "scale" once a labelled segment holds an episode's end (zero then means "over" and must stay
    zero), else "standard" (without terminations the reward's offset is arbitrary: centre it)."""
    if mode != "auto":
        return mode
    ended = not (data.segments_a.mask.all() and data.segments_b.mask.all())
    return "scale" if ended else "standard"


def preference_probabilities(returns_a: torch.Tensor, returns_b: torch.Tensor) -> torch.Tensor:
    """P(a > b) = sigma(R_a - R_b), elementwise."""
    return torch.sigmoid(torch.as_tensor(returns_a) - torch.as_tensor(returns_b))


def segment_loss(returns_a: Any, returns_b: Any, mu: Any) -> torch.Tensor:
    """Mean Bradley-Terry cross-entropy on segment sums (ties mu = 0.5 count half each way)."""
    return bt_loss(torch.as_tensor(returns_a), torch.as_tensor(returns_b), torch.as_tensor(mu, dtype=torch.float32))


def bootstrap_indices(n: int, ensemble_size: int, seed: Any) -> list[np.ndarray]:
    """One resample with replacement of range(n) per member, from one seeded generator."""
    rng = as_generator(seed)
    return [rng.integers(0, n, size=n) for _ in range(ensemble_size)]


def fit_reward(model: RewardModel, data: Preferences, config: Config, seed: Any = 0) -> dict[str, float]:
    """Fit every member on its bootstrap resample of ``data`` (Adam, ``reward_epochs`` passes, L2 via weight
    decay), continuing from the current weights. Returns the mean training loss and the ensemble's accuracy
    on the non-tied pairs. Torch runs on one thread meanwhile."""
    with one_thread():
        return _fit_reward(model, data, config, seed)


def _fit_reward(model: RewardModel, data: Preferences, config: Config, seed: Any) -> dict[str, float]:
    rng = as_generator(seed)
    n = len(data)
    resamples = bootstrap_indices(n, model.ensemble_size, rng)
    mu = torch.as_tensor(data.mu, dtype=torch.float32)
    torch_seed = int(rng.integers(2**31))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch_seed)
        model.train()
        for m, net in enumerate(model.nets):
            opt = torch.optim.Adam(net.parameters(), lr=config.reward_lr, weight_decay=config.reward_weight_decay)
            idx = resamples[m]
            for _ in range(config.reward_epochs):
                order = idx[rng.permutation(n)]
                for start in range(0, n, config.reward_batch_size):
                    batch = order[start:start + config.reward_batch_size]
                    ra = _member_returns(model, m, data.segments_a[batch])
                    rb = _member_returns(model, m, data.segments_b[batch])
                    loss = segment_loss(ra, rb, mu[batch])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
        model.eval()
    return evaluate_reward(model, data)


def _member_returns(model: RewardModel, m: int, segments: Segments) -> torch.Tensor:
    n, length = segments.true_rews.shape
    x = model.features(segments.obs.reshape(n * length, *segments.obs.shape[2:]),
                       segments.acts.reshape(n * length, *segments.acts.shape[2:]))
    r = model.nets[m]((x - model.in_mean) / model.in_std)[:, 0].reshape(n, length)
    return (r * torch.as_tensor(segments.mask, dtype=r.dtype)).sum(dim=1)


def evaluate_reward(model: RewardModel, data: Preferences) -> dict[str, float]:
    """Ensemble-mean loss and accuracy (on pairs with mu != 0.5; NaN if none) of ``model`` on ``data``."""
    if len(data) == 0:
        return {"loss": math.nan, "accuracy": math.nan}
    ra = model.segment_returns(data.segments_a).mean(dim=0)
    rb = model.segment_returns(data.segments_b).mean(dim=0)
    loss = float(segment_loss(ra, rb, data.mu))
    decided = data.mu != 0.5
    correct = ((ra - rb).numpy() > 0) == (data.mu > 0.5)
    return {"loss": loss, "accuracy": float(correct[decided].mean()) if decided.any() else math.nan}


# -- queries -------------------------------------------------------------------------------------------------
def select_disagreement(member_returns_a: Any, member_returns_b: Any, k: int) -> np.ndarray:
    """Indices of the ``k`` pairs with the largest variance over members of P_m(a > b), largest first."""
    p = preference_probabilities(torch.as_tensor(member_returns_a), torch.as_tensor(member_returns_b))
    variance = p.var(dim=0, unbiased=False).numpy() if p.shape[0] > 1 else np.zeros(p.shape[1])
    return np.argsort(-variance, kind="stable")[:k]


def select_information(member_returns_a: Any, member_returns_b: Any, k: int) -> np.ndarray:
    """Indices of the ``k`` pairs with the largest mutual information between the answer and the member,
    H(mean_m p_m) - mean_m H(p_m), p_m = P_m(a > b) (binary entropies, nats), largest first."""
    p = preference_probabilities(torch.as_tensor(member_returns_a), torch.as_tensor(member_returns_b)).double()

    def entropy(q: torch.Tensor) -> torch.Tensor:
        return -(torch.xlogy(q, q) + torch.xlogy(1 - q, 1 - q))

    information = (entropy(p.mean(dim=0)) - entropy(p).mean(dim=0)).numpy()
    return np.argsort(-information, kind="stable")[:k]


def select_random(n: int, k: int, seed: Any = 0) -> np.ndarray:
    return as_generator(seed).choice(n, size=min(k, n), replace=False)


def label_schedule(n_labels: int, timesteps: Sequence[float], initial_fraction: float = 0.25,
                   tau: float = 2e6) -> np.ndarray:
    """Labels to ask at each query time ``timesteps[r]`` (r = 0 first): round 0 gets round(initial_fraction *
    n_labels) up front, the rest is shared in proportion to tau / (T_r + tau) (Christiano's decaying rate),
    rounded by largest remainders so the counts sum to ``n_labels`` exactly."""
    check_number("n_labels", n_labels, low=1, integer=True)
    check_number("initial_fraction", initial_fraction, low=0, high=1)
    t = np.asarray(timesteps, dtype=np.float64)
    if t.ndim != 1 or len(t) == 0:
        raise ValidationError(f"timesteps: {describe(timesteps)}; expected a non-empty 1-D sequence")
    initial = int(round(initial_fraction * n_labels))
    rate = tau / (t + tau)
    share = (n_labels - initial) * rate / rate.sum()
    counts = np.floor(share).astype(np.int64)
    left = n_labels - initial - counts.sum()
    counts[np.argsort(-(share - counts), kind="stable")[:left]] += 1
    counts[0] += initial
    return counts


# -- the loop ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Result:
    """policy: callable obs batch -> actions (``SB3Policy``, deterministic).  reward: the ``RewardModel``
    (callable (obs, acts) -> (N,)).  model: the SB3 model.  history: one dict per round, then a final row:
    round, timesteps, queries (asked so far), labels (answered so far), new_labels, heldout_accuracy (of the
    previous model on this round's new labels, before refitting), train_loss / train_accuracy (after the refit),
    reward_correlation (Pearson, predicted vs true returns of this round's candidate segments), mean_true_return
    (of the agent's latest <= 20 training episodes; random-policy episodes in round 0).
    dataset: the labelled ``Preferences``.  config: the ``Config``."""

    policy: Any
    reward: RewardModel
    model: Any
    history: list[dict[str, Any]]
    dataset: Preferences
    config: Config


def _correlation(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def _empty_preferences(like: Segments) -> Preferences:
    return Preferences(like[:0], like[:0], np.zeros(0), np.zeros(0, dtype=np.int64))


def _add_late(new: Preferences, late: Any, r: int) -> Preferences:
    """``new`` plus the late-labelled pairs (segments_a, segments_b, mu) a labeller's ``collect_late`` returned,
    counted as labels of round ``r`` (NaN = skipped, dropped)."""
    try:
        late_a, late_b, late_mu = late
    except (TypeError, ValueError):
        raise ValidationError(f"labeller.collect_late(): {describe(late)}; expected (segments_a, segments_b, "
                              "mu)") from None
    late_mu = np.asarray(late_mu, dtype=np.float64).reshape(-1)
    if len(late_mu) == 0:
        return new
    if len(late_a) != len(late_mu) or len(late_b) != len(late_mu) or np.any(
            (late_mu != 0) & (late_mu != 0.5) & (late_mu != 1) & ~np.isnan(late_mu)):
        raise ValidationError(f"labeller.collect_late() mu: {describe(late_mu)}; expected one value in {{1, 0.5, 0}} "
                              "or NaN per late pair")
    ok = np.flatnonzero(~np.isnan(late_mu))
    extra = Preferences(late_a[ok], late_b[ok], late_mu[ok], np.full(len(ok), r))
    return Preferences.concatenate([new, extra])


def train(source: str, labeller: Any, config: Config | None = None) -> Result:
    """Learn a policy on the gymnasium id ``source`` from ``labeller``'s preferences between segments of its own
    rollouts (module docstring). Torch runs on one thread meanwhile (small networks; extra threads only contend)."""
    with one_thread():
        return _train(source, labeller, config)


def _train(env_id: str, labeller: Any, config: Config | None) -> Result:
    config = Config() if config is None else config
    if not isinstance(config, Config):
        raise ValidationError(f"config: {type(config).__name__}; expected a trajectory.Config")
    if not (hasattr(labeller, "label_batch") and callable(labeller.label_batch)):
        raise ValidationError(f"labeller: {describe(labeller)}; expected a Labeller with label_batch(a, b)")
    env = make_env(env_id)
    obs_space, act_space = env.observation_space, env.action_space
    horizon = env.spec.max_episode_steps if env.spec is not None else None
    env.close()
    check_spaces(env_id, obs_space, act_space)
    check_algo_space(config.algo, env_id, act_space)
    if horizon is not None and config.segment_length > horizon:
        raise ValidationError(f"segment_length={config.segment_length}: longer than {env_id}'s episodes "
                              f"(max_episode_steps={horizon}); expected segment_length <= {horizon}")

    rng = as_generator(config.seed)
    reward = RewardModel(obs_space, act_space, config.ensemble_size, config.reward_hidden_sizes,
                         config.reward_activation, config.reward_dropout, seed=config.seed)
    query_times = np.arange(config.rounds) * (config.total_timesteps / config.rounds)
    schedule = label_schedule(config.n_labels, query_times, config.initial_label_fraction,
                              config.schedule_tau * config.total_timesteps)
    state: dict[str, Any] = {"data": None, "queries": 0, "history": []}

    def reward_fn(obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        return reward.reward(obs, acts)

    def do_round(r: int, episodes: list[Trajectory], timesteps: int, mean_return: float | None) -> None:
        k = int(schedule[r])
        row: dict[str, Any] = {"round": r, "timesteps": timesteps, "new_labels": 0, "heldout_accuracy": None,
                               "reward_correlation": None}
        if k > 0:
            n_cand = k * config.candidates_factor
            cand = sample_segments(episodes, 2 * n_cand, config.segment_length, rng)
            a, b = cand[np.arange(n_cand)], cand[np.arange(n_cand, 2 * n_cand)]
            if state["data"] is None:
                reward.set_input_stats(cand)
            ra, rb = reward.segment_returns(a), reward.segment_returns(b)
            select = {"disagreement": select_disagreement, "information": select_information}.get(config.selection)
            pick = select(ra, rb, k) if select is not None and r > 0 else select_random(n_cand, k, rng)
            mu = np.asarray(labeller.label_batch(a[pick], b[pick]), dtype=np.float64).reshape(-1)
            if mu.shape != (len(pick),) or np.any((mu != 0) & (mu != 0.5) & (mu != 1) & ~np.isnan(mu)):
                raise ValidationError(f"labeller output: {describe(mu)}; expected ({len(pick)},) values in "
                                      "{1, 0.5, 0} or NaN (skip)")
            keep = pick[~np.isnan(mu)]
            new = Preferences(a[keep], b[keep], mu[~np.isnan(mu)], np.full(len(keep), r))
            if callable(getattr(labeller, "collect_late", None)):  # a person's answers that came after a timeout
                new = _add_late(new, labeller.collect_late(), r)
            state["queries"] += k
            row["new_labels"] = len(new)
            both = Segments.concatenate([a, b])
            predicted = reward.segment_returns(both).mean(dim=0).numpy()
            if state["data"] is not None and len(new):
                accuracy = evaluate_reward(reward, new)["accuracy"]
                row["heldout_accuracy"] = None if math.isnan(accuracy) else accuracy
            state["data"] = new if state["data"] is None else Preferences.concatenate([state["data"], new])
            if len(state["data"]):
                fit = fit_reward(reward, state["data"], config, rng)
                row.update(train_loss=fit["loss"], train_accuracy=fit["accuracy"])
                predicted = reward.segment_returns(both).mean(dim=0).numpy()
                obs, acts = both.obs[both.mask], both.acts[both.mask]
                sel = rng.permutation(len(obs))[:config.normalization_samples]
                reward.set_normalization(obs[sel], acts[sel], _normalization(config.reward_normalization,
                                                                              state["data"]))
            row["reward_correlation"] = _correlation(predicted, both.returns())
        data = state["data"]
        row.update(queries=state["queries"], labels=0 if data is None else len(data), mean_true_return=mean_return)
        state["history"].append(row)

    # round 0: random-policy rollouts
    random_episodes = rollout_episodes(env_id, None, config.random_rollout_steps, seed=config.seed)
    do_round(0, random_episodes, 0, float(np.mean([e.rews.sum() for e in random_episodes])))

    model = make_model(config.algo, env_id, seed=config.seed, **config.rl_kwargs)
    venv = RewardVecEnvWrapper(model.get_env(), reward_fn, record=True, max_episodes=config.episode_pool)
    model.set_env(venv)
    callback = _RoundCallback(query_times[1:], venv, do_round, config)
    try:
        model.learn(config.total_timesteps, callback=callback)
    finally:
        callback.close()
    recent = [e.rews.sum() for e in list(venv.episodes)[-20:]]
    data = state["data"] if state["data"] is not None else _empty_preferences(
        sample_segments(random_episodes, 1, config.segment_length, 0))
    state["history"].append({"round": config.rounds, "timesteps": int(model.num_timesteps), "new_labels": 0,
                             "queries": state["queries"], "labels": len(data),
                             "mean_true_return": float(np.mean(recent)) if recent else None,
                             "heldout_accuracy": None, "reward_correlation": None})
    return Result(policy=SB3Policy(model, config.algo), reward=reward, model=model, history=state["history"],
                  dataset=data, config=config)


class _RoundCallback(BaseCallback):
    """At the first rollout end past each query time: run the query round and relabel an off-policy replay
    buffer with the refitted reward; keep a tqdm bar over timesteps."""

    def __init__(self, times: np.ndarray, venv: Any, do_round: Any, config: Config):
        super().__init__()
        self.times, self.venv, self.do_round, self.config = collections.deque(times), venv, do_round, config
        self.next_round, self.bar = 1, None

    def _on_training_start(self) -> None:
        if self.config.progress:
            self.bar = timestep_bar(self.model, self.config.total_timesteps, desc="prefs rl", leave=False)

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if self.bar is not None:
            advance(self.bar, self.num_timesteps)
        if self.times and self.num_timesteps >= self.times[0]:
            while self.times and self.num_timesteps >= self.times[0]:
                self.times.popleft()
            episodes = list(self.venv.episodes)
            if not episodes:  # no episode finished yet: nothing to cut segments from; wait for the next one
                self.times.appendleft(self.num_timesteps + 1)
                return
            recent = [float(e.rews.sum()) for e in episodes[-20:]]
            self.do_round(self.next_round, episodes, int(self.num_timesteps), float(np.mean(recent)))
            self.next_round += 1
            relabel_replay_buffer(self.model, self.venv.reward_fn)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# -- save / load --------------------------------------------------------------------------------------------
def save_reward_model(path: str | os.PathLike[str], model: RewardModel) -> None:
    """Write the ensemble's weights (and its input / output normalisation) as safetensors; spaces and
    architecture go in the metadata as JSON. Atomic."""
    if not isinstance(model, RewardModel):
        raise ValidationError(f"model: {type(model).__name__}; expected a trajectory.RewardModel")
    spec = {"observation_space": space_to_dict(model.observation_space),
            "action_space": space_to_dict(model.action_space), "ensemble_size": model.ensemble_size,
            "hidden_sizes": list(model.hidden_sizes), "activation": model.activation, "dropout": model.dropout}
    write_module(path, model, FORMAT, VERSION, spec)


def load_reward_model(path: str | os.PathLike[str]) -> RewardModel:
    """Read a reward model written by ``save_reward_model``."""
    spec, tensors = read_module(path, FORMAT)
    model = RewardModel(space_from_dict(spec["observation_space"]), space_from_dict(spec["action_space"]),
                        spec["ensemble_size"], spec["hidden_sizes"], spec["activation"], spec["dropout"])
    model.load_state_dict(tensors)
    model.eval()
    return model
