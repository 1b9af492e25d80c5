"""irlhf.rl.rewards.RewardFunction: one transition or a batch, shape checks, numpy out."""

import numpy as np
import pytest
import torch
from gymnasium import spaces

from irlhf.core.errors import IrlhfError
from irlhf.rl.rewards import RewardFunction


class Linear(RewardFunction):
    """r = sum(obs) + act - sum(next_obs) (+ 10 where done)."""

    def __init__(self, action_space):
        self.observation_space, self.action_space = spaces.Box(-9, 9, shape=(2,)), action_space
        self.calls = []

    def batch(self, obs, acts, next_obs, dones):
        self.calls.append((obs.shape, acts.shape, torch.is_grad_enabled()))
        r = torch.as_tensor(obs.sum(1)) + torch.as_tensor(acts.reshape(len(obs), -1).sum(1))
        r = r - (0 if next_obs is None else torch.as_tensor(next_obs.sum(1)))
        return r + (0 if dones is None else 10 * torch.as_tensor(dones))


def test_batch_and_single_forms():
    fn = Linear(spaces.Discrete(3))
    obs, nxt = np.array([[1.0, 2.0], [0.0, 0.0]]), np.ones((2, 2))
    out = fn(obs, np.array([2, 1]), nxt)
    assert out.dtype == np.float64 and out.tolist() == [3.0, -1.0]
    assert fn(obs[0], 2, nxt[0]) == 3.0 and isinstance(fn(obs[0], 2, nxt[0]), float)
    assert fn(obs, np.array([[2], [1]]), nxt, np.array([True, False])).tolist() == [13.0, -1.0]
    assert fn(obs, np.array([0, 0])).tolist() == [3.0, 0.0]  # next_obs optional
    assert all(not grad for *_, grad in fn.calls)


def test_box_actions():
    fn = Linear(spaces.Box(-1, 1, shape=(2,)))
    assert fn(np.zeros((1, 2)), np.array([[0.5, 0.25]]), np.zeros((1, 2))).tolist() == [0.75]
    with pytest.raises(IrlhfError, match=r"reward: obs \(1, 2\), acts \(1, 3\)"):
        fn(np.zeros((1, 2)), np.zeros((1, 3)), np.zeros((1, 2)))


def test_bad_input_raises():
    fn = Linear(spaces.Discrete(3))
    with pytest.raises(IrlhfError, match="next_obs shaped like obs"):
        fn(np.zeros((2, 2)), np.array([0, 1]), np.zeros((3, 2)))
    with pytest.raises(IrlhfError, match=r"expected integers in \[0, 3\)"):
        fn(np.zeros((2, 2)), np.array([0, 3]), np.zeros((2, 2)))
    with pytest.raises(IrlhfError, match="1 dones for 2 transitions"):
        fn(np.zeros((2, 2)), np.array([0, 1]), np.zeros((2, 2)), np.array([True]))
