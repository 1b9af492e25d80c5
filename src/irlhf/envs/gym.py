"""Gymnasium helpers: scripted experts (trained ones: ``irlhf.rl.experts``), demonstration collection, evaluation and scores.

A *policy* (and an expert) is any callable mapping a batch of observations ``(N, *obs_shape)``
to a batch of actions: ``(N,)`` integers for a ``Discrete`` action space, ``(N, *act_shape)``
floats for a ``Box`` one.

```python
from irlhf.envs.gym import SCRIPTED_EXPERTS, collect_demos, evaluate
expert = SCRIPTED_EXPERTS["CartPole-v1"]       # or irlhf.rl.experts.make_expert(env_id, kind=...)
demos = collect_demos("CartPole-v1", expert, n_episodes=4, seed=0)   # list[Trajectory]
mean, std = evaluate("CartPole-v1", expert, n_episodes=20, seed=0)
```

Seeding: episode ``k`` of ``collect_demos`` / ``evaluate`` starts from ``env.reset(seed=seed + k)``,
so the two see the same initial states for the same seed, and a plain single-env loop that
resets with ``seed + k`` reproduces ``evaluate`` exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

from irlhf.core.errors import ValidationError, describe
from irlhf.core.seeding import as_generator
from irlhf.data.types import Trajectory
from irlhf.envs.pointmass import ENV_ID as POINTMASS_ID, reaching_expert  # importing registers the env

Policy = Callable[[np.ndarray], np.ndarray]

_MAX_VECTOR_ENVS = 32  # evaluate() runs episodes in chunks of at most this many sub-envs


# ---------------------------------------------------------------------------------------------
# Scripted experts (hand-written controllers; no training). All are deterministic.
# ---------------------------------------------------------------------------------------------


def _cartpole_expert(obs: np.ndarray) -> np.ndarray:
    """Linear controller on (x, x_dot, theta, theta_dot): push toward the side the pole falls to."""
    score = 0.01 * obs[:, 0] + 0.1 * obs[:, 1] + 1.0 * obs[:, 2] + 0.5 * obs[:, 3]
    return (score > 0).astype(np.int64)


def _mountaincar_expert(obs: np.ndarray) -> np.ndarray:
    """Energy pumping: push (action 2 = right, 0 = left) in the direction of the velocity."""
    return np.where(obs[:, 1] >= 0, 2, 0).astype(np.int64)


def _acrobot_expert(obs: np.ndarray) -> np.ndarray:
    """Pump energy: torque (action 2 = +1, 0 = -1) along the second joint's angular velocity,
    slightly counter to the first joint's (obs = cos t1, sin t1, cos t2, sin t2, dt1, dt2)."""
    return np.where(obs[:, 5] - 0.25 * obs[:, 4] > 0, 2, 0).astype(np.int64)


def _pendulum_expert(obs: np.ndarray) -> np.ndarray:
    """Energy-based swing-up, then a saturated PD stabiliser once the rod is near upright.

    Pendulum-v1 (g=10, m=1, l=1, theta=0 upright) has rod energy E = thdot**2 / 6 + 5 cos(theta),
    5 at rest upright; far from the top apply full torque along (5 - E) * thdot.
    """
    cos, sin, thdot = obs[:, 0], obs[:, 1], obs[:, 2]
    theta = np.arctan2(sin, cos)
    energy = thdot**2 / 6.0 + 5.0 * cos
    swing = 2.0 * np.sign(thdot * (5.0 - energy))
    swing = np.where(thdot == 0, 2.0, swing)  # kick off from rest
    stabilise = np.clip(-10.0 * theta - 2.0 * thdot, -2.0, 2.0)
    torque = np.where(cos > 0.85, stabilise, swing)
    return torque[:, None].astype(np.float32)


def _lunarlander_expert(obs: np.ndarray) -> np.ndarray:
    """Gymnasium's own LunarLander heuristic (``gymnasium.envs.box2d.lunar_lander.heuristic``), batched.

    obs = (x, y, vx, vy, angle, angular velocity, leg1 contact, leg2 contact); actions 0 noop,
    1 left engine, 2 main engine, 3 right engine.
    """
    x, y, vx, vy, angle, omega = (obs[:, i] for i in range(6))
    angle_targ = np.clip(x * 0.5 + vx * 1.0, -0.4, 0.4)  # lean toward the pad, at most 0.4 rad
    hover_targ = 0.55 * np.abs(x)  # the further out, the higher to hover
    angle_todo = (angle_targ - angle) * 0.5 - omega * 1.0
    hover_todo = (hover_targ - y) * 0.5 - vy * 0.5
    contact = (obs[:, 6] != 0) | (obs[:, 7] != 0)
    angle_todo = np.where(contact, 0.0, angle_todo)
    hover_todo = np.where(contact, -vy * 0.5, hover_todo)  # after touch-down only damp the fall
    action = np.zeros(len(obs), dtype=np.int64)
    action[angle_todo > 0.05] = 1
    action[angle_todo < -0.05] = 3
    action[(hover_todo > np.abs(angle_todo)) & (hover_todo > 0.05)] = 2
    return action


