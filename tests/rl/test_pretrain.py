"""irlhf.rl.pretrain: supervised policy fitting (BC's step) and the warm start the IRL learners use."""

import numpy as np
from gymnasium import spaces

from irlhf.imitation import bc
from irlhf.rl.pretrain import fit_policy, warm_start_policy

OBS = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)


def test_fit_policy_learns_a_threshold_and_is_seeded():
    obs = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32)
    acts = (obs[:, 0] > 0).astype(np.int64)
    fits = [fit_policy(OBS, spaces.Discrete(2), obs, acts, hidden_sizes=(), lr=0.05, epochs=15, seed=1)
            for _ in range(2)]
    assert fits[0].n_train == 180 and fits[0].n_val == 20
    assert (fits[0].policy(obs) == acts).mean() > 0.95
    for a, b in zip(fits[0].policy.module.parameters(), fits[1].policy.module.parameters()):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_warm_start_equals_early_stopped_bc_with_tanh_units(gym_demos):
    demos = gym_demos("CartPole-v1", 1, 0)
    warm = warm_start_policy("CartPole-v1", demos, seed=3).module
    early_stopped = bc.Config(activation="tanh", epochs=100, validation_fraction=0.1, patience=10, seed=3)
    ref = bc.train("CartPole-v1", demos, early_stopped).policy.module
    assert warm.activation == "tanh"
    for (k, a), (_, b) in zip(warm.state_dict().items(), ref.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
