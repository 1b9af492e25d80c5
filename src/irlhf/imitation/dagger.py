"""DAgger (Dataset Aggregation; Ross, Gordon & Bagnell 2011): imitation with an interactive expert.

Behaviour cloning trains on the expert's state distribution only, so the learner's own mistakes lead it
into states it never saw (errors compound, O(eps T^2)). DAgger collects expert labels on the states the
learner actually visits. Round n = 0, 1, ..., rounds - 1:

  (a) mixture policy pi_n = beta_n pi* + (1 - beta_n) pi_hat_n, mixed *per step*: at every step a coin
      from a seeded numpy Generator picks the expert's action with probability beta_n, else the learner's;
  (b) roll out pi_n for ``episodes_per_round`` episodes and keep every visited state;
  (c) label those states with the expert: D_n = {(s, pi*(s))};
  (d) aggregate D <- D u D_n;
  (e) retrain pi_hat_{n+1} *from scratch* on all of D with behaviour cloning (:func:`irlhf.imitation.bc.train`).

With beta_0 = 1 (the "linear" and "exponential" schedules) round 0 is pure expert, i.e. plain BC data.
There is no learner before round 0: if beta_0 < 1 (a "constant" schedule below 1) its non-expert steps take
uniformly random actions from the same Generator.

The expert is any callable mapping a batch of observations (N, *obs_shape) to a batch of actions (a
scripted controller, a trained policy, or a person behind a labelling UI). It is only ever called on
batches: a (1, *obs_shape) batch on the steps where the coin picks it (its answer is executed and is that
state's label), and once per episode on the batch of all the other visited states (their labels).

    result = dagger.train("CartPole-v1", make_expert("CartPole-v1"), dagger.Config())
    result.policy(obs_batch)      # the learner after the last round
    result.dataset                # Transitions: every visited state, labelled with the expert's action
    result.history                # one dict per round
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from irlhf.core.config import BaseConfig, Fraction, PositiveInt, Seed, check_number
from irlhf.core.errors import ValidationError, describe
from irlhf.data.types import Trajectory, Transitions
from irlhf.envs.gym import checked_actions, make_env
from irlhf.envs.spaces import random_action, resolve_spaces
from irlhf.imitation import bc
from irlhf.nn.policies import Policy

__all__ = ["Config", "Result", "beta_schedule", "train"]

#: The per-round behaviour-cloning settings DAgger uses by default: bc's own (200 epochs of batch 64 on all the
#: data). The earlier 30 epochs of batch 256 early-stopped on a 10% split underfit the first rounds' few hundred
#: states (docs/RESULTS.md, "DAgger in the classic-control table"), though 10-20x cheaper on large aggregates.
DEFAULT_BC = bc.Config()


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """DAgger settings.

    rounds: number of collect-label-aggregate-retrain rounds (>= 1); the returned policy is trained after
      the last one.
    episodes_per_round: rollouts of the mixture policy per round (>= 1).
    schedule: how beta_n (the probability that the expert's action is executed at a step of round n,
      n = 0, 1, ...) decays:
        "linear":      beta_n = max(0, 1 - n / beta_rounds)    (1 at round 0, 0 from round beta_rounds on)
        "exponential": beta_n = decay ** n                    (1 at round 0)
        "constant":    beta_n = beta                           (every round, round 0 included)
    beta_rounds: rounds of the linear ramp (>= 1); default 5.
    decay: ratio of the exponential schedule, in [0, 1]; default 0.5.
    beta: the constant schedule's value, in [0, 1]; default 0.5.
    bc: the behaviour-cloning settings of each retraining (``irlhf.imitation.bc.Config``; a dict is
      converted); default ``DEFAULT_BC`` (= ``bc.Config()``: 200 epochs of batch 64, no validation split).
    max_steps: cut each rollout after this many steps (None = the environment's own time limit).
    seed: seeds the per-step coins (numpy Generator) and the resets (episode k of round n resets with
      seed + n * episodes_per_round + k); same seed and bc.seed, same dataset and same policy.
    progress: show a progress bar over rounds.
    """

    rounds: PositiveInt = 10
    episodes_per_round: PositiveInt = 4
    schedule: Literal["linear", "exponential", "constant"] = "linear"
    beta_rounds: PositiveInt = 5
    decay: Fraction = 0.5
    beta: Fraction = 0.5
    bc: bc.Config = DEFAULT_BC
    max_steps: PositiveInt | None = None
    seed: Seed = 0
    progress: bool = False

    def validate(self) -> None:
        if isinstance(self.bc, dict):
            object.__setattr__(self, "bc", bc.Config.from_dict(self.bc))
        if not isinstance(self.bc, bc.Config):
            raise ValidationError(f"bc={describe(self.bc)}: expected an irlhf.imitation.bc.Config (or a dict of "
                                  "its fields)")


@dataclasses.dataclass
class Result:
    """policy: the learner trained on the full aggregate after the last round (``bc`` ``Policy``);
    history: one dict per round (round, beta, n_samples (aggregate size after the round), n_new,
    expert_fraction (share of the round's steps that executed the expert's action), rollout_return_mean,
    bc_best_val_loss (None without a validation split), bc_best_epoch, seconds (since the start));
    dataset: ``Transitions`` of every visited state with the expert's action as ``acts`` (``rews`` None:
    the rewards belong to the executed actions, which are in ``rollouts``);
    rollouts: per round, the executed ``Trajectory`` list (``acts`` = the actions taken, ``rews``);
    bc_results: the ``bc.Result`` of each round's retraining."""

    policy: Policy
    history: list[dict]
    dataset: Transitions
    rollouts: list[list[Trajectory]]
    bc_results: list[bc.Result]
    config: Config


