"""irlhf.envs.tabular.sample_trajectories: shapes, validity, seeding, and the right distributions."""

import numpy as np
import pytest

from irlhf.core.errors import IrlhfError
from irlhf.data import Trajectory
from irlhf.envs.tabular import TabularMDP, _sample_rows, random_mdp, sample_trajectories

Z = 5.0  # tolerance in standard errors for the (fixed-seed) frequency checks


def chain_mdp(S=4, initial=None, true_reward=None):
    """Deterministic cycle: action 0 stays, action 1 moves s -> (s + 1) % S."""
    P = np.zeros((S, 2, S))
    P[np.arange(S), 0, np.arange(S)] = 1.0
    P[np.arange(S), 1, (np.arange(S) + 1) % S] = 1.0
    initial = np.eye(S)[0] if initial is None else initial
    return TabularMDP(P, np.eye(S), initial, true_reward=true_reward)


def uniform(mdp):
    return np.full((mdp.n_states, mdp.n_actions), 1 / mdp.n_actions)


def test_shapes_and_types():
    mdp = random_mdp(6, 3, 2, seed=1)
    trajs = sample_trajectories(mdp, uniform(mdp), n=5, horizon=7, seed=0)
    assert len(trajs) == 5 and all(isinstance(t, Trajectory) for t in trajs)
    for t in trajs:
        assert t.obs.shape == (8,) and t.acts.shape == (7,) and t.rews.shape == (7,)
        assert np.issubdtype(t.obs.dtype, np.integer) and np.issubdtype(t.acts.dtype, np.integer)
        assert t.terminal is False and t.infos is None


def test_obs_are_valid_states_and_steps_are_possible():
    mdp = random_mdp(12, 3, 2, seed=2)
    P = mdp.dense_transitions()
    trajs = sample_trajectories(mdp, uniform(mdp), n=50, horizon=10, seed=3)
    obs = np.stack([t.obs for t in trajs])
    acts = np.stack([t.acts for t in trajs])
    assert obs.min() >= 0 and obs.max() < 12 and acts.min() >= 0 and acts.max() < 3
    assert (P[obs[:, :-1], acts, obs[:, 1:]] > 0).all()  # every transition has positive probability


def test_same_seed_same_output_different_seed_different():
    mdp = random_mdp(8, 2, 3, seed=0)
    pi = uniform(mdp)
    a = sample_trajectories(mdp, pi, n=10, horizon=6, seed=42)
    b = sample_trajectories(mdp, pi, n=10, horizon=6, seed=42)
    c = sample_trajectories(mdp, pi, n=10, horizon=6, seed=43)
    assert a == b
    assert a != c
    rng1, rng2 = np.random.default_rng(9), np.random.default_rng(9)
    assert sample_trajectories(mdp, pi, n=3, seed=rng1) == sample_trajectories(mdp, pi, n=3, seed=rng2)


def test_rewards_are_true_reward_at_visited_states():
    mdp = random_mdp(7, 2, 3, seed=4)
    for t in sample_trajectories(mdp, uniform(mdp), n=20, horizon=5, seed=1):
        np.testing.assert_array_equal(t.rews, mdp.true_reward[t.obs[:-1]])


def test_state_action_rewards_use_actions():
    mdp = random_mdp(7, 3, 3, seed=4)
    R = np.arange(21, dtype=float).reshape(7, 3)
    for t in sample_trajectories(mdp.replace(true_reward=R), uniform(mdp), n=20, horizon=5, seed=1):
        np.testing.assert_array_equal(t.rews, R[t.obs[:-1], t.acts])


def test_no_true_reward_gives_no_rewards():
    mdp = chain_mdp()
    assert all(t.rews is None for t in sample_trajectories(mdp, uniform(mdp), n=3, horizon=2))


def test_action_frequencies_match_stationary_policy():
    mdp = random_mdp(5, 3, 3, seed=2)
    pi = np.random.default_rng(0).dirichlet(np.ones(3), size=5)
    pi[0] = [0.0, 0.3, 0.7]  # a zero-probability action is never taken
    trajs = sample_trajectories(mdp, pi, n=4000, horizon=5, seed=11)
    obs = np.concatenate([t.obs[:-1] for t in trajs])
    acts = np.concatenate([t.acts for t in trajs])
    assert not ((obs == 0) & (acts == 0)).any()
    for s in range(5):
        taken = acts[obs == s]
        n_s = len(taken)
        assert n_s > 1000
        freq = np.bincount(taken, minlength=3) / n_s
        se = np.sqrt(pi[s] * (1 - pi[s]) / n_s)
        assert (np.abs(freq - pi[s]) <= Z * se + 1e-12).all(), (s, freq, pi[s])


