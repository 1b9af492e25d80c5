"""irlhf.rl.replay.ReplayBuffer: a ring buffer."""

import numpy as np
import pytest

from irlhf.core.errors import IrlhfError
from irlhf.rl.replay import ReplayBuffer


def test_ring_buffer_overwrites_the_oldest():
    buf = ReplayBuffer(3, (2,), (), np.int64)
    for i in range(5):
        buf.add(np.full(2, i), i, np.full(2, i + 1), i == 4)
    assert len(buf) == 3 and buf.pos == 2
    assert sorted(buf.acts.tolist()) == [2, 3, 4]
    np.testing.assert_array_equal(buf.next_obs[buf.acts == 4], [[5, 5]])
    assert buf.dones[buf.acts == 4].tolist() == [1.0] and buf.obs.dtype == np.float32


def test_bad_capacity():
    with pytest.raises(IrlhfError, match="capacity=0: expected an int >= 1"):
        ReplayBuffer(0, (2,))
