"""Builders in irlhf.envs.tabular: gridworld, objectworld, binaryworld, random_mdp.

Cells are s = row * n + col; actions 0 stay, 1 up, 2 down, 3 left, 4 right.
"""

import itertools

import numpy as np
import pytest

from irlhf.core.errors import IrlhfError
from irlhf.envs.tabular import binaryworld, gridworld, objectworld, random_mdp

STAY, UP, DOWN, LEFT, RIGHT = range(5)


def row(mdp, s, a):
    """P(. | s, a) as a dense vector."""
    return mdp.transitions[s * mdp.n_actions + a].toarray().ravel()


def expect(n, probs):
    out = np.zeros(n * n)
    for s, p in probs.items():
        out[s] += p
    return out


def naive_grid(n, outcome):
    """Dense (S, A, S) built cell by cell: choosing a executes b w.p. outcome[a][b]; walls keep the agent."""
    moves = [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]
    P = np.zeros((n * n, 5, n * n))
    for r, c, a, b in itertools.product(range(n), range(n), range(5), range(5)):
        nr, nc = r + moves[b][0], c + moves[b][1]
        if not (0 <= nr < n and 0 <= nc < n):
            nr, nc = r, c
        P[r * n + c, a, nr * n + nc] += outcome[a][b]
    return P


# ----------------------------------------------------------------------------- gridworld


def test_gridworld_interior_cell_right_with_slip():
    mdp = gridworld(5, slip=0.3)
    s = 2 * 5 + 2  # centre cell
    np.testing.assert_allclose(row(mdp, s, RIGHT), expect(5, {13: 0.76, 7: 0.06, 17: 0.06, 11: 0.06, 12: 0.06}),
                               rtol=0, atol=1e-15)
    np.testing.assert_allclose(row(mdp, s, STAY), expect(5, {12: 0.76, 7: 0.06, 17: 0.06, 11: 0.06, 13: 0.06}),
                               rtol=0, atol=1e-15)


def test_gridworld_corner_and_edge_cells_merge_wall_moves_into_stay():
    mdp = gridworld(5, slip=0.3)
    cases = [
        (0, RIGHT, {1: 0.76, 0: 0.18, 5: 0.06}),  # up and left hit walls
        (0, UP, {0: 0.88, 1: 0.06, 5: 0.06}),
        (24, DOWN, {24: 0.88, 23: 0.06, 19: 0.06}),
        (20, LEFT, {20: 0.88, 15: 0.06, 21: 0.06}),
        (2, UP, {2: 0.82, 1: 0.06, 3: 0.06, 7: 0.06}),  # top edge, one wall
        (14, RIGHT, {14: 0.82, 9: 0.06, 19: 0.06, 13: 0.06}),  # right edge
    ]
    for s, a, probs in cases:
        np.testing.assert_allclose(row(mdp, s, a), expect(5, probs), rtol=0, atol=1e-15, err_msg=f"s={s} a={a}")


@pytest.mark.parametrize("n, slip", [(1, 0.3), (2, 0.0), (4, 0.2), (3, 1.0)])
def test_gridworld_matches_naive_construction(n, slip):
    outcome = (1 - slip) * np.eye(5) + slip / 5
    np.testing.assert_allclose(gridworld(n, slip=slip).dense_transitions(), naive_grid(n, outcome), rtol=0,
                               atol=1e-15)


def test_gridworld_no_slip_is_deterministic():
    mdp = gridworld(4, slip=0.0)
    assert mdp.transitions.nnz == 16 * 5
    assert row(mdp, 5, DOWN)[9] == 1.0 and row(mdp, 5, UP)[1] == 1.0 and row(mdp, 3, RIGHT)[3] == 1.0


def test_gridworld_256_nnz():
    mdp = gridworld(256)
    assert mdp.transitions.shape == (256 * 256 * 5, 256 * 256)
    assert mdp.transitions.nnz == 1_633_280  # 254^2*25 interior + 1016*20 edge + 4*15 corner
    with pytest.raises(IrlhfError, match="max_entries"):
        mdp.dense_transitions()