def test_first_state_distribution_matches_initial():
    initial = np.array([0.1, 0.2, 0.0, 0.3, 0.4])
    mdp = chain_mdp(5, initial=initial)
    n = 20000
    first = np.array([t.obs[0] for t in sample_trajectories(mdp, uniform(mdp), n=n, horizon=1, seed=5)])
    freq = np.bincount(first, minlength=5) / n
    assert freq[2] == 0.0
    se = np.sqrt(initial * (1 - initial) / n)
    assert (np.abs(freq - initial) <= Z * se).all(), freq


def test_next_state_frequencies_match_transitions():
    mdp = random_mdp(6, 2, 4, seed=3).replace(initial=np.eye(6)[2])
    pi = np.tile([0.0, 1.0], (6, 1))  # always action 1
    n = 20000
    second = np.array([t.obs[1] for t in sample_trajectories(mdp, pi, n=n, horizon=1, seed=6)])
    p = mdp.dense_transitions()[2, 1]
    freq = np.bincount(second, minlength=6) / n
    assert (freq[p == 0] == 0).all()
    assert (np.abs(freq - p) <= Z * np.sqrt(p * (1 - p) / n) + 1e-12).all(), (freq, p)


def test_time_dependent_policy_gives_known_path():
    mdp = chain_mdp(4)  # start in state 0
    H = 4
    plan = [1, 0, 1, 1]  # move, stay, move, move
    pi = np.zeros((H, 4, 2))
    for t, a in enumerate(plan):
        pi[t, :, a] = 1.0
    trajs = sample_trajectories(mdp, pi, n=6, horizon=H, seed=0)
    for t in trajs:
        assert t.obs.tolist() == [0, 1, 1, 2, 3] and t.acts.tolist() == plan
    short = sample_trajectories(mdp, pi, n=2, horizon=2, seed=0)  # uses the first two steps of the plan
    assert all(t.obs.tolist() == [0, 1, 1] for t in short)


def test_time_dependent_policy_differs_by_state():
    mdp = chain_mdp(3, initial=np.full(3, 1 / 3))
    pi = np.zeros((2, 3, 2))
    pi[0, :, 1] = 1.0  # t=0: move everywhere
    pi[1, 0, 0] = pi[1, 1, 1] = pi[1, 2, 0] = 1.0  # t=1: stay except in state 1
    for t in sample_trajectories(mdp, pi, n=30, horizon=2, seed=2):
        s1 = (t.obs[0] + 1) % 3
        assert t.obs[1] == s1 and t.acts[1] == (1 if s1 == 1 else 0)
        assert t.obs[2] == (s1 + t.acts[1]) % 3


@pytest.mark.parametrize(
    "pi, match",
    [
        (np.full((4, 3), 1 / 3), "pi: shape"),
        (np.full((5, 2), 0.5), "pi: shape"),
        (np.full(4, 0.5), "pi: shape"),
        (np.full((2, 5, 2), 0.5), "pi: shape"),
        (np.full((1, 2, 4, 2), 0.5), "pi: shape"),
        (np.tile([1.5, -0.5], (4, 1)), "pi: rows"),
        (np.tile([0.5, 0.4], (4, 1)), "pi: rows"),
        (np.tile([np.nan, 1.0], (4, 1)), "pi: rows"),
        (np.concatenate([np.full((1, 4, 2), 0.5), np.full((1, 4, 2), 0.6)]), "pi: rows"),
    ],
)
def test_bad_policies_raise(pi, match):
    mdp = chain_mdp(4)
    with pytest.raises(IrlhfError, match=match):
        sample_trajectories(mdp, pi, n=2, horizon=1)


def test_horizon_beyond_time_dependent_policy_raises():
    mdp = chain_mdp(4)
    with pytest.raises(IrlhfError, match="horizon=4.*3 steps"):
        sample_trajectories(mdp, np.full((3, 4, 2), 0.5), n=2, horizon=4)


@pytest.mark.parametrize("kwargs, field", [(dict(n=0), "n="), (dict(n=2.0), "n="), (dict(horizon=0), "horizon="),
                                           (dict(horizon=True), "horizon="), (dict(seed=-3), "seed")])
def test_bad_counts_and_seed_raise(kwargs, field):
    mdp = chain_mdp(4)
    with pytest.raises(IrlhfError, match=field):
        sample_trajectories(mdp, uniform(mdp), **kwargs)


def test_sample_rows_never_picks_zero_probability_columns_at_extremes():
    cumulative = np.cumsum([[0.0, 0.0, 0.5, 0.5, 0.0], [0.25, 0.0, 0.75, 0.0, 0.0]], axis=1)
    lowest, highest = np.zeros(2), np.full(2, np.nextafter(1.0, 0.0))
    assert _sample_rows(cumulative, lowest).tolist() == [2, 0]
    assert _sample_rows(cumulative, highest).tolist() == [3, 2]
    assert _sample_rows(cumulative, np.array([0.5, 0.25])).tolist() == [3, 2]
