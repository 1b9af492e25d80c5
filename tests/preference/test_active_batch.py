"""irlhf.preference.active_batch: greedy, medoids, boundary medoids and DPP batch selection."""

import time

import numpy as np
import pytest
from scipy.spatial import ConvexHull

from irlhf.core.errors import ValidationError
from irlhf.preference import active_batch as AB


def _pool(n=300, d=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random(n), rng.standard_normal((n, d))


def _clusters(seed=0):
    """30 queries in 3 tight clusters of directions (magnitudes vary), values interleaved across clusters."""
    rng = np.random.default_rng(seed)
    centres = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.6, 0.6, -0.5]])
    label = np.repeat(np.arange(3), 10)
    psi = (centres[label] + 0.01 * rng.standard_normal((30, 3))) * rng.uniform(0.5, 3.0, (30, 1))
    return rng.random(30), psi, label


@pytest.mark.parametrize("method", AB.METHODS)
def test_distinct_in_range_and_deterministic(method):
    values, psi = _pool()
    a = AB.select_batch(values, psi, 7, method, seed=3)
    assert a.shape == (7,) and len(np.unique(a)) == 7 and a.min() >= 0 and a.max() < len(values)
    np.testing.assert_array_equal(a, AB.select_batch(values, psi, 7, method, seed=3))
    np.testing.assert_array_equal(a, AB.select_batch(values, psi, 7, method, seed=np.random.default_rng(3)))
    if method != "dpp":  # dpp and greedy use no randomness; every batch but dpp's is in decreasing value
        assert (np.diff(values[a]) <= 0).all()


def test_greedy_is_top_b():
    values, psi = _pool()
    np.testing.assert_array_equal(AB.select_batch(values, psi, 5, "greedy"), np.argsort(-values)[:5])
    tied = np.array([1.0, 3.0, 3.0, 2.0, 3.0])
    np.testing.assert_array_equal(AB.select_batch(tied, np.ones((5, 2)), 3, "greedy"), [1, 2, 4])


@pytest.mark.parametrize("distance", AB.DISTANCES)
def test_medoids_one_per_cluster(distance):
    values, psi, label = _clusters()
    if distance == "euclidean":  # raw distances see magnitudes too: give every cluster one scale
        psi = psi / np.linalg.norm(psi, axis=1, keepdims=True)
    for seed in range(5):
        picked = AB.select_batch(values, psi, 3, "medoids", preselect=30, seed=seed, distance=distance)
        assert sorted(label[picked]) == [0, 1, 2]


def test_medoids_within_preselection():
    values, psi = _pool(n=300)
    picked = AB.select_batch(values, psi, 6, "medoids", preselect=40)
    assert set(picked) <= set(np.argsort(-values)[:40])


def test_kmedoids_swap_finds_the_optimum_of_a_small_problem():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((12, 2))
    D = np.linalg.norm(X[:, None] - X[None], axis=2)
    from itertools import combinations
    best = min(D[:, list(c)].min(axis=1).sum() for c in combinations(range(12), 3))
    costs = [D[:, AB.kmedoids(D, 3, seed=s)[0]].min(axis=1).sum() for s in range(10)]
    assert min(costs) == pytest.approx(best) and max(costs) <= 1.1 * best


def test_boundary_medoids_are_hull_vertices():
    values, psi = _pool(n=400, d=3, seed=2)
    pre = np.argsort(-values, kind="stable")[:60]
    vertices = set(pre[ConvexHull(psi[pre]).vertices])
    assert len(vertices) > 5
    for seed in range(3):
        picked = AB.select_batch(values, psi, 5, "boundary_medoids", preselect=60, seed=seed)
        assert set(picked) <= vertices


def test_boundary_fallback_few_vertices_fills_with_best_interior():
    square = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    interior = np.random.default_rng(0).uniform(0.2, 0.8, (6, 2))
    psi = np.vstack([square, interior])
    values = np.array([0.1, 0.2, 0.3, 0.4, 0.9, 0.8, 0.5, 0.7, 0.6, 0.05])
    picked = AB.select_batch(values, psi, 6, "boundary_medoids")
    assert set(picked) == {0, 1, 2, 3, 4, 5}


def test_boundary_flat_and_high_dimensional_points():
    rng = np.random.default_rng(4)
    # points on a plane inside R^4 (rank 2): the hull of the plane, no Qhull error
    plane = rng.standard_normal((50, 2))
    basis = np.linalg.qr(rng.standard_normal((4, 2)))[0]
    picked = AB.select_batch(rng.random(50), plane @ basis.T + 1.0, 4, "boundary_medoids", preselect=50)
    assert set(picked) <= set(ConvexHull(plane).vertices)
    # beyond max_hull_dim: extremes of random linear functions, each a vertex of the exact hull
    psi = rng.standard_normal((60, 4))
    found = AB.hull_vertices(psi, max_dim=2, seed=0)
    assert 4 <= len(found) and set(found) <= set(ConvexHull(psi).vertices)
    picked = AB.select_batch(rng.random(60), psi, 4, "boundary_medoids", preselect=60, max_hull_dim=3)
    assert set(picked) <= set(ConvexHull(psi).vertices)


def test_dpp_avoids_duplicates():
    rng = np.random.default_rng(5)
    distinct = rng.standard_normal((5, 3))
    psi = np.repeat(distinct, 4, axis=0)  # 20 candidates, each direction 4 times
    values = 1.0 - 0.001 * np.arange(20)  # similar quality, duplicates ahead of distinct ones
    picked = AB.select_batch(values, psi, 5, "dpp")
    assert len({tuple(p) for p in psi[picked]}) == 5
    assert picked[0] == 0
    assert len({tuple(p) for p in psi[AB.select_batch(values, psi, 5, "greedy")]}) == 2  # greedy repeats


