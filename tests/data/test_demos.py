"""irlhf.data.demos: demonstration packing, checks against the spaces, observation statistics."""

from types import SimpleNamespace

import numpy as np
import pytest
from gymnasium import spaces

from irlhf.core.errors import IrlhfError
from irlhf.data.demos import check_demos, demo_arrays, demo_transitions, obs_stats
from irlhf.data.types import Trajectory, Transitions

OBS = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
ACT = spaces.Discrete(3)


def traj(n=3, terminal=True):
    return Trajectory(obs=np.arange(2 * (n + 1), dtype=np.float64).reshape(n + 1, 2), acts=np.arange(n) % 3,
                      rews=np.ones(n), terminal=terminal)


def test_demo_arrays_flattens_trajectories():
    obs, acts = demo_arrays([traj(3), traj(2)])
    assert obs.shape == (5, 2) and acts.tolist() == [0, 1, 2, 0, 1]
    obs, acts, nxt, dones = demo_arrays(traj(3), ("obs", "acts", "next_obs", "dones"), "transition")
    np.testing.assert_array_equal(nxt, obs + 2)
    assert dones.tolist() == [False, False, True]


def test_demo_arrays_errors():
    with pytest.raises(IrlhfError, match="demos: empty list"):
        demo_arrays([])
    with pytest.raises(IrlhfError, match="demos: int; expected a list of Trajectory or Transitions"):
        demo_arrays(3)
    bad = SimpleNamespace(obs=np.array([[0.0, 1.0], [np.nan, 0.0]]), acts=np.array([0, 1]))  # any obs/acts object
    with pytest.raises(IrlhfError, match="demos.obs: non-finite value in sample 1"):
        demo_arrays(bad)


def test_check_demos_casts_and_rejects():
    acts = check_demos(np.zeros((3, 2)), np.array([[0], [2], [1]]), OBS, ACT)
    assert acts.dtype == np.int64 and acts.tolist() == [0, 2, 1]
    with pytest.raises(IrlhfError, match=r"demos.acts\[1\]=3: expected an integer in \[0, 2\]"):
        check_demos(np.zeros((3, 2)), np.array([0, 3, 1]), OBS, ACT)
    with pytest.raises(IrlhfError, match=r"demos.obs: shape \(3, 4\)"):
        check_demos(np.zeros((3, 4)), np.array([0, 1, 1]), OBS, ACT)
    box = spaces.Box(-1, 1, shape=(2,))
    assert check_demos(np.zeros((1, 2)), np.zeros((1, 2)), OBS, box).dtype == np.float32


def test_demo_transitions_checks_next_obs():
    d = demo_transitions([traj(3)], OBS, ACT)
    assert set(d) == {"obs", "acts", "next_obs", "dones"} and d["dones"].dtype == bool
    disc_obs = spaces.Discrete(3)
    with pytest.raises(IrlhfError, match="demos.obs: values"):
        demo_transitions(Transitions(obs=np.array([0, 1]), acts=np.array([0, 1]), next_obs=np.array([1, 7]),
                                     dones=np.zeros(2, dtype=bool)), disc_obs, ACT)


def test_obs_stats_closed_form():
    obs = np.array([[1.0, 5.0], [3.0, 5.0]])
    mean, scale = obs_stats(obs, OBS)
    np.testing.assert_allclose(mean, [2.0, 5.0])
    np.testing.assert_allclose(scale, [1.0, 1.0])  # std 1, and a constant feature gets scale 1
    assert obs_stats(obs, OBS, enabled=False) == (None, None)
    assert obs_stats(np.array([0, 1]), spaces.Discrete(2)) == (None, None)
