"""How well does a reward model learned from pairwise preferences alone (Christiano et al. 2017, without RL)
generalise? Fit it to segment pairs labelled by a synthetic oracle, then test it on pairs cut from other
episodes.

Behaviour data: for each noise level eps, ``steps`` steps of the expert whose action is replaced by a
uniformly random one with probability eps (``noisy_policy``), so segments range from expert-like to random.
Segments of ``segment_length`` steps are paired at random; the oracle prefers the higher true return (0.5 on
exact ties). The ensemble is fitted with the Bradley-Terry cross-entropy on segment sums,
P(a > b) = sigma(R(a) - R(b)) (``irlhf.preference.trajectory.fit_reward``). Held out: pairwise accuracy
against the oracle (decided pairs), the loss, and the Pearson correlation of learned with true segment returns
and per-step rewards; the untrained ensemble's accuracy gives the scale.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from irlhf.core.config import check_number
from irlhf.core.seeding import as_generator
from irlhf.data.types import Trajectory
from irlhf.envs.gym import Policy, make_env
from irlhf.preference import trajectory
from irlhf.preference.labellers import SyntheticOracle
from irlhf.rl.sb3 import one_thread


def noisy_policy(expert: Policy, eps: float, low: np.ndarray, high: np.ndarray, seed: Any = 0) -> Policy:
    """A batch policy for a Box action space [low, high]: the expert's action, replaced by a uniformly random
    one with probability ``eps`` (independently per observation)."""
    check_number("eps", eps, low=0, high=1)
    rng = as_generator(seed)

    def policy(obs: np.ndarray) -> np.ndarray:
        acts = expert(obs)
        swap = rng.random(len(obs)) < eps
        return np.where(swap[:, None], rng.uniform(low, high, size=acts.shape), acts).astype(acts.dtype)

    return policy


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else float("nan")


@dataclasses.dataclass
class OracleFit:
    """The fitted ensemble and its held-out evaluation.

    metrics: train_loss, train_accuracy, heldout_loss, heldout_accuracy, untrained_heldout_accuracy,
    return_correlation (segments), reward_correlation (steps), train_ties (share of 0.5 labels), fit_seconds.
    true_returns / learned_returns: (n_heldout * 2,) held-out segment returns; true_rewards / learned_rewards:
    the held-out steps' rewards (ensemble mean, padding dropped).
    """

    model: trajectory.RewardModel
    config: trajectory.Config
    metrics: dict[str, float]
    true_returns: np.ndarray
    learned_returns: np.ndarray
    true_rewards: np.ndarray
    learned_rewards: np.ndarray


def fit_reward_to_oracle(env_id: str, expert: Policy, n_labels: int, *, seed: int = 0,
                         rng: np.random.Generator | None = None, noise: Sequence[float] = (0.0, 0.3, 0.6, 1.0),
                         steps: int = 400, segment_length: int = 25, n_heldout: int = 300,
                         heldout_seed_offset: int = 10_000) -> OracleFit:
    """Fit ``trajectory.Config(seed=seed)``'s reward ensemble to ``n_labels`` oracle-labelled segment pairs of
    ``env_id`` (Box actions), then evaluate it on ``n_heldout`` pairs from episodes reset with seeds offset by
    ``heldout_seed_offset``. ``rng`` (default: from ``seed``) draws the segments and the fit's minibatches."""
    check_number("n_labels", n_labels, low=1, integer=True)
    check_number("n_heldout", n_heldout, low=1, integer=True)
    rng = np.random.default_rng(seed) if rng is None else rng
    env = make_env(env_id)
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    oracle = SyntheticOracle(seed=seed)  # deterministic: prefers the higher true return, 0.5 on exact ties

    def episodes(base: int) -> list[Trajectory]:  # `steps` steps of each behaviour policy
        out: list[Trajectory] = []
        for i, eps in enumerate(noise):
            s = base + 100 * i
            out += trajectory.rollout_episodes(env_id, noisy_policy(expert, eps, act_space.low, act_space.high, s),
                                               steps, seed=s)
        return out

    def pairs(segments: trajectory.Segments, n: int) -> trajectory.Preferences:
        a, b = segments[np.arange(n)], segments[np.arange(n, 2 * n)]
        return trajectory.Preferences(a, b, oracle.label_batch(a, b), np.zeros(n, dtype=np.int64))

    train_episodes = episodes(seed)
    test_episodes = episodes(seed + heldout_seed_offset)
    train_segments = trajectory.sample_segments(train_episodes, 2 * n_labels, segment_length, rng)
    data = pairs(train_segments, n_labels)
    test_segments = trajectory.sample_segments(test_episodes, 2 * n_heldout, segment_length, rng)
    test = pairs(test_segments, n_heldout)

    config = trajectory.Config(seed=seed, progress=False)  # the reward-model defaults of `irlhf prefs rl`
    model = trajectory.RewardModel(obs_space, act_space, config.ensemble_size, config.reward_hidden_sizes,
                                   config.reward_activation, seed=seed)
    model.set_input_stats(train_segments)
    mask = test_segments.mask
    flat_obs = test_segments.obs.reshape(-1, *test_segments.obs.shape[2:])
    flat_acts = test_segments.acts.reshape(-1, *test_segments.acts.shape[2:])

    def evaluate() -> tuple[dict[str, float], np.ndarray]:
        """Held-out loss and accuracy (decided pairs), and the ensemble-mean raw reward of every step."""
        with torch.no_grad():
            step_rewards = model.members(flat_obs, flat_acts).mean(dim=0).reshape(mask.shape)
        returns = (step_rewards * torch.as_tensor(mask, dtype=step_rewards.dtype)).sum(dim=1)
        ra, rb = returns[:n_heldout], returns[n_heldout:]
        decided = test.mu != 0.5
        correct = ((ra - rb).numpy() > 0) == (test.mu > 0.5)
        return ({"loss": float(trajectory.segment_loss(ra, rb, test.mu)),
                 "accuracy": float(correct[decided].mean()) if decided.any() else float("nan")},
                step_rewards.numpy())

    with one_thread():  # small networks: extra threads only contend
        untrained, _ = evaluate()
        t0 = time.perf_counter()
        fit = trajectory.fit_reward(model, data, config, rng)
        fit_seconds = time.perf_counter() - t0
        heldout, step_learned = evaluate()
    learned = (step_learned * mask).sum(axis=1)
    true = test_segments.returns()
    step_learned, step_true = step_learned[mask], test_segments.true_rews[mask]
    metrics = {"train_loss": fit["loss"], "train_accuracy": fit["accuracy"], "heldout_loss": heldout["loss"],
               "heldout_accuracy": heldout["accuracy"], "untrained_heldout_accuracy": untrained["accuracy"],
               "return_correlation": _pearson(learned, true), "reward_correlation": _pearson(step_learned, step_true),
               "train_ties": float(np.mean(data.mu == 0.5)), "fit_seconds": fit_seconds}
    return OracleFit(model, config, metrics, true, learned, step_true, step_learned)