def test_dpp_identity_similarity_is_greedy():
    values, psi = _pool()
    for b in (1, 4, 9):
        np.testing.assert_array_equal(AB.select_batch(values, psi, b, "dpp", kernel="identity"),
                                      AB.select_batch(values, psi, b, "greedy"))
    # a tiny length scale makes distinct queries dissimilar: again greedy
    np.testing.assert_array_equal(AB.select_batch(values, psi, 6, "dpp", length_scale=1e-6),
                                  AB.select_batch(values, psi, 6, "greedy"))


def test_dpp_matches_brute_force_log_det_greedy():
    rng = np.random.default_rng(6)
    q, X = rng.uniform(0.5, 1.0, 15), rng.standard_normal((15, 2))
    S = np.exp(-AB.query_distances(X, "direction", squared=True) / 0.5)
    L = q[:, None] * S * q[None, :]
    chosen = []
    for _ in range(5):
        rest = [i for i in range(15) if i not in chosen]
        chosen.append(rest[int(np.argmax([np.linalg.slogdet(L[np.ix_(chosen + [i], chosen + [i])])[1]
                                          for i in rest]))])
    np.testing.assert_array_equal(AB.dpp_greedy_map(q, S, 5), chosen)


def test_axis_distance_treats_a_swapped_query_as_the_same():
    psi = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    values = np.array([1.0, 0.99, 0.9, 0.5])
    assert list(AB.select_batch(values, psi, 2, "dpp", distance="axis")) == [0, 2]
    assert list(AB.select_batch(values, psi, 2, "dpp", distance="direction")) == [0, 1]
    D = AB.query_distances(np.array([[2.0, 0.0], [-1.0, 0.0], [0.0, 0.0]]), "axis")
    np.testing.assert_allclose(D, [[0, 0, 1], [0, 0, 1], [1, 1, 0]], atol=1e-12)


def test_zero_values_and_b_equal_n():
    values, psi = np.zeros(6), np.random.default_rng(0).standard_normal((6, 2))
    np.testing.assert_array_equal(AB.select_batch(values, psi, 3, "dpp"), [0, 1, 2])
    for method in AB.METHODS:
        assert sorted(AB.select_batch(values, psi, 6, method)) == list(range(6))


def test_default_length_scale_is_expected_minimum():
    D = np.array([[0.0, 1.0, 3.0], [1.0, 0.0, 2.0], [3.0, 2.0, 0.0]])  # pair distances 1, 2, 3
    # min of 2 draws: P(3) = 1/9, P(2) = 4/9 - 1/9, P(1) = 5/9
    assert AB.default_length_scale(D, 2) == pytest.approx((5 * 1 + 3 * 2 + 1 * 3) / 9)


@pytest.mark.parametrize("call, match", [
    (lambda v, p: AB.select_batch(v, p, 11, "greedy"), "b=11"),
    (lambda v, p: AB.select_batch(v, p, 0, "greedy"), "b=0"),
    (lambda v, p: AB.select_batch(v, p, 2.0, "greedy"), "b=2.0"),
    (lambda v, p: AB.select_batch(v, p, True, "greedy"), "b=True"),
    (lambda v, p: AB.select_batch(v, p, 2, "kmeans"), "method='kmeans'"),
    (lambda v, p: AB.select_batch(v, p[:9], 2, "greedy"), "psi has 9 rows but values has 10"),
    (lambda v, p: AB.select_batch(v, p[:, 0], 2, "greedy"), "psi="),
    (lambda v, p: AB.select_batch(v[:, None], p, 2, "greedy"), "values="),
    (lambda v, p: AB.select_batch(np.where(np.arange(10) == 3, np.nan, v), p, 2, "greedy"), r"values\[3\]=nan"),
    (lambda v, p: AB.select_batch(v, np.where(np.arange(10)[:, None] == 4, np.inf, p), 2, "dpp"), r"psi\[4\]"),
    (lambda v, p: AB.select_batch(v - 1.0, p, 2, "dpp"), "expected values >= 0"),
    (lambda v, p: AB.select_batch(v, p, 4, "medoids", preselect=3), "preselect=3"),
    (lambda v, p: AB.select_batch(v, p, 2, "medoids", distance="cosine"), "distance='cosine'"),
    (lambda v, p: AB.select_batch(v, p, 2, "dpp", kernel="rbf"), "kernel='rbf'"),
    (lambda v, p: AB.select_batch(v, p, 2, "dpp", length_scale=0.0), "length_scale=0.0"),
    (lambda v, p: AB.select_batch(v, p, 2, "dpp", gamma=-1), "gamma=-1"),
    (lambda v, p: AB.select_batch(v, p, 2, "medoids", seed=-1), "seed=-1"),
])
def test_bad_input(call, match):
    values, psi = _pool(n=10, d=2)
    with pytest.raises(ValidationError, match=match):
        call(values, psi)


def test_selection_is_fast():
    values, psi = _pool(n=5000, d=4, seed=7)
    for method in AB.METHODS:
        AB.select_batch(values, psi, 10, method)
        start = time.perf_counter()
        AB.select_batch(values, psi, 10, method)
        assert time.perf_counter() - start < 0.5  # a few ms; the bound only catches a lost vectorisation
