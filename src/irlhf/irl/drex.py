"""D-REX (Brown, Goo & Niekum 2019, "Better-than-Demonstrator Imitation Learning via Automatically-Ranked
Demonstrations").

T-REX needs ranked demonstrations; D-REX makes the ranking itself from unranked ones:

1. behaviour-clone the demonstrations (``irlhf.rl.pretrain.fit_policy``) into pi_BC;
2. for each noise level eps of a schedule (default 1.0, 0.75, 0.5, 0.25, 0.02) roll out K episodes of the
   eps-greedy pi_BC: with probability eps a uniformly random action, else pi_BC's (``noise_rollouts``);
3. rank the rollouts by noise, less noise = better (the noisiest level gets rank 0), with the demonstrations
   themselves ranked above every level when ``include_demos``;
4. T-REX on that ranking (``irlhf.irl.trex``: snippet Bradley-Terry reward learning, then RL on the reward).

The premise: more noise, lower true return, so the learned reward explains what the demonstrator did better
than noise, and the agent trained on it can extrapolate past pi_BC and the demonstrations.

    result = drex.train("CartPole-v1", demos, drex.Config(total_timesteps=50_000))
    result.bc_policy, result.ranked.summary, result.reward(obs, acts, next_obs), result.policy(obs)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import numpy as np

from irlhf.core.config import Check, PositiveInt, Widths
from irlhf.core.errors import ValidationError
from irlhf.data.demos import check_demos, demo_arrays
from irlhf.data.types import Trajectory
from irlhf.envs.gym import checked_actions, collect_demos
from irlhf.envs.spaces import random_action
from irlhf.irl import trex
from irlhf.rl.pretrain import fit_policy, resolve_bc_warm_start
from irlhf.rl.sb3 import env_spaces

__all__ = ["Config", "noise_ranks", "noise_rollouts", "train"]


def _is_levels(value: Any) -> bool:
    return (isinstance(value, (tuple, list)) and len(value) >= 1
            and all(not isinstance(v, bool) and isinstance(v, (int, float)) and 0 <= v <= 1 for v in value)
            and len(set(value)) == len(value))


@dataclasses.dataclass(frozen=True)
class Config(trex.Config):
    """D-REX settings: ``irlhf.irl.trex.Config`` (reward learning and RL) plus

    noise_levels [(1.0, 0.75, 0.5, 0.25, 0.02)]: the epsilon schedule, distinct numbers in [0, 1].
    rollouts_per_level [5]: K episodes of the eps-greedy BC policy per level.
    include_demos [True]: rank the demonstrations above every noise level (they must then be Trajectory).
    bc_epochs [100] / bc_hidden_sizes [(64, 64)]: behaviour cloning (``fit_policy``, BC's other defaults).
    bc_warm_start [None = on for PPO, off for SAC]: start PPO's actor from that BC policy
      (``irlhf.rl.sb3.ppo_from_bc``, as GAIL's warm start) instead of a random one; from a random start PPO
      never reaches MountainCar's flag (docs/RESULTS.md, issue 24).
    """

    noise_levels: Annotated[tuple, Check(_is_levels, "distinct numbers in [0, 1]")] = (1.0, 0.75, 0.5, 0.25, 0.02)
    rollouts_per_level: PositiveInt = 5
    include_demos: bool = True
    bc_epochs: PositiveInt = 100
    bc_hidden_sizes: Widths = (64, 64)
    bc_warm_start: bool | None = None

    def validate(self) -> None:
        super().validate()
        object.__setattr__(self, "bc_warm_start", resolve_bc_warm_start(self.bc_warm_start, self.algo))
        object.__setattr__(self, "noise_levels", tuple(float(v) for v in self.noise_levels))
        if len(self.noise_levels) < 2 and not self.include_demos:
            raise ValidationError(f"noise_levels={list(self.noise_levels)} with include_demos=False: one rank only; "
                                  "expected at least two noise levels")


def noise_ranks(noise_levels: Sequence[float]) -> dict[float, int]:
    """noise level -> rank: the noisiest 0, the least noisy len - 1 (less noise = better)."""
    return {float(eps): k for k, eps in enumerate(sorted(noise_levels, reverse=True))}


def noise_rollouts(env_id: str, policy: Callable[[np.ndarray], np.ndarray], noise_levels: Sequence[float],
                   n_per_level: int, seed: int = 0) -> trex.RankedDemos:
    """``n_per_level`` episodes of the eps-greedy ``policy`` per noise level, ranked by ``noise_ranks``. Every
    level resets with seeds seed .. seed + n_per_level - 1; its noise draws come from its own seeded stream."""
    _, act_space = env_spaces(env_id)
    pairs: list[tuple[Trajectory, int]] = []
    for eps, rank in noise_ranks(noise_levels).items():
        rng = np.random.default_rng([seed, rank])

        def noisy(obs: np.ndarray, eps: float = eps, rng: np.random.Generator = rng) -> np.ndarray:
            acts = checked_actions(policy, obs, act_space, "policy")
            for i in np.flatnonzero(rng.random(len(obs)) < eps):
                acts[i] = random_action(act_space, rng)
            return acts

        pairs += [(t, rank) for t in collect_demos(env_id, noisy, n_per_level, seed=seed)]
    return trex.read_ranked(pairs)


def train(source: str, data: Any, config: Config | None = None, *,
          callback: Callable[[dict, Any], bool | None] | None = None) -> trex.Result:
    """D-REX on ``source`` (a gymnasium id) from unranked demonstrations ``data`` (a list of Trajectory; a
    Transitions when ``include_demos=False``). Returns ``irlhf.irl.trex.Result`` with ``bc_policy`` set;
    callback as ``trex.train``'s."""
    config = Config() if config is None else config
    if not isinstance(config, Config):
        raise ValidationError(f"config: {type(config).__name__}; expected irlhf.irl.drex.Config")
    if not isinstance(source, str):
        raise ValidationError(f"env={source!r}: expected a gymnasium environment id (D-REX rolls out in it)")
    obs_space, act_space = env_spaces(source)
    obs, acts = demo_arrays(data)
    acts = check_demos(obs, acts, obs_space, act_space)
    demos = [data] if isinstance(data, Trajectory) else data
    if config.include_demos and not (isinstance(demos, Sequence) and all(isinstance(t, Trajectory) for t in demos)):
        raise ValidationError(f"data: {type(data).__name__}; include_demos=True ranks the demonstrations, expected "
                              "a list of Trajectory")
    bc = fit_policy(obs_space, act_space, obs, acts, hidden_sizes=config.bc_hidden_sizes, epochs=config.bc_epochs,
                    seed=config.seed, progress=config.progress, desc="d-rex bc")
    ranked = noise_rollouts(source, bc.policy, config.noise_levels, config.rollouts_per_level, seed=config.seed)
    pairs = list(zip(ranked.trajectories, ranked.ranks.tolist()))
    if config.include_demos:
        pairs += [(t, len(config.noise_levels)) for t in demos]
    result = trex.train(source, pairs, config, callback=callback, name="d-rex",
                        warm_start=bc.policy if config.bc_warm_start else None)
    return dataclasses.replace(result, bc_policy=bc.policy)
