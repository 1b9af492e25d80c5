"""irlhf.nn.encoders: one-hot / flattened / standardised network inputs."""

import numpy as np
import pytest
import torch
from gymnasium import spaces

from irlhf.core.errors import IrlhfError
from irlhf.nn.encoders import ObsEncoder, encode
from irlhf.nn.policies import MLPPolicy


def test_encode_discrete_and_box():
    x = encode(np.array([3, 1]), spaces.Discrete(3, start=1))
    assert x.dtype == torch.float32 and x.tolist() == [[0, 0, 1], [1, 0, 0]]
    box = spaces.Box(-1, 1, shape=(2, 2))
    obs = np.arange(8, dtype=np.float64).reshape(2, 2, 2)
    obs.setflags(write=False)  # read-only input is copied, not aliased
    assert encode(obs, box).shape == (2, 4)


def test_obs_encoder_standardises_box_and_one_hots_discrete():
    enc = ObsEncoder(spaces.Box(-5, 5, shape=(2,)), obs_mean=np.array([1.0, -1.0]), obs_scale=np.array([2.0, 4.0]))
    np.testing.assert_allclose(enc(np.array([[3.0, 3.0]])).numpy(), [[1.0, 1.0]])
    assert enc.obs_dim == 2 and set(enc.state_dict()) == {"obs_mean", "obs_scale"}
    one_hot = ObsEncoder(spaces.Discrete(4))
    assert one_hot(torch.tensor([2])).tolist() == [[0, 0, 1, 0]]
    with pytest.raises(IrlhfError, match="obs_mean / obs_scale"):
        ObsEncoder(spaces.Box(-1, 1, shape=(2,)), obs_scale=np.array([1.0, 0.0]))


def test_policy_keeps_its_state_dict_keys():
    """Saved policy files name the buffers obs_mean / obs_scale at the top level: the encoder must not move them."""
    module = MLPPolicy(spaces.Box(-1, 1, shape=(3,)), spaces.Discrete(2), (4,))
    assert {"obs_mean", "obs_scale", "net.0.weight", "net.2.bias"} <= set(module.state_dict())