#: Scripted experts by env id. Mean (std) undiscounted return over 10 episodes, reset seeds 0..9
#: (measured with ``evaluate(env_id, make_expert(env_id), n_episodes=10, seed=0)``):
#: CartPole-v1 500.0 (0.0); MountainCar-v0 -120.3 (3.3); Acrobot-v1 -74.2 (8.0);
#: Pendulum-v1 -132.3 (84.4); LunarLander-v3 265.4 (37.1); irlhf/PointMassReach-v0 -11.1 (5.1) (random -46.0).
SCRIPTED_EXPERTS: dict[str, Policy] = {
    "CartPole-v1": _cartpole_expert,
    "MountainCar-v0": _mountaincar_expert,
    "Acrobot-v1": _acrobot_expert,
    "Pendulum-v1": _pendulum_expert,
    "LunarLander-v3": _lunarlander_expert,
    POINTMASS_ID: reaching_expert,
}


# ---------------------------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------------------------


def make_env(env_id: str) -> gym.Env:
    """``gymnasium.make(env_id)`` with unknown or broken ids turned into a ValidationError."""
    if not isinstance(env_id, str):
        raise ValidationError(f"env_id={describe(env_id)}: expected a registered gymnasium id (a str)")
    try:
        return gym.make(env_id)
    except gym.error.Error as exc:
        raise ValidationError(f"env_id={env_id!r}: not a usable gymnasium environment ({exc})") from None


def _check_n_episodes(n_episodes: object) -> int:
    if not isinstance(n_episodes, (int, np.integer)) or isinstance(n_episodes, bool) or n_episodes < 1:
        raise ValidationError(f"n_episodes={n_episodes!r}: expected an int >= 1")
    return int(n_episodes)


def _check_seed(seed: object) -> int:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValidationError(f"seed={seed!r}: expected a non-negative int")
    return int(seed)


def checked_actions(policy: Policy, obs: np.ndarray, space: gym.Space, who: str) -> np.ndarray:
    """Call ``policy`` on a batch and check its output against ``space``; return a numpy array."""
    n = len(obs)
    raw = policy(obs)
    if hasattr(raw, "detach"):  # a torch tensor
        raw = raw.detach().cpu().numpy()
    actions = np.asarray(raw)
    if isinstance(space, gym.spaces.Discrete):
        if actions.shape != (n,) or not np.issubdtype(actions.dtype, np.integer):
            raise ValidationError(
                f"{who} output: {describe(actions)} (shape {actions.shape}, dtype {actions.dtype}) for {n} "
                f"observations; expected integer actions of shape ({n},) for action space {space}"
            )
        low, high = int(space.start), int(space.start + space.n)
        if actions.min() < low or actions.max() >= high:
            raise ValidationError(
                f"{who} output: actions {describe(actions)} outside [{low}, {high}); expected valid actions of {space}"
            )
        return actions.astype(np.int64)
    if isinstance(space, gym.spaces.Box):
        expected = (n, *space.shape)
        if actions.shape != expected or not np.issubdtype(actions.dtype, np.floating):
            raise ValidationError(
                f"{who} output: {describe(actions)} (shape {actions.shape}, dtype {actions.dtype}) for {n} "
                f"observations; expected float actions of shape {expected} for action space {space}"
            )
        if not np.all(np.isfinite(actions)):
            raise ValidationError(f"{who} output: non-finite actions {describe(actions)}; expected finite floats")
        return actions.astype(space.dtype)
    raise ValidationError(f"action space {space}: unsupported; expected Discrete or Box")


# ---------------------------------------------------------------------------------------------
# Demonstrations and evaluation
# ---------------------------------------------------------------------------------------------


