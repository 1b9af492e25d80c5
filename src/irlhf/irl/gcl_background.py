"""Guided cost learning's background set (``irlhf.irl.gcl``): the sampler that records each episode's
log-likelihood under the policies that generated it, and z over all past policies (Finn et al. 2016, section 4).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from irlhf.core.errors import ValidationError
from irlhf.data.types import Trajectory
from irlhf.rl.sb3 import action_log_prob
from irlhf.rl.wrappers import RewardVecEnvWrapper

class PastPolicyMixture:
    """z over all past policies (Finn et al. 2016, section 4): every cost phase k adds a component q_k, the
    policy at that phase, weighted by the n_k episodes it drew (the balance heuristic; equal n_k give the
    paper's uniform 1/K mixture):

        log z(tau) = logsumexp_k (log q_k(tau) + log n_k) - log sum_k n_k.

    log q_k(tau_j) is computed once per pair and cached: a new episode under every earlier phase's policy
    (``log_q(k, episodes)``, the caller evaluates its k-th snapshot), every older episode under the new phase's
    policy (the current policy's ``cur_pool`` the caller has anyway). On its own phase an episode's density is
    the one recorded when it was generated (its exact proposal; PPO updates within a phase).
    """

    def __init__(self, log_q: Callable[[int, list], np.ndarray], n_demos: int):
        self.log_q = log_q
        self.pool = np.zeros((0, 0))  # (episodes, phases) log q_k(tau_j), nats
        self.demos = np.zeros((n_demos, 0))  # (demos, phases)
        self.counts: list[int] = []  # n_k

    def add_phase(self, new_episodes: list, new_log_q: np.ndarray, cur_pool: np.ndarray,
                  cur_demo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Record phase k = len(counts): ``new_episodes`` (n,) drawn during it with their recorded log q (n,);
        ``cur_pool`` (old + n,) and ``cur_demo`` (demos,) under the current policy. Returns log z of the pool
        (old + n,) and of the demos (demos,)."""
        n_new = len(new_episodes)
        if len(cur_pool) != len(self.pool) + n_new or len(new_log_q) != n_new or len(cur_demo) != len(self.demos):
            raise ValidationError(f"PastPolicyMixture.add_phase: {len(cur_pool)} pool densities for "
                                  f"{len(self.pool)} + {n_new} episodes; expected one per episode")
        earlier = np.zeros((n_new, len(self.counts)))
        if n_new:
            for k in range(len(self.counts)):
                earlier[:, k] = self.log_q(k, new_episodes)
        column = np.concatenate([cur_pool[:len(self.pool)], new_log_q])
        self.pool = np.column_stack([np.vstack([self.pool, earlier]), column])
        self.demos = np.column_stack([self.demos, cur_demo])
        self.counts.append(n_new)
        counts = np.asarray(self.counts, dtype=np.float64)
        with np.errstate(divide="ignore"):  # a phase that drew nothing has weight 0
            log_w = np.log(counts) - math.log(counts.sum())
        return _logsumexp_rows(self.pool + log_w), _logsumexp_rows(self.demos + log_w)


def _logsumexp_rows(x: np.ndarray) -> np.ndarray:
    return torch.logsumexp(torch.as_tensor(x), dim=1).numpy()


def make_sampler(venv: Any, reward_fn: Callable, model: Any, max_episodes: int) -> Any:
    """A RewardVecEnvWrapper (reward_fn(obs, acts, next_obs, terminated)) that also sums log pi(a_t | s_t) of
    each step's acting policy (at generation time) and hands finished episodes out as (Trajectory, log_q)
    through ``take()``."""
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
