import warnings

import numpy as np
import torch
from gymnasium import spaces

from irlhf.nn.policies import MLPPolicy


def test_read_only_numpy_inputs_give_the_same_log_prob_without_a_warning():
    obs_space, act_space = spaces.Box(-1.0, 1.0, (3,)), spaces.Discrete(2)
    policy = MLPPolicy(obs_space, act_space, (8,), seed=0)
    obs = np.arange(6, dtype=np.float64).reshape(2, 3) / 6
    acts = np.array([0, 1])
    frozen_obs, frozen_acts = obs.copy(), acts.copy()
    frozen_obs.flags.writeable = False  # as a Trajectory's arrays
    frozen_acts.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = policy.log_prob(frozen_obs, frozen_acts)
    expected = policy.log_prob(torch.as_tensor(obs, dtype=torch.float32), torch.as_tensor(acts))
    assert torch.equal(got, expected)
    assert got.shape == (2,) and bool(torch.all(got <= 0))


def test_discrete_observations_one_hot_from_read_only_numpy_without_a_warning():
    # Discrete(4, start=1): state s goes to one-hot position s - 1
    policy = MLPPolicy(spaces.Discrete(4, start=1), spaces.Discrete(2), (8,), seed=0)
    states = np.array([1, 4, 2])
    states.flags.writeable = False  # as a Trajectory's arrays
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = policy.preprocess(states)
    assert torch.equal(x, torch.eye(4)[[0, 3, 1]])
    assert torch.equal(policy.preprocess(torch.tensor([1, 4, 2])), x)
