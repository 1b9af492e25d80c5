"""The 2-D point-mass reaching task: one step in closed form, walls, the expert, registration and seeding."""

import gymnasium as gym
import numpy as np
import pytest

from irlhf.core.errors import ValidationError
from irlhf.envs.gym import SCRIPTED_EXPERTS, collect_demos, evaluate, random_return
from irlhf.envs.pointmass import DT, ENV_ID, PointMassReach, reaching_expert


def test_one_step_in_closed_form():
    env = PointMassReach(damping=0.1, ctrl_cost=0.01)
    env.reset(seed=0)
    env.pos, env.vel, env.goal = np.array([0.2, -0.3]), np.array([0.5, 0.1]), np.array([0.0, 0.4])
    obs, reward, terminated, truncated, info = env.step(np.array([2.0, -0.5]))  # a is clipped to [-1, 1]
    a = np.array([1.0, -0.5])
    vel = 0.9 * np.array([0.5, 0.1]) + DT * a
    np.testing.assert_allclose(obs[:4], np.concatenate([np.array([0.2, -0.3]) + DT * vel, vel]), rtol=1e-6)
    np.testing.assert_allclose(obs[4:], [0.0, 0.4])
    assert reward == pytest.approx(-np.hypot(0.2, -0.7) - 0.01 * (a @ a))
    assert not terminated and not truncated and info["distance"] == pytest.approx(np.hypot(0.2, -0.7))


def test_walls_stop_the_motion_into_them():
    env = PointMassReach()
    env.reset(seed=1)
    env.pos, env.vel = np.array([0.99, 0.0]), np.array([1.0, 0.5])
    obs, *_ = env.step(np.zeros(2))
    assert obs[0] == 1.0 and obs[2] == 0.0 and obs[3] == pytest.approx(0.45)


def test_registered_with_a_50_step_limit_seeded_and_the_expert_reaches_the_goal():
    env = gym.make(ENV_ID)
    first, _ = env.reset(seed=3)
    again, _ = env.reset(seed=3)
    np.testing.assert_array_equal(first, again)
    demos = collect_demos(ENV_ID, SCRIPTED_EXPERTS[ENV_ID], n_episodes=3, seed=0)
    assert [len(d.acts) for d in demos] == [50, 50, 50]
    for d in demos:  # within 0.05 of the goal at the end
        assert np.linalg.norm(d.obs[-1, :2] - d.obs[-1, 4:]) < 0.05
    assert evaluate(ENV_ID, reaching_expert, 10, seed=0)[0] > random_return(ENV_ID, 10, seed=0) + 25


def test_render_draws_the_goal_and_the_point():
    env = gym.make(ENV_ID, render_mode="rgb_array")
    env.reset(seed=0)
    image = env.render()
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    goal, point = ((image == colour).all(-1).sum() for colour in ([40, 160, 40], [40, 80, 220]))
    assert 0 < goal <= 25 and point == 25  # 5 x 5 squares, the point drawn last


def test_bad_parameters():
    with pytest.raises(ValidationError, match="damping"):
        PointMassReach(damping=1.0)
    with pytest.raises(ValidationError, match="ctrl_cost"):
        PointMassReach(ctrl_cost=-1)
    with pytest.raises(ValidationError, match="render_mode"):
        PointMassReach(render_mode="human")
