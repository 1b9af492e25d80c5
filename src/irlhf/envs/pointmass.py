"""A 2-D point mass reaching a goal: the task class guided cost learning was first shown on (Finn, Levine &
Abbeel 2016, section 6: 2-D navigation with a point mass), small enough for CPU runs.

State: position p in [-1, 1]^2, velocity v, goal g (drawn per episode, part of the observation so that one
cost can serve every goal); observation (p, v, g) in R^6. Action: force a in [-1, 1]^2. Dynamics, dt = 0.1,

    v' = (1 - damping) v + dt * a,        p' = clip(p + dt * v', -1, 1)   (a wall stops that velocity component),

and the true reward r(s, a) = -||p - g|| - ctrl_cost * ||a||^2. Episodes run ``horizon`` = 50 steps and never
terminate (a time limit, as in the paper's fixed-horizon tasks). ``reaching_expert`` is a PD controller that
reaches any goal in about 20 steps; ``gymnasium.make("irlhf/PointMassReach-v0")`` builds the env (registered
when ``irlhf.envs.gym`` is imported).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from irlhf.core.errors import ValidationError

__all__ = ["ENV_ID", "PointMassReach", "reaching_expert"]

ENV_ID = "irlhf/PointMassReach-v0"
DT = 0.1


class PointMassReach(gym.Env):
    """The 2-D point-mass reaching task (module docstring). ``damping`` in [0, 1): velocity lost per step;
    ``ctrl_cost`` >= 0: the action penalty's weight in the true reward."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}  # one step is DT = 0.1 s

    def __init__(self, damping: float = 0.1, ctrl_cost: float = 0.01, render_mode: str | None = None):
        if not 0 <= damping < 1:
            raise ValidationError(f"damping={damping!r}: expected a number in [0, 1)")
        if not ctrl_cost >= 0:
            raise ValidationError(f"ctrl_cost={ctrl_cost!r}: expected a number >= 0")
        if render_mode not in (None, "rgb_array"):
            raise ValidationError(f"render_mode={render_mode!r}: expected None or 'rgb_array'")
        self.damping, self.ctrl_cost, self.render_mode = float(damping), float(ctrl_cost), render_mode
        high = np.array([1, 1, np.inf, np.inf, 1, 1], dtype=np.float32)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self.pos = np.zeros(2)
        self.vel = np.zeros(2)
        self.goal = np.zeros(2)

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.pos, self.vel, self.goal]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-0.9, 0.9, 2)
        self.vel = np.zeros(2)
        self.goal = self.np_random.uniform(-0.8, 0.8, 2)
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        distance = float(np.linalg.norm(self.pos - self.goal))
        reward = -distance - self.ctrl_cost * float(a @ a)
        self.vel = (1.0 - self.damping) * self.vel + DT * a
        moved = self.pos + DT * self.vel
        self.pos = np.clip(moved, -1.0, 1.0)
        self.vel[moved != self.pos] = 0.0  # the wall stops motion into it
        return self._obs(), reward, False, False, {"distance": distance}


    def render(self) -> np.ndarray:
        """A 64 x 64 RGB picture: white arena, the goal green, the point mass blue."""
        image = np.full((64, 64, 3), 255, dtype=np.uint8)
        for point, colour in ((self.goal, (40, 160, 40)), (self.pos, (40, 80, 220))):
            col, row = np.clip(((point + 1) / 2 * 63).round().astype(int), 2, 61)
            image[63 - row - 2:63 - row + 3, col - 2:col + 3] = colour
        return image


def reaching_expert(obs: np.ndarray) -> np.ndarray:
    """A PD controller towards the goal: a = clip(4 (g - p) - 3 v), obs (N, 6) -> actions (N, 2) float32."""
    obs = np.asarray(obs, dtype=np.float64)
    pos, vel, goal = obs[..., 0:2], obs[..., 2:4], obs[..., 4:6]
    return np.clip(4.0 * (goal - pos) - 3.0 * vel, -1.0, 1.0).astype(np.float32)


if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point=PointMassReach, max_episode_steps=50)
