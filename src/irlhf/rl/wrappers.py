"""Replace an environment's reward by a learned one, keeping the true reward for logging.

    env = RewardWrapper(gym.make("CartPole-v1"), lambda obs, act, next_obs: -abs(next_obs[2]))
    venv = make_vec_env("CartPole-v1", n_envs=8, wrapper_class=RewardWrapper,
                        wrapper_kwargs=dict(reward_fn=fn))             # per sub-env, after SB3's Monitor
    venv = RewardVecEnvWrapper(model.get_env(), batch_fn, record=True)  # batched: one call for all sub-envs

``RewardWrapper`` (a ``gymnasium.Wrapper``) calls ``reward_fn(obs, action, next_obs) -> float`` once per step
and puts the environment's own reward in ``info["true_reward"]``. SB3's ``make_vec_env`` applies
``wrapper_class`` *outside* its ``Monitor``, so the Monitor (and ``model.ep_info_buffer``) keeps reporting
true episode returns.

``RewardVecEnvWrapper`` (an SB3 ``VecEnvWrapper``) does the same for a whole vector env with one batched call
``reward_fn(obs (n, ...), actions (n, ...), next_obs (n, ...)) -> (n,)``; at an episode end ``next_obs`` is
the true last observation (``info["terminal_observation"]``), not the reset one. With ``record=True`` it also
keeps the most recent finished episodes (observations, actions, true rewards, terminated-or-truncated) as
``Trajectory`` objects in ``.episodes``: the rollouts that preference queries are cut from, at no extra
environment steps. With ``keep_transitions=N`` it keeps the last N transitions (obs, actions, next_obs,
terminated) in a ring buffer, ``recent_transitions()``: the policy samples adversarial IRL trains its
discriminator on.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from irlhf.core.errors import ValidationError
from irlhf.data.types import Trajectory

__all__ = ["RewardWrapper", "RewardVecEnvWrapper"]


class RewardWrapper(gym.Wrapper):
    """``reward = reward_fn(obs, action, next_obs)``; the env's reward goes to ``info["true_reward"]``."""

    def __init__(self, env: gym.Env, reward_fn: Callable[[Any, Any, Any], float]):
        if not callable(reward_fn):
            raise ValidationError(f"reward_fn={reward_fn!r}: expected a callable (obs, action, next_obs) -> float")
        super().__init__(env)
        self.reward_fn = reward_fn
        self._obs: Any = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        self._obs = obs
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        if self._obs is None:
            raise ValidationError("RewardWrapper.step before reset: call reset() first")
        next_obs, true_reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        info["true_reward"] = float(true_reward)
        reward = float(self.reward_fn(self._obs, action, next_obs))
        self._obs = next_obs
        return next_obs, reward, terminated, truncated, info


