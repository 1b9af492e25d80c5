"""irlhf.preference.bradley_terry: golden values, gradients, ties, identifiability, features, networks."""

import numpy as np
import pytest

from irlhf.core.errors import ValidationError
from irlhf.data.preferences import Comparisons
from irlhf.preference import bradley_terry as bt


def _sample(n, m, seed=0):
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=n)
    i = rng.integers(0, n, m)
    j = (i + rng.integers(1, n, m)) % n
    win = rng.random(m) < 1 / (1 + np.exp(-(theta[i] - theta[j])))
    return theta, Comparisons(i, j, win.astype(float), n)


def test_golden_values():
    result = bt.fit(3, [(0, 1), (0, 1), (1, 2), (2, 0)])
    np.testing.assert_allclose(result.scores, [0.419617624, -0.419617624, 0.0], atol=1e-9)
    assert result.converged and result.ranking().tolist() == [0, 2, 1]


def test_stationary_point_and_hessian_standard_errors():
    theta, data = _sample(8, 400)
    result = bt.fit(8, data, standard_errors=True)
    eps = 1e-6
    for k in range(8):  # the log-likelihood gradient vanishes at the MLE (checked by finite differences)
        e = np.zeros(8)
        e[k] = eps
        slope = (bt.log_likelihood(result.scores + e, data) - bt.log_likelihood(result.scores - e, data)) / (2 * eps)
        assert abs(slope) < 1e-5
    assert np.isclose(bt.log_likelihood(result.scores, data), result.log_likelihood)
    assert result.standard_errors.shape == (8,) and np.all(result.standard_errors > 0)


def test_prior_matches_choix_convention():
    # With alpha the minimiser of L + alpha ||theta||^2 satisfies grad L = -2 alpha theta.
    _, data = _sample(6, 60, seed=1)
    alpha = 0.3
    result = bt.fit(6, data, alpha=alpha)
    eps = 1e-6
    for k in range(6):
        e = np.zeros(6)
        e[k] = eps
        slope = (bt.log_likelihood(result.scores + e, data) - bt.log_likelihood(result.scores - e, data)) / (2 * eps)
        assert slope == pytest.approx(2 * alpha * result.scores[k], abs=1e-5)
    assert abs(result.scores.sum()) < 1e-10


def test_ties_count_half_a_win():
    # one win of 0 over 1 and one tie: 0 has 1.5 wins out of 2, so sigma(d) = 3/4 and d = log 3
    result = bt.fit(2, Comparisons([0, 1], [1, 0], [1, 0.5]))
    np.testing.assert_allclose(result.scores, [np.log(3) / 2, -np.log(3) / 2], atol=1e-10)


def test_all_ties_give_equal_scores():
    result = bt.fit(3, Comparisons([0, 1, 2], [1, 2, 0], [0.5, 0.5, 0.5]))
    np.testing.assert_allclose(result.scores, 0.0, atol=1e-12)


def test_recovers_true_scores_and_is_deterministic():
    theta, data = _sample(30, 6000, seed=2)
    a = bt.fit(30, data)
    b = bt.fit(30, data)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert np.corrcoef(a.scores, theta - theta.mean())[0, 1] > 0.98


@pytest.mark.parametrize(
    "pairs, n, match",
    [
        ([(0, 1), (1, 0), (2, 3), (3, 2)], 4, "disconnected"),
        ([(0, 1), (1, 2), (2, 1)], 3, "never lose"),
        ([(0, 1), (1, 0), (0, 2), (1, 2)], 3, "never win"),
        ([(0, 1), (1, 0)], 3, "appear in no comparison"),
        ([(0, 1), (1, 0), (2, 3), (3, 2), (0, 2)], 4, "not strongly connected"),
    ],
)
def test_unidentifiable_graphs_are_reported(pairs, n, match):
    with pytest.raises(bt.ComparisonGraphError, match=match):
        bt.fit(n, pairs)
    assert np.all(np.isfinite(bt.fit(n, pairs, alpha=0.1).scores))  # a prior makes it well posed


def test_sparse_solver_matches_dense(monkeypatch):
    _, data = _sample(40, 2000, seed=3)
    dense = bt.fit(40, data)
    monkeypatch.setattr(bt, "DENSE_LIMIT", 10)
    sparse = bt.fit(40, data)
    np.testing.assert_allclose(sparse.scores, dense.scores, atol=1e-8)


def test_bad_arguments():
    with pytest.raises(ValidationError, match="alpha"):
        bt.fit(3, [(0, 1)], alpha=-1)
    with pytest.raises(ValidationError, match="n_items"):
        bt.fit(1, [(0, 1)])
    with pytest.raises(ValidationError, match="out of range"):
        bt.fit(3, [(0, 5)])
    with pytest.raises(ValidationError, match="expected a Comparisons"):
        bt.fit(3, np.zeros((2, 4)))


def test_probabilities_matrix():
    P = bt.preference_probabilities(np.array([0.0, np.log(3.0)]))
    np.testing.assert_allclose(P, [[0.5, 0.25], [0.75, 0.5]])


