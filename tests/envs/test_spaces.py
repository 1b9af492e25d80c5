"""irlhf.envs.spaces: supported spaces, widths, batches, random actions, JSON descriptions."""

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from irlhf.core.errors import IrlhfError
from irlhf.envs.spaces import (act_dim, as_batch, check_spaces, flat_dim, obs_dim, one_hot, random_action,
                               resolve_spaces, space_from_dict, space_to_dict)

BOX = spaces.Box(-1.0, 1.0, shape=(2, 3), dtype=np.float32)
DISC = spaces.Discrete(4, start=2)


def test_widths():
    assert flat_dim(BOX) == obs_dim(BOX) == act_dim(BOX) == 6
    assert flat_dim(DISC) == 4


def test_one_hot_respects_start():
    np.testing.assert_array_equal(one_hot([2, 5, 3], DISC), np.eye(4)[[0, 3, 1]])


def test_as_batch_single_and_batch():
    batch, single = as_batch(np.zeros((2, 3)), BOX)
    assert single and batch.shape == (1, 2, 3)
    batch, single = as_batch(np.zeros((5, 2, 3)), BOX)
    assert not single and batch.shape == (5, 2, 3)
    with pytest.raises(IrlhfError, match=r"obs: shape \(3,\); expected \(2, 3\) or \(N, \*\(2, 3\)\)"):
        as_batch(np.zeros(3), BOX)


def test_random_action_is_seeded_and_in_the_space():
    a = [random_action(DISC, np.random.default_rng(0)) for _ in range(2)]
    assert a[0] == a[1] and isinstance(a[0], np.int64) and DISC.contains(int(a[0]))
    box = random_action(BOX, np.random.default_rng(1))
    assert box.dtype == np.float32 and BOX.contains(box)
    draws = {int(random_action(DISC, np.random.default_rng(s))) for s in range(40)}
    assert draws == {2, 3, 4, 5}


def test_resolve_and_check_spaces():
    obs, act = resolve_spaces("CartPole-v1")
    assert obs.shape == (4,) and act.n == 2
    env = gymnasium.make("Pendulum-v1")
    assert resolve_spaces(env)[1].shape == (1,)
    env.close()
    assert resolve_spaces((BOX, DISC)) == (BOX, DISC)
    with pytest.raises(IrlhfError, match="env='Nope-v0': could not be made"):
        resolve_spaces("Nope-v0")
    with pytest.raises(IrlhfError, match="expected an environment id"):
        resolve_spaces(3)
    with pytest.raises(IrlhfError, match="action_space"):
        check_spaces(BOX, spaces.MultiBinary(3))


def test_space_json_round_trip():
    inf_box = spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float64)
    for space in (BOX, DISC, inf_box):
        assert space_from_dict(space_to_dict(space)) == space
    assert space_to_dict(inf_box)["low"] == ["-inf"] * 3
    with pytest.raises(IrlhfError, match="expected type Box or Discrete"):
        space_from_dict({"type": "Tuple"})