def test_gridworld_default_features_reward_initial():
    mdp = gridworld(4, discount=0.9, horizon=7)
    rows, cols = np.divmod(np.arange(16), 4)
    np.testing.assert_array_equal(mdp.features, np.stack([rows, cols], axis=1) / 3)
    np.testing.assert_array_equal(mdp.true_reward, np.r_[np.zeros(15), 1.0])
    np.testing.assert_array_equal(mdp.initial, np.full(16, 1 / 16))
    assert (mdp.discount, mdp.horizon, mdp.n_actions) == (0.9, 7, 5)
    assert mdp.meta["world"] == "gridworld" and mdp.meta["n"] == 4


def test_gridworld_macrocell_features_and_reward():
    n, k = 8, 2
    mdp = gridworld(n, macrocell=k, seed=3)
    assert mdp.features.shape == (n * n, (n // k) ** 2)
    for s in range(n * n):
        r, c = divmod(s, n)
        one_hot = np.zeros((n // k) ** 2)
        one_hot[(r // k) * (n // k) + c // k] = 1.0
        np.testing.assert_array_equal(mdp.features[s], one_hot)
    w = mdp.meta["true_weights"]
    assert w.shape == (16,) and (w >= 0).all()
    assert np.count_nonzero(w) == 2  # about 10% of 16 blocks
    assert np.linalg.norm(w) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_array_equal(mdp.true_reward, mdp.features @ w)


def test_gridworld_macrocell_seeded():
    a, b, c = (gridworld(8, macrocell=2, seed=s).meta["true_weights"] for s in (5, 5, 6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_gridworld_macrocell_equal_to_n_gives_single_feature():
    mdp = gridworld(4, macrocell=4)
    np.testing.assert_array_equal(mdp.features, np.ones((16, 1)))
    np.testing.assert_array_equal(mdp.true_reward, np.ones(16))


@pytest.mark.parametrize("macrocell", [3, 0, -2, 16, 2.0, True])
def test_gridworld_macrocell_must_divide_n(macrocell):
    with pytest.raises(IrlhfError, match="macrocell"):
        gridworld(8, macrocell=macrocell)


@pytest.mark.parametrize("kwargs, field", [(dict(n=0), "n="), (dict(n=2.0), "n="), (dict(n=True), "n="),
                                           (dict(n=3, slip=1.5), "slip"), (dict(n=3, slip=-0.1), "slip"),
                                           (dict(n=3, discount=0.0), "discount")])
def test_gridworld_bad_arguments(kwargs, field):
    with pytest.raises(IrlhfError, match=field):
        gridworld(**kwargs)


# ----------------------------------------------------------------------------- objectworld


def naive_sq_distances(n, cells, colors, n_colors):
    """(S, n_colors) squared distances (ints) to the nearest object of each colour; None where absent."""
    out = np.full((n * n, n_colors), -1, dtype=np.int64)
    for s in range(n * n):
        r, c = divmod(s, n)
        for color in range(n_colors):
            ds = [(r - o // n) ** 2 + (c - o % n) ** 2 for o, col in zip(cells, colors) if col == color]
            if ds:
                out[s, color] = min(ds)
    return out


N_OW = 10


@pytest.fixture(scope="module")
def ow():
    mdp = objectworld(N_OW, density=0.2, seed=0)
    assert set(mdp.meta["outer_colors"].tolist()) == {0, 1}  # both colours present: the rule is exercised
    return mdp


def test_objectworld_reward_rule(ow):
    sq = naive_sq_distances(N_OW, ow.meta["object_cells"], ow.meta["outer_colors"], 2)
    near0 = (sq[:, 0] >= 0) & (sq[:, 0] < 9)  # d < 3
    near1 = (sq[:, 1] >= 0) & (sq[:, 1] < 4)  # d < 2
    expected = np.where(near0 & near1, 5.0, np.where(near0, -10.0, 0.0))
    np.testing.assert_array_equal(ow.true_reward, expected)
    assert set(np.unique(ow.true_reward).tolist()) == {-10.0, 0.0, 5.0}  # every case occurs for this seed


def test_objectworld_discrete_features(ow):
    n = N_OW
    cells = ow.meta["object_cells"]
    assert ow.features.shape == (n * n, 2 * 2 * (n - 1))
    assert set(np.unique(ow.features).tolist()) <= {0.0, 1.0}
    sq = np.concatenate([naive_sq_distances(n, cells, ow.meta["outer_colors"], 2),
                         naive_sq_distances(n, cells, ow.meta["inner_colors"], 2)], axis=1)
    for j in range(4):  # outer 0, outer 1, inner 0, inner 1
        for d in range(1, n):
            want = (sq[:, j] >= 0) & (sq[:, j] < d * d)
            np.testing.assert_array_equal(ow.features[:, j * (n - 1) + d - 1], want, err_msg=f"colour {j}, d < {d}")


def test_objectworld_continuous_features_are_distances(ow):
    n = N_OW
    cont = objectworld(n, density=0.2, seed=0, continuous=True)
    np.testing.assert_array_equal(cont.meta["object_cells"], ow.meta["object_cells"])
    np.testing.assert_array_equal(cont.true_reward, ow.true_reward)
    cells = cont.meta["object_cells"]
    sq = np.concatenate([naive_sq_distances(n, cells, cont.meta["outer_colors"], 2),
                         naive_sq_distances(n, cells, cont.meta["inner_colors"], 2)], axis=1)
    expected = np.where(sq >= 0, np.sqrt(np.maximum(sq, 0)), 2.0 * n)
    assert cont.features.shape == (n * n, 4)
    np.testing.assert_allclose(cont.features, expected, rtol=1e-14, atol=0)
    # the discrete features are thresholds of the continuous ones
    disc = (cont.features[:, :, None] < np.arange(1, n)[None, None, :]).reshape(n * n, -1)
    np.testing.assert_array_equal(ow.features, disc)


def test_objectworld_determinism_rows(ow):
    n = N_OW
    s = 5 * n + 5
    np.testing.assert_allclose(
        row(ow, s, RIGHT), expect(n, {s + 1: 0.7, s: 0.075, s - n: 0.075, s + n: 0.075, s - 1: 0.075}), rtol=0,
        atol=1e-15)
    np.testing.assert_allclose(row(ow, 0, UP), expect(n, {0: 0.7 + 0.075 + 0.075, 1: 0.075, n: 0.075}), rtol=0,
                               atol=1e-15)
    outcome = 0.7 * np.eye(5) + 0.075 * (1 - np.eye(5))
    np.testing.assert_allclose(objectworld(4, seed=1).dense_transitions(), naive_grid(4, outcome), rtol=0, atol=1e-15)


def test_objectworld_full_determinism():
    mdp = objectworld(4, determinism=1.0)
    assert mdp.transitions.nnz == 16 * 5 and row(mdp, 5, LEFT)[4] == 1.0


def test_objectworld_more_colours_shapes():
    n = 6
    disc = objectworld(n, n_colors=3, density=0.3, seed=2)
    cont = objectworld(n, n_colors=3, density=0.3, seed=2, continuous=True)
    assert disc.features.shape == (n * n, 2 * 3 * (n - 1)) and cont.features.shape == (n * n, 6)
    assert set(disc.meta["outer_colors"].tolist()) <= {0, 1, 2}


def test_objectworld_absent_colour_distance_is_2n():
    mdp = objectworld(5, density=0.0, continuous=True)
    assert len(mdp.meta["object_cells"]) == 0
    np.testing.assert_array_equal(mdp.features, np.full((25, 4), 10.0))
    np.testing.assert_array_equal(mdp.true_reward, np.zeros(25))


def test_objectworld_seeded():
    a, b, c = objectworld(8, seed=4), objectworld(8, seed=4), objectworld(8, seed=5)
    assert (a.transitions != b.transitions).nnz == 0
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.true_reward, b.true_reward)
    np.testing.assert_array_equal(a.meta["object_cells"], b.meta["object_cells"])
    assert not np.array_equal(a.features, c.features)


@pytest.mark.parametrize("kwargs, field", [(dict(n_colors=1), "n_colors"), (dict(density=1.5), "density"),
                                           (dict(determinism=-0.1), "determinism"), (dict(n=1), "n="),
                                           (dict(seed=-1), "seed")])
def test_objectworld_bad_arguments(kwargs, field):
    with pytest.raises(IrlhfError, match=field):
        objectworld(**{"n": 4, **kwargs})


# ----------------------------------------------------------------------------- binaryworld


def test_binaryworld_features_and_reward():
    n = 8
    mdp = binaryworld(n, seed=0)
    blue = mdp.meta["blue"]
    assert blue.shape == (n, n) and set(np.unique(blue).tolist()) == {0.0, 1.0}
    assert mdp.features.shape == (n * n, 9)
    for s in range(n * n):
        r, c = divmod(s, n)
        hood = [blue[r + dr, c + dc] if 0 <= r + dr < n and 0 <= c + dc < n else 0.0
                for dr in (-1, 0, 1) for dc in (-1, 0, 1)]
        np.testing.assert_array_equal(mdp.features[s], hood, err_msg=f"cell {s}")
        n_blue = sum(hood)
        assert mdp.true_reward[s] == (1.0 if n_blue == 4 else -1.0 if n_blue == 5 else 0.0)
    assert set(np.unique(mdp.true_reward).tolist()) == {-1.0, 0.0, 1.0}  # every case occurs for this seed
    assert mdp.features[0, :3].sum() == 0 and mdp.features[0, [0, 3, 6]].sum() == 0  # zero padding at the corner
    np.testing.assert_array_equal(mdp.features[:, 4], blue.ravel())  # centre of the 3x3 is the cell itself


def test_binaryworld_dynamics_and_seed():
    outcome = 0.7 * np.eye(5) + 0.075 * (1 - np.eye(5))
    a = binaryworld(4, seed=1)
    np.testing.assert_allclose(a.dense_transitions(), naive_grid(4, outcome), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(a.meta["blue"], binaryworld(4, seed=1).meta["blue"])
    assert not np.array_equal(binaryworld(8, seed=1).meta["blue"], binaryworld(8, seed=2).meta["blue"])


# ----------------------------------------------------------------------------- random_mdp


def test_random_mdp_branching():
    S, A, k = 20, 4, 3
    mdp = random_mdp(S, A, k, seed=5)
    P = mdp.transitions
    assert P.shape == (S * A, S)
    np.testing.assert_array_equal(np.diff(P.indptr), np.full(S * A, k))
    for r in range(S * A):
        assert len(set(P.indices[P.indptr[r]:P.indptr[r + 1]].tolist())) == k
    assert (P.data > 0).all()
    np.testing.assert_array_equal(mdp.features, np.eye(S))
    assert mdp.true_reward.shape == (S,) and mdp.discount == 0.9


def test_random_mdp_successors_vary():
    mdp = random_mdp(30, 2, 2, seed=0)
    assert len({tuple(mdp.transitions[r].indices) for r in range(60)}) > 30  # not the same pair every row


def test_random_mdp_full_branching_and_features():
    mdp = random_mdp(5, 2, 5, seed=1, n_features=3, horizon=4)
    assert mdp.transitions.nnz == 5 * 2 * 5 and mdp.features.shape == (5, 3) and mdp.horizon == 4


def test_random_mdp_seeded():
    a, b, c = random_mdp(10, 3, 4, seed=7), random_mdp(10, 3, 4, seed=7), random_mdp(10, 3, 4, seed=8)
    assert (a.transitions != b.transitions).nnz == 0
    np.testing.assert_array_equal(a.true_reward, b.true_reward)
    assert (a.transitions != c.transitions).nnz > 0
    assert not np.array_equal(a.true_reward, c.true_reward)


@pytest.mark.parametrize("args, field", [((5, 2, 6), "branching"), ((5, 2, 0), "branching"), ((0, 2, 1), "n_states"),
                                         ((5, 0, 1), "n_actions"), ((5.0, 2, 1), "n_states"), ((5, True, 1), "n_actions")])
def test_random_mdp_bad_arguments(args, field):
    with pytest.raises(IrlhfError, match=field):
        random_mdp(*args)