def test_fit_features_recovers_linear_reward():
    rng = np.random.default_rng(4)
    phi = rng.normal(size=(50, 3))
    w_true = np.array([1.0, -2.0, 0.5])
    i = rng.integers(0, 50, 5000)
    j = (i + rng.integers(1, 50, 5000)) % 50
    win = rng.random(5000) < 1 / (1 + np.exp(-(phi[i] - phi[j]) @ w_true))
    result = bt.fit_features(phi, Comparisons(i, j, win.astype(float), 50))
    assert result.converged
    np.testing.assert_allclose(result.weights, w_true, atol=4 * result.standard_errors.max() + 0.05)


def test_fit_features_separable_needs_prior():
    phi = np.array([[0.0], [1.0], [2.0]])
    with pytest.raises(bt.ComparisonGraphError, match="separable"):
        bt.fit_features(phi, [(1, 0), (2, 1), (2, 0)])
    assert bt.fit_features(phi, [(1, 0), (2, 1), (2, 0)], alpha=0.1).weights[0] > 0


def test_torch_loss_matches_numpy_and_ties():
    import torch

    r_i, r_j = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.0, 0.0, -1.0])
    mu = torch.tensor([1.0, 0.5, 0.0])
    expected = [np.log1p(np.exp(-1.0)), np.log(2.0), np.log1p(np.exp(3.0))]
    np.testing.assert_allclose(bt.loss(r_i, r_j, mu, reduction="none").numpy(), expected, rtol=1e-6)


def test_fit_network_orders_items():
    rng = np.random.default_rng(5)
    phi = rng.normal(size=(20, 2))
    true = phi[:, 0] ** 2 - phi[:, 1]
    i = rng.integers(0, 20, 2000)
    j = (i + rng.integers(1, 20, 2000)) % 20
    win = rng.random(2000) < 1 / (1 + np.exp(-3 * (true[i] - true[j])))
    result = bt.fit_network(phi, Comparisons(i, j, win.astype(float), 20), hidden_sizes=(32,), epochs=150, seed=0)
    assert np.corrcoef(result.scores, true)[0, 1] > 0.9
    again = bt.fit_network(phi, Comparisons(i, j, win.astype(float), 20), hidden_sizes=(32,), epochs=150, seed=0)
    np.testing.assert_array_equal(result.scores, again.scores)


# -- BLAS threads and standard errors --------------------------------------------------------------------
def test_fit_solves_on_one_blas_thread(monkeypatch):
    from threadpoolctl import threadpool_info

    from irlhf.core import newton

    seen = []
    solve = newton.scipy.linalg.lapack.dposv

    def recording_solve(H, rhs):
        seen.append({lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"})
        return solve(H, rhs)

    monkeypatch.setattr(newton.scipy.linalg.lapack, "dposv", recording_solve)
    bt.fit(20, _sample(20, 400)[1])
    assert seen and all(threads == {1} for threads in seen)


def test_standard_errors_only_when_asked():
    _, data = _sample(8, 400)
    assert bt.fit(8, data).standard_errors is None
    assert bt.fit(8, data, alpha=0.5).standard_errors is None
    with_se = bt.fit(8, data, standard_errors=True)
    np.testing.assert_array_equal(with_se.scores, bt.fit(8, data).scores)
    with pytest.raises(ValidationError, match="standard_errors=None: expected True or False"):
        bt.fit(8, data, standard_errors=None)


def test_standard_errors_two_items_closed_form():
    # 7 wins of 0 over 1 in 10: p = 0.7, d = theta_0 - theta_1 has variance 1 / (c p (1 - p)); each
    # mean-centred score is +-d / 2, so its standard error is 1 / (2 sqrt(c p (1 - p)))
    data = Comparisons([0] * 10, [1] * 10, [1.0] * 7 + [0.0] * 3)
    result = bt.fit(2, data, standard_errors=True)
    np.testing.assert_allclose(result.standard_errors, 1 / (2 * np.sqrt(10 * 0.7 * 0.3)), rtol=1e-9)


def test_standard_errors_with_prior_are_the_inverse_hessian():
    _, data = _sample(6, 300, seed=5)
    alpha = 0.2
    result = bt.fit(6, data, alpha=alpha, standard_errors=True)
    eps = 1e-4  # the objective's Hessian by central differences of the log-likelihood, plus the prior's 2 alpha I

    def objective(theta):
        return -bt.log_likelihood(theta, data) + alpha * theta @ theta

    H = np.empty((6, 6))
    for k in range(6):
        for m in range(6):
            ek, em = np.eye(6)[k] * eps, np.eye(6)[m] * eps
            H[k, m] = (objective(result.scores + ek + em) - objective(result.scores + ek - em)
                       - objective(result.scores - ek + em) + objective(result.scores - ek - em)) / (4 * eps**2)
    np.testing.assert_allclose(result.standard_errors, np.sqrt(np.diag(np.linalg.inv(H))), rtol=1e-5)