class RewardVecEnvWrapper(VecEnvWrapper):
    """Batched reward replacement for an SB3 ``VecEnv`` (see the module docstring).

    reward_fn: (obs (n, ...), actions (n, ...), next_obs (n, ...)) -> (n,) rewards.
    record: keep the last ``max_episodes`` finished episodes in ``.episodes`` (a deque of ``Trajectory``
    with true rewards; ``terminal`` False when the episode was cut by a time limit).
    keep_transitions: capacity of the transition ring buffer (0: none kept).
    with_dones: call ``reward_fn(obs, actions, next_obs, terminated)`` with a 4th (n,) bool array, True where
    the episode really ended (not a time-limit cut): rewards that bootstrap on s' (AIRL's h(s')) need it.
    ``episode_steps``: (n,) ints, each env's step t in its episode of the transition being scored (0 after a
    reset), for a reward_fn that depends on time.
    """

    def __init__(self, venv: VecEnv, reward_fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray], *,
                 record: bool = False, max_episodes: int = 200, keep_transitions: int = 0, with_dones: bool = False):
        if not callable(reward_fn):
            raise ValidationError(f"reward_fn={reward_fn!r}: expected a callable (obs, actions, next_obs) -> (n,)")
        super().__init__(venv)
        self.reward_fn = reward_fn
        self.record = record
        self.episodes: collections.deque[Trajectory] = collections.deque(maxlen=max_episodes)
        self.finished = 0  # episodes finished since construction
        self._obs: np.ndarray | None = None
        self._actions: np.ndarray | None = None
        self._buffers: list[tuple[list, list, list]] = [([], [], []) for _ in range(venv.num_envs)]
        if isinstance(keep_transitions, bool) or not isinstance(keep_transitions, int) or keep_transitions < 0:
            raise ValidationError(f"keep_transitions={keep_transitions!r}: expected an int >= 0")
        self.keep_transitions = keep_transitions
        self.with_dones = bool(with_dones)
        self._ring: dict[str, np.ndarray] | None = None
        self._ring_pos = 0  # transitions written so far (the slot is pos % capacity)
        self.episode_steps = np.zeros(venv.num_envs, dtype=np.int64)

    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        self._obs = np.asarray(obs)
        self._buffers = [([], [], []) for _ in range(self.num_envs)]
        self.episode_steps[:] = 0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)
        self.venv.step_async(actions)

    def step_wait(self) -> Any:
        obs, true_rewards, dones, infos = self.venv.step_wait()
        obs = np.asarray(obs)
        next_obs = obs.copy()
        for i in np.flatnonzero(dones):
            if "terminal_observation" in infos[i]:
                next_obs[i] = infos[i]["terminal_observation"]
        terminated = np.array([bool(d) and not info.get("TimeLimit.truncated", False) for d, info in zip(dones, infos)])
        args = (self._obs, self._actions, next_obs) + ((terminated,) if self.with_dones else ())
        rewards = np.asarray(self.reward_fn(*args), dtype=np.float32).reshape(-1)
        if rewards.shape != (self.num_envs,):
            raise ValidationError(f"reward_fn output: shape {rewards.shape}; expected ({self.num_envs},)")
        for i, info in enumerate(infos):
            info["true_reward"] = float(true_rewards[i])
        if self.record:
            self._record(next_obs, true_rewards, dones, infos)
        if self.keep_transitions:
            self._keep(self._obs, self._actions, next_obs, terminated)
        self._obs = obs
        self.episode_steps += 1
        self.episode_steps[np.asarray(dones, dtype=bool)] = 0  # the env auto-reset: obs starts a new episode
        return obs, rewards, dones, infos

    def _record(self, next_obs: np.ndarray, true_rewards: np.ndarray, dones: np.ndarray, infos: list) -> None:
        for i in range(self.num_envs):
            observations, actions, rewards = self._buffers[i]
            observations.append(self._obs[i])
            actions.append(self._actions[i])
            rewards.append(float(true_rewards[i]))
            if dones[i]:
                truncated = bool(infos[i].get("TimeLimit.truncated", False))
                self.episodes.append(Trajectory(obs=np.stack([*observations, next_obs[i]]), acts=np.stack(actions),
                                                rews=np.asarray(rewards), terminal=not truncated))
                self.finished += 1
                self._buffers[i] = ([], [], [])

    def _keep(self, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray, terminated: np.ndarray) -> None:
        batch = {"obs": obs, "acts": actions, "next_obs": next_obs, "dones": terminated}
        if self._ring is None:
            self._ring = {k: np.zeros((self.keep_transitions, *v.shape[1:]), dtype=v.dtype) for k, v in batch.items()}
        slots = (self._ring_pos + np.arange(self.num_envs)) % self.keep_transitions
        for k, v in batch.items():
            self._ring[k][slots] = v
        self._ring_pos += self.num_envs

    def recent_transitions(self, n: int | None = None) -> dict[str, np.ndarray]:
        """The last ``n`` (default: all kept) transitions, oldest first: obs (n, ...), acts (n, ...), next_obs
        (n, ...) (the true last observation at an episode end) and dones (n,) bool (True only for a real
        termination, not a time-limit cut). Copies."""
        if not self.keep_transitions:
            raise ValidationError("recent_transitions: this wrapper keeps none; pass keep_transitions=N")
        held = min(self._ring_pos, self.keep_transitions)
        n = held if n is None else min(int(n), held)
        idx = (self._ring_pos - n + np.arange(n)) % self.keep_transitions
        if self._ring is None:
            raise ValidationError("recent_transitions: no steps taken yet")
        return {k: v[idx].copy() for k, v in self._ring.items()}
