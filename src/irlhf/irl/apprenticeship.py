"""Apprenticeship learning via inverse RL (Abbeel & Ng 2004): match the expert's feature expectations.

With a linear reward r_w = w . phi and ||w||_2 <= 1, a policy whose discounted feature expectations
mu(pi) = sum_{s,a} rho_pi(s, a) phi(s, a) lie within epsilon of the expert's mu_E earns, under every
such reward, within epsilon of the expert's value: |w . mu(pi) - w . mu_E| <= ||mu(pi) - mu_E||_2.
The algorithm grows a set of policies pi_0, pi_1, ..., each hard-optimal (value iteration) for a
reward under which the expert beats every policy found so far:

  max-margin:  t_i = max_{w, t} t   s.t.  w . mu_E >= w . mu_j + t  (j < i),   ||w||_2 <= 1
  projection:  w_i = mu_E - mu_bar_{i-1},  t_i = ||w_i||_2,  where mu_bar_i is the orthogonal projection
               of mu_E onto the line through mu_bar_{i-1} and mu_i (mu_bar_0 = mu_0)

and stops when t_i <= epsilon. No single policy need match mu_E; a mixture of them does. Its weights
lambda solve the small QP

  min_lambda ||mu_E - sum_j lambda_j mu_j||_2   s.t.  lambda_j >= 0,  sum_j lambda_j = 1,

which is the dual of the max-margin QP: its optimal value equals the max-margin t over the same set.
Both are therefore solved exactly by one NNLS (scipy's Lawson-Hanson): the closest mixture p* gives
t = ||mu_E - p*|| and w = (mu_E - p*) / t. pi_0 is optimal for a random unit w (the paper's random start).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Literal

import numpy as np
import scipy.optimize
from tqdm.auto import tqdm

from irlhf.core.config import BaseConfig, Positive, PositiveInt, Seed
from irlhf.core.seeding import as_generator
from irlhf.envs.tabular import TabularMDP
from irlhf.planning.demo_stats import Demos, feature_expectations, feature_matrix, optimal_policy, resolve_planning



@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """Apprenticeship-learning settings.

    method: "projection" (closed-form projection step) or "max_margin" (the SVM-like QP each step).
    epsilon: stop when the margin t (a distance in feature-expectation units) is <= epsilon.
    max_iter: most iterations after pi_0 (each: one value iteration, one occupancy pass, <= 1 new policy).
    horizon: planning horizon; None = the demonstrations' common length (or mdp.horizon).
    infinite_horizon: plan infinite-horizon discounted instead (demos of any length).
    initial: start-state distribution of the model, "demos" (the demonstrations' empirical starts,
      so mu_E is attainable at t = 0) or "mdp" (mdp.initial).
    seed: draws the random unit reward whose optimal policy is pi_0.
    progress: show a progress bar.
    """

    method: Literal["projection", "max_margin"] = "projection"
    epsilon: Positive = 1e-2
    max_iter: PositiveInt = 100
    horizon: PositiveInt | None = None
    infinite_horizon: bool = False
    initial: Literal["demos", "mdp"] = "demos"
    seed: Seed = 0
    progress: bool = False


@dataclasses.dataclass
class Result:
    """n policies found (pi_0 included), F features, policies (H, S, A) finite horizon or (S, A).

    weights (F,): the last non-zero w (||w||_2 = 1); reward: phi @ w, (S,) or (S, A).
    policy: the best single policy, the found one whose mu is closest to mu_E; mu_pi (F,) its mu.
    policies: the n policies; mus (n, F) their feature expectations; mixture (n,) the weights lambda
      (>= 0, sum 1) of the mixture closest to mu_E; mu_mixture (F,) = mixture @ mus.
    margin: the final t (<= epsilon when converged). converged: t <= epsilon was reached (it is not when
      max_iter runs out, or when the newest w's optimal policy was found before: then t cannot fall,
      and the history's last entry says "stalled"). history: one dict per iteration.
    """

    weights: np.ndarray
    reward: np.ndarray
    policy: np.ndarray
    policies: list[np.ndarray]
    mus: np.ndarray
    mixture: np.ndarray
    mu_E: np.ndarray
    mu_mixture: np.ndarray
    mu_pi: np.ndarray
    margin: float
    converged: bool
    history: list[dict]


def max_margin_weights(mu_E: np.ndarray, mus: np.ndarray) -> tuple[np.ndarray, float]:
    """The max-margin QP: max_{w, t} t s.t. w . (mu_E - mu_j) >= t for all j, ||w||_2 <= 1.

    mu_E (F,), mus (n, F). Returns w (F,) and t = min_j w . (mu_E - mu_j), the margin w achieves.
    By QP duality the optimal t is the distance from mu_E to the convex hull of the mus, and the
    optimal w points from the closest hull point p* to mu_E: w = (mu_E - p*) / ||mu_E - p*|| (the
    hyperplane through p* normal to w supports the hull). p* is the mixture QP's exact solution
    (:func:`closest_mixture`, scipy's NNLS). If mu_E lies in the hull, t = 0 and w = 0.
    """
    G = mu_E[None, :] - mus  # (n, F): row j is mu_E - mu_j
    F = G.shape[1]
    scale = float(np.abs(G).max())
    gap = mu_E - closest_mixture(mu_E, mus) @ mus
    t = float(np.linalg.norm(gap))
    if scale == 0.0 or t <= 1e-12 * scale:  # mu_E in the hull: no direction separates it
        return np.zeros(F), 0.0
    w = gap / t
    return w, float((G @ w).min())


def closest_mixture(mu_E: np.ndarray, mus: np.ndarray) -> np.ndarray:
    """The mixture QP: lambda = argmin ||mu_E - mus^T lambda||_2 s.t. lambda >= 0, sum(lambda) = 1.

    mu_E (F,), mus (n, F); returns lambda (n,). Solved exactly by non-negative least squares
    (scipy's Lawson-Hanson NNLS): u = argmin_{u >= 0} ||M u||^2 + (1 - sum u)^2 with M's columns
    mu_j - mu_E has KKT conditions (m_j - p) . p >= 0 for p = M u / sum(u), equality on the support,
    which are exactly the optimality conditions of the closest point p of the hull; lambda = u / sum(u).
    """
    n = len(mus)
    M = (mus - mu_E[None, :]).T  # (F, n)
    scale = float(np.abs(M).max())
    if n == 1 or scale == 0.0:
        return np.full(n, 1.0 / n)
    A = np.vstack([M / scale, np.ones((1, n))])
    b = np.zeros(A.shape[0])
    b[-1] = 1.0
    u, _ = scipy.optimize.nnls(A, b, maxiter=50 * (n + A.shape[0]))
    return u / u.sum()  # sum(u) > 0: u = 0 leaves residual 1, which u = e_j / (1 + ||m_j||^2) beats


def train(mdp: TabularMDP, demos: Demos, config: Config | None = None, *,
          features: np.ndarray | None = None) -> Result:
    """Run apprenticeship learning. ``demos``: list of Trajectory or an expert occupancy (S,) / (S, A).

    ``config`` None = ``Config()``. ``features`` overrides ``mdp.features`` ((S, F) or (S, A, F)).
    """
    config = Config() if config is None else config
    phi = feature_matrix(mdp, features)
    stats, plan_mdp, H = resolve_planning(mdp, demos, config.horizon, config.infinite_horizon, config.initial)
    mu_E = feature_expectations(phi, stats.rho_E, stats.rho_E_sa)
    F = phi.shape[-1]

    w = as_generator(config.seed).standard_normal(F)
    w /= np.linalg.norm(w)  # pi_0: optimal for a random unit reward, as in the paper
    pi, _, mu = optimal_policy(plan_mdp, phi, phi @ w, H)
    policies, mus = [pi], [mu]
    mu_bar = mu.copy()  # projection: the point of the hull of the mus closest to mu_E found so far
    lam_bar = np.ones(1)  # ... and its mixture weights (so mu_bar = lam_bar @ mus)

    history: list[dict] = []
    bar = tqdm(total=config.max_iter, desc=f"apprenticeship ({config.method})", disable=not config.progress,
               leave=False)
    t0 = time.perf_counter()
    converged = False
    for i in range(1, config.max_iter + 2):  # the last pass only measures t against the full set
        if config.method == "projection":
            w_i = mu_E - mu_bar
            t = float(np.linalg.norm(w_i))
            w_i = w_i / t if t > 0 else w
        else:
            w_i, t = max_margin_weights(mu_E, np.array(mus))
            if not np.any(w_i):
                w_i = w
        w = w_i
        history.append({"iter": i, "t": t, "best_gap": float(np.linalg.norm(np.array(mus) - mu_E, axis=1).min()),
                        "n_policies": len(mus), "seconds": time.perf_counter() - t0})
        if t <= config.epsilon:
            converged = True
            break
        if i > config.max_iter:
            break
        pi, _, mu = optimal_policy(plan_mdp, phi, phi @ w, H)
        distance = np.abs(np.array(mus) - mu[None, :]).max(axis=1)
        seen = int(distance.argmin()) if distance.min() <= 1e-12 * max(float(np.abs(mu).max()), 1.0) else -1
        if config.method == "max_margin" and seen >= 0:
            history[-1]["stalled"] = True  # the QP would not change, nor w: t can fall no further
            break
        if seen < 0:
            policies.append(pi)
            mus.append(mu)
            lam_bar = np.append(lam_bar, 0.0)
            seen = len(mus) - 1
        if config.method == "projection":
            d = mus[seen] - mu_bar
            dd = float(d @ d)
            # lambda in [0, 1] keeps mu_bar a mixture even when mu_i overshoots (sampled mu_E)
            step = 0.0 if dd == 0 else float(np.clip(d @ (mu_E - mu_bar) / dd, 0.0, 1.0))
            if step == 0.0:
                history[-1]["stalled"] = True  # mu_bar, hence w and pi_i, would repeat forever
                break
            mu_bar = mu_bar + step * d
            lam_bar = (1.0 - step) * lam_bar
            lam_bar[seen] += step
        bar.update(1)
        bar.set_postfix(t=f"{t:.3g}")
    bar.close()

    M = np.array(mus)
    mixture = closest_mixture(mu_E, M)
    if config.method == "projection" and np.linalg.norm(mu_E - lam_bar @ M) < np.linalg.norm(mu_E - mixture @ M):
        mixture = lam_bar  # never worse than the projection's own mixture
    best = int(np.argmin(np.linalg.norm(M - mu_E[None, :], axis=1)))
    history[-1]["mixture_gap"] = float(np.linalg.norm(mu_E - mixture @ M))
    return Result(weights=w, reward=phi @ w, policy=policies[best], policies=policies, mus=M, mixture=mixture,
                  mu_E=mu_E, mu_mixture=mixture @ M, mu_pi=M[best], margin=t, converged=converged,
                  history=history)
