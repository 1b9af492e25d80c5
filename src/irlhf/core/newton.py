"""Damped Newton's method for smooth convex objectives, the dense SPD solve it uses, and standard errors.

Each iteration takes the Newton direction delta = -H(x)^-1 g(x) and stops when the Newton decrement
lambda^2 / 2 = -g . delta / 2 falls below ``tol`` (after taking that last full step: near the optimum a
full step squares the remaining error). Otherwise a backtracking (Armijo) line search halves the step t
from 1 until

    f(x + t delta) <= f(x) - armijo * t * lambda^2

(Boyd & Vandenberghe 2004, section 9.5). The caller supplies f and the direction, so the same loop serves
dense Cholesky solves, sparse conjugate gradients, or a system with a fixed coordinate (a shift-invariant
objective). Used by the Bradley-Terry and Plackett-Luce fits (``irlhf.preference``).

Dense work on up to ``ONE_THREAD_MAX_N`` unknowns runs on one BLAS thread (``blas_threads_limited``): a
multithreaded BLAS spin-waits for a core another process holds; on a busy 2-core machine a 200-item
Bradley-Terry fit took 1.4 s on two BLAS threads and 0.01 s on one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable
from contextlib import AbstractContextManager

import numpy as np
import scipy.linalg.lapack
from threadpoolctl import ThreadpoolController

__all__ = ["NewtonResult", "ONE_THREAD_MAX_N", "blas_threads_limited", "minimize", "solve_spd", "standard_errors"]

# Up to this n, one BLAS thread was faster for (n, n) Cholesky solves and inverses at every size measured on a
# 2-core machine with other jobs running (n = 1000: 3x to 100x; n = 3000: 1.6x); it covers every dense system
# the preference models build (their DENSE_LIMIT is 3000). Larger problems keep the threads they gain from.
ONE_THREAD_MAX_N = 3000


@dataclasses.dataclass
class NewtonResult:
    """x: the minimiser.  n_iter: Newton iterations (directions computed).  converged: the decrement fell
    below ``tol`` within ``max_iter`` iterations."""

    x: np.ndarray
    n_iter: int
    converged: bool


@functools.cache
def _blas_libraries() -> ThreadpoolController:
    # scanning the loaded libraries costs about a millisecond, so once; a limit from it then costs ~15 us
    return ThreadpoolController()


def blas_threads_limited(n: int) -> AbstractContextManager:
    """A context in which BLAS runs on one thread when the dense problem has n <= ONE_THREAD_MAX_N unknowns
    (the previous thread counts come back on exit); larger problems keep every thread."""
    if n > ONE_THREAD_MAX_N:
        return contextlib.nullcontext()
    return _blas_libraries().limit(limits=1, user_api="blas")


def minimize(value: Callable[[np.ndarray], float],
             direction: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
             x0: np.ndarray, *, tol: float = 1e-10, max_iter: int = 100, armijo: float = 0.25,
             min_step: float = 1e-12) -> NewtonResult:
    """Minimise a convex f from ``x0`` by damped Newton steps.

    value(x) -> f(x).  direction(x) -> (g, delta): the gradient (n,) and the Newton direction
    delta = -H^-1 g (n,) at x.  tol: stop when -g . delta / 2 <= tol.  armijo: sufficient-decrease
    fraction of the line search; a step below ``min_step`` is taken as it is (f convex, so this ends).
    Runs under ``blas_threads_limited(len(x0))``.
    """
    with blas_threads_limited(len(x0)):
        return _damped_newton(value, direction, x0, tol, max_iter, armijo, min_step)


def _damped_newton(value: Callable[[np.ndarray], float],
                   direction: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                   x0: np.ndarray, tol: float, max_iter: int, armijo: float, min_step: float) -> NewtonResult:
    x = x0
    f = value(x)
    converged, n_iter = False, 0
    for n_iter in range(1, max_iter + 1):
        g, delta = direction(x)
        decrement = -float(g @ delta)
        if decrement / 2.0 <= tol:
            x, converged = x + delta, True
            break
        step = 1.0
        while True:
            candidate = x + step * delta
            f_new = value(candidate)
            if f_new <= f - armijo * step * decrement or step < min_step:
                break
            step *= 0.5
        x, f = candidate, f_new
    return NewtonResult(x=x, n_iter=n_iter, converged=converged)


def solve_spd(H: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve H x = rhs for a symmetric positive definite H (LAPACK posv: one Cholesky, two triangular
    solves). If H is not numerically positive definite (e.g. probabilities saturated at 0 or 1), the
    least-squares solution. On one BLAS thread up to ONE_THREAD_MAX_N."""
    with blas_threads_limited(len(H)):
        _, x, info = scipy.linalg.lapack.dposv(H, rhs)
        if info != 0:
            x = np.linalg.lstsq(H, rhs, rcond=None)[0]
    return x


def standard_errors(H: np.ndarray, *, shift_invariant: bool = False) -> np.ndarray:
    """Square roots of the diagonal of H^-1, the asymptotic covariance of an M-estimate with Hessian H (n, n).

    shift_invariant: H is singular along the all-ones vector (scores defined up to a constant, reported
    mean-centred), as a connected graph Laplacian is: use its pseudo-inverse inv(H + 11^T / n) - 11^T / n.
    A dense (n, n) inverse (about 2 s on one core at n = 3000), on one BLAS thread up to ONE_THREAD_MAX_N.
    """
    n = len(H)
    with blas_threads_limited(n):
        cov = np.linalg.inv(H + 1.0 / n) - 1.0 / n if shift_invariant else np.linalg.inv(H)
    return np.sqrt(np.clip(np.diag(cov), 0.0, None))