def beta_schedule(config: Config, n: int) -> float:
    """beta_n, the probability that round ``n`` (0-based) executes the expert's action at a step."""
    if not isinstance(config, Config):
        raise ValidationError(f"config: {type(config).__name__}; expected irlhf.imitation.dagger.Config")
    check_number("n", n, low=0, integer=True)
    if config.schedule == "linear":
        return float(max(0.0, 1.0 - n / config.beta_rounds))
    if config.schedule == "exponential":
        return float(config.decay ** n)
    return float(config.beta)


def _rollout(env: gym.Env, expert: Any, learner: Any, beta: float, rng: np.random.Generator, reset_seed: int,
             max_steps: int | None) -> tuple[Trajectory, np.ndarray, int]:
    """One episode of the per-step mixture. Returns the executed trajectory, the expert labels of its
    visited states (one per action), and how many steps executed the expert's action."""
    space = env.action_space
    obs, _ = env.reset(seed=reset_seed)
    observations, executed, rewards, from_expert, labels = [obs], [], [], [], []
    terminated = truncated = False
    while not (terminated or truncated):
        batch = np.asarray(obs)[None]
        if rng.random() < beta:
            action = checked_actions(expert, batch, space, "expert")[0]
            from_expert.append(True)
        else:
            if learner is None:  # round 0 with beta_0 < 1: no learner yet, act uniformly at random
                action = random_action(space, rng)
            else:
                action = checked_actions(learner, batch, space, "policy")[0]
            from_expert.append(False)
        labels.append(action)
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        executed.append(action)
        rewards.append(float(reward))
        if max_steps is not None and len(executed) >= max_steps:
            truncated = True
    traj = Trajectory(obs=np.stack(observations), acts=np.stack(executed),
                      rews=np.asarray(rewards, dtype=np.float64), terminal=bool(terminated))
    mask = ~np.asarray(from_expert, dtype=bool)
    labels_arr = np.stack(labels)
    if mask.any():  # label the learner's states with one batched expert query
        labels_arr[mask] = checked_actions(expert, traj.obs[:-1][mask], space, "expert")
    return traj, labels_arr, int((~mask).sum())


def train(source: str, expert: Any, config: Config | None = None,
          callback: Callable[[dict, Policy], bool | None] | None = None) -> Result:
    """Run DAgger on the gymnasium environment ``source`` (an id) with the queryable ``expert`` (callable:
    batch of observations -> batch of actions; the interactive stand-in for the data of other learners).
    callback(record, policy) is called after every round with its history record and that round's learner;
    returning True stops after that round; its time is left out of the history's "seconds"."""
    config = Config() if config is None else config
    if not isinstance(config, Config):
        raise ValidationError(f"config: {type(config).__name__}; expected irlhf.imitation.dagger.Config")
    if not callable(expert):
        raise ValidationError(f"expert={describe(expert)}: expected a callable, batch of observations -> actions")
    env = make_env(source)  # unknown id -> ValidationError
    rng = np.random.default_rng(config.seed)
    spaces_pair = (env.observation_space, env.action_space)
    resolve_spaces(spaces_pair)  # unsupported spaces -> ValidationError
    obs_parts, label_parts, next_parts, done_parts = [], [], [], []
    rollouts: list[list[Trajectory]] = []
    bc_results: list[bc.Result] = []
    history: list[dict] = []
    learner = None
    t0, callback_seconds = time.perf_counter(), 0.0
    bar = tqdm(total=config.rounds, desc="dagger", disable=not config.progress, leave=False)
    try:
        for n in range(config.rounds):
            beta = beta_schedule(config, n)
            round_trajs, expert_steps, new = [], 0, 0
            for k in range(config.episodes_per_round):
                traj, labels, n_expert = _rollout(env, expert, learner, beta, rng,
                                                  config.seed + n * config.episodes_per_round + k, config.max_steps)
                round_trajs.append(traj)
                expert_steps += n_expert
                new += len(traj)
                obs_parts.append(traj.obs[:-1])
                next_parts.append(traj.obs[1:])
                label_parts.append(labels)
                done = np.zeros(len(traj), dtype=bool)
                if traj.terminal and len(traj):
                    done[-1] = True
                done_parts.append(done)
            rollouts.append(round_trajs)
            dataset = Transitions(obs=np.concatenate(obs_parts), acts=np.concatenate(label_parts),
                                  next_obs=np.concatenate(next_parts), dones=np.concatenate(done_parts))
            fit = bc.train(spaces_pair, dataset, config.bc)  # from scratch on the whole aggregate
            bc_results.append(fit)
            learner = fit.policy
            best = fit.history[fit.best_epoch - 1]
            record = {
                "round": n,
                "beta": beta,
                "n_samples": len(dataset),
                "n_new": new,
                "expert_fraction": expert_steps / max(new, 1),
                "rollout_return_mean": float(np.mean([t.rews.sum() for t in round_trajs])),
                "bc_best_val_loss": best["val_loss"],
                "bc_best_epoch": fit.best_epoch,
                "seconds": time.perf_counter() - t0 - callback_seconds,
            }
            history.append(record)
            bar.update(1)
            bar.set_postfix(ret=f"{record['rollout_return_mean']:.1f}", beta=f"{beta:.2f}", refresh=False)
            if callback is not None:
                c0 = time.perf_counter()
                stop = bool(callback(record, learner))
                callback_seconds += time.perf_counter() - c0
                if stop:
                    break
    finally:
        bar.close()
        env.close()
    return Result(policy=learner, history=history, dataset=dataset, rollouts=rollouts, bc_results=bc_results,
                  config=config)
