"""What a clip costs: drawing a 50-step segment from its observations and encoding it as the page's GIF.

For each environment, a 50-step random rollout is recorded; then, timed over ``--repeats`` runs each:

* ``render_observations`` (set the env's state from each observation, render rgb_array, resize to 240 px),
* ``encode_gif`` (Pillow, lossless for these frames),
* ``segment_clip`` (both, as WebLabeller calls it for every clip it posts),
* baseline: the env rendering itself while stepping through the same 50 steps (``render_mode="rgb_array"``,
  one ``env.render()`` per step, no resize), i.e. what recording frames during the rollout would cost.

    python benchmarks/label_render.py
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import gymnasium as gym
import numpy as np

from irlhf.label.render import encode_gif, render_observations, segment_clip

ENVS = ("CartPole-v1", "MountainCar-v0", "Acrobot-v1", "Pendulum-v1")
STEPS = 50


def rollout(env_id: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    env = gym.make(env_id)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    observations, actions = [], []
    for _ in range(STEPS):
        action = env.action_space.sample()
        observations.append(obs)
        actions.append(action)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return np.array(observations), np.array(actions)


def render_while_stepping(env_id: str, actions: np.ndarray, seed: int = 0) -> None:
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=seed)
    for action in actions:
        env.render()
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    env.close()


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{STEPS}-step clips, best of {args.repeats}; {platform.machine()}, {os.cpu_count()} cores")
    print("| env | render_observations | encode_gif | segment_clip | GIF KiB | baseline: env.render() while stepping |")
    print("|---|---|---|---|---|---|")
    for env_id in ENVS:
        obs, acts = rollout(env_id)
        render_observations(env_id, obs[:1])  # warm-up: the env and pygame start once
        frames = render_observations(env_id, obs, acts)
        t_render = best_of(lambda: render_observations(env_id, obs, acts), args.repeats)
        t_encode = best_of(lambda: encode_gif(frames), args.repeats)
        t_clip = best_of(lambda: segment_clip(env_id, obs, acts), args.repeats)
        size = len(segment_clip(env_id, obs, acts)) / 1024
        t_base = best_of(lambda: render_while_stepping(env_id, acts), args.repeats)
        print(f"| {env_id} | {t_render * 1000:.0f} ms | {t_encode * 1000:.0f} ms | {t_clip * 1000:.0f} ms | "
              f"{size:.0f} | {t_base * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
