"""irlhf.core.newton: damped Newton on closed forms, the SPD solve and standard errors."""

from __future__ import annotations

import numpy as np
import pytest

from irlhf.core import newton


def _quadratic(A: np.ndarray, b: np.ndarray):
    value = lambda x: 0.5 * x @ A @ x - b @ x  # noqa: E731
    direction = lambda x: (A @ x - b, np.linalg.solve(A, b - A @ x))  # noqa: E731
    return value, direction


def test_quadratic_is_solved_in_one_full_step_then_stops():
    A = np.array([[4.0, 1.0], [1.0, 3.0]])
    b = np.array([1.0, 2.0])
    value, direction = _quadratic(A, b)
    result = newton.minimize(value, direction, np.zeros(2))
    np.testing.assert_allclose(result.x, np.linalg.solve(A, b), rtol=1e-14)  # x* = A^-1 b
    assert result.converged and result.n_iter == 2  # one full step, then a zero decrement


def test_logistic_one_parameter_closed_form():
    # f(x) = c softplus(-x) + (c - w) x with w wins of c: the minimiser is logit(w / c)
    c, w = 10.0, 7.0
    value = lambda x: float(c * np.logaddexp(0.0, -x[0]) + (c - w) * x[0])  # noqa: E731

    def direction(x):
        p = 1.0 / (1.0 + np.exp(-x[0]))
        g = np.array([c * p - w])
        return g, -g / (c * p * (1 - p))

    result = newton.minimize(value, direction, np.array([-8.0]), tol=1e-14)
    assert result.converged
    assert result.x[0] == pytest.approx(np.log(w / (c - w)), abs=1e-10)


def test_line_search_damps_a_step_that_would_overshoot():
    # f(x) = sqrt(1 + x^2): the full Newton step from x = 2 lands at -8 (f larger); damping keeps f falling
    value = lambda x: float(np.sqrt(1 + x[0] ** 2))  # noqa: E731
    seen = []

    def direction(x):
        seen.append(value(x))
        g = x[0] / np.sqrt(1 + x[0] ** 2)
        h = (1 + x[0] ** 2) ** -1.5
        return np.array([g]), np.array([-g / h])

    result = newton.minimize(value, direction, np.array([2.0]), tol=1e-12, max_iter=100)
    assert result.converged and abs(result.x[0]) < 1e-4
    assert all(later <= earlier for earlier, later in zip(seen, seen[1:]))


def test_max_iter_reached_is_not_converged():
    value, direction = _quadratic(np.eye(2), np.ones(2))
    result = newton.minimize(value, lambda x: (direction(x)[0], 0.5 * direction(x)[1]), np.zeros(2), max_iter=3)
    assert not result.converged and result.n_iter == 3


def test_solve_spd_and_least_squares_fallback():
    H = np.array([[2.0, 1.0], [1.0, 2.0]])
    np.testing.assert_allclose(newton.solve_spd(H, np.array([3.0, 3.0])), [1.0, 1.0], rtol=1e-14)
    singular = np.array([[1.0, -1.0], [-1.0, 1.0]])  # a Laplacian: not positive definite
    x = newton.solve_spd(singular, np.array([1.0, -1.0]))
    np.testing.assert_allclose(x, [0.5, -0.5], atol=1e-12)  # the minimum-norm least-squares solution


def test_standard_errors_inverse_and_laplacian_pseudo_inverse():
    H = np.diag([4.0, 0.25])
    np.testing.assert_allclose(newton.standard_errors(H), [0.5, 2.0], rtol=1e-14)
    L = np.array([[1.0, -1.0], [-1.0, 1.0]])  # pinv(L) = L / 4: variances 1/4
    np.testing.assert_allclose(newton.standard_errors(L, shift_invariant=True), [0.5, 0.5], rtol=1e-12)
    np.testing.assert_allclose(np.diag(np.linalg.pinv(L)) ** 0.5, [0.5, 0.5], rtol=1e-12)


# -- BLAS threads: a busy machine makes multithreaded BLAS spin-wait, costing 10x on small systems -----------------
def blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_small_dense_work_runs_on_one_blas_thread(monkeypatch):
    seen = []
    solve = newton.scipy.linalg.lapack.dposv

    def recording_solve(H, rhs):
        seen.append(blas_threads())
        return solve(H, rhs)

    monkeypatch.setattr(newton.scipy.linalg.lapack, "dposv", recording_solve)
    H = np.array([[2.0, 1.0], [1.0, 2.0]])
    newton.solve_spd(H, np.array([3.0, 3.0]))
    with newton.blas_threads_limited(2):
        assert set(blas_threads()) == {1}
    assert seen and all(set(threads) == {1} for threads in seen)


def test_large_dense_work_keeps_the_blas_threads():
    before = blas_threads()
    with newton.blas_threads_limited(newton.ONE_THREAD_MAX_N + 1):
        assert blas_threads() == before
    assert blas_threads() == before  # and a limited block gives them back
    with newton.blas_threads_limited(3):
        pass
    assert blas_threads() == before
