"""irlhf.envs.corridor: lane-keeping corridor builder and its expert."""

import numpy as np
import pytest

from irlhf.core.errors import IrlhfError
from irlhf.envs.corridor import LEFT, RIGHT, STRAIGHT, corridor, corridor_expert
from irlhf.envs.tabular import sample_trajectories
from irlhf.planning import value_iteration


def test_shapes_and_dynamics():
    mdp = corridor(2)
    assert (mdp.n_states, mdp.n_actions) == (5, 3)
    assert mdp.initial[2] == 1.0
    P = mdp.dense_transitions()
    assert P[2, LEFT, 1] == 1 and P[2, STRAIGHT, 2] == 1 and P[2, RIGHT, 3] == 1
    assert P[0, LEFT, 0] == 1 and P[4, RIGHT, 4] == 1  # walls clip
    np.testing.assert_array_equal(mdp.true_reward, [-2, -1, 0, -1, -2])


def test_expert_is_optimal_and_stays_on_lane():
    mdp = corridor(3, discount=0.9)
    expert = corridor_expert(mdp)
    _, _, pi = value_iteration(mdp, mdp.true_reward)
    np.testing.assert_array_equal(pi.argmax(1), expert.argmax(1))
    trajs = sample_trajectories(mdp, expert, n=4, horizon=20, seed=0)
    assert all((np.asarray(t.obs) == 3).all() for t in trajs)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_rejects_bad_half_width(bad):
    with pytest.raises(IrlhfError):
        corridor(bad)