def collect_demos(env_id: str, expert: Policy, n_episodes: int = 1, seed: int = 0) -> list[Trajectory]:
    """Roll out ``expert`` for ``n_episodes`` episodes; episode ``k`` resets with ``seed + k``.

    Returns one ``Trajectory`` per episode with observations as the env gives them, actions
    (int64 for ``Discrete``), rewards, and ``terminal`` = the episode terminated (not truncated).
    Same arguments, identical demos.
    """
    n_episodes = _check_n_episodes(n_episodes)
    seed = _check_seed(seed)
    env = make_env(env_id)
    demos = []
    try:
        for k in range(n_episodes):
            obs, _ = env.reset(seed=seed + k)
            observations, actions, rewards = [obs], [], []
            terminated = truncated = False
            while not (terminated or truncated):
                action = checked_actions(expert, np.asarray(obs)[None], env.action_space, "expert")[0]
                obs, reward, terminated, truncated, _ = env.step(action)
                observations.append(obs)
                actions.append(action)
                rewards.append(float(reward))
            demos.append(
                Trajectory(
                    obs=np.stack(observations),
                    acts=np.stack(actions),
                    rews=np.asarray(rewards, dtype=np.float64),
                    terminal=bool(terminated),
                )
            )
    finally:
        env.close()
    return demos


def _episode_returns(env_id: str, policy: Policy, n_episodes: int, seed: int) -> np.ndarray:
    """Undiscounted return of each sub-env's first episode; sub-env ``k`` resets with ``seed + k``."""
    returns = np.zeros(n_episodes, dtype=np.float64)
    make_env(env_id).close()  # turns an unknown id into a ValidationError
    for start in range(0, n_episodes, _MAX_VECTOR_ENVS):
        count = min(_MAX_VECTOR_ENVS, n_episodes - start)
        envs = gym.vector.SyncVectorEnv(
            [lambda: gym.make(env_id) for _ in range(count)],
            autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP,
        )
        try:
            obs, _ = envs.reset(seed=[seed + start + i for i in range(count)])
            running = np.ones(count, dtype=bool)
            total = np.zeros(count, dtype=np.float64)
            while running.any():
                actions = checked_actions(policy, obs, envs.single_action_space, "policy")
                obs, rewards, terminated, truncated, _ = envs.step(actions)
                # Only live sub-envs count: with next-step autoreset, the step after a done is a
                # reset step (reward 0, not part of the first episode), and later episodes are ignored.
                total += np.where(running, rewards, 0.0)
                running &= ~(terminated | truncated)
            returns[start : start + count] = total
        finally:
            envs.close()
    return returns


def evaluate(env_id: str, policy: Policy, n_episodes: int = 20, seed: int = 0) -> tuple[float, float]:
    """Mean and (population) std of the undiscounted return over ``n_episodes`` episodes.

    Runs a gymnasium ``SyncVectorEnv`` (chunks of up to 32 sub-envs); episode ``k`` starts from
    ``reset(seed=seed + k)`` and only each sub-env's first episode counts.
    """
    n_episodes = _check_n_episodes(n_episodes)
    seed = _check_seed(seed)
    returns = _episode_returns(env_id, policy, n_episodes, seed)
    return float(returns.mean()), float(returns.std())


def random_policy(env_id: str, seed: int = 0) -> Policy:
    """A uniformly random policy over ``env_id``'s action space, drawing from a seeded Generator."""
    env = make_env(env_id)
    space = env.action_space
    env.close()
    rng = as_generator(seed)
    if isinstance(space, gym.spaces.Discrete):
        return lambda obs: rng.integers(space.start, space.start + space.n, size=len(obs)).astype(np.int64)
    if isinstance(space, gym.spaces.Box):
        return lambda obs: rng.uniform(space.low, space.high, size=(len(obs), *space.shape)).astype(space.dtype)
    raise ValidationError(f"action space {space}: unsupported; expected Discrete or Box")


def random_return(env_id: str, n_episodes: int = 20, seed: int = 0) -> float:
    """Mean undiscounted return of a uniformly random policy (actions and resets seeded by ``seed``)."""
    n_episodes = _check_n_episodes(n_episodes)
    seed = _check_seed(seed)
    return evaluate(env_id, random_policy(env_id, seed), n_episodes=n_episodes, seed=seed)[0]


def normalized_score(env_id: str, mean_return: float, expert_return: float, random_return: float) -> float:
    """``(mean_return - random_return) / (expert_return - random_return)``: 1 = expert, 0 = random.

    ``env_id`` only labels error messages.
    """
    values = {"mean_return": mean_return, "expert_return": expert_return, "random_return": random_return}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not np.isfinite(
            value
        ):
            raise ValidationError(f"{name}={value!r} for {env_id}: expected a finite number")
    if expert_return == random_return:
        raise ValidationError(
            f"expert_return={expert_return!r} for {env_id}: equals random_return; expected them to differ"
        )
    return float((mean_return - random_return) / (expert_return - random_return))
