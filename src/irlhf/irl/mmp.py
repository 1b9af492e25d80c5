"""Maximum margin planning (Ratliff, Bagnell & Zinkevich 2006): IRL v1 with a structured margin and slack.

With a linear reward r_w = w . phi and feature expectations mu_pi = sum_{s,a} rho_pi(s, a) phi(s, a),
the expert must beat every policy by a margin that grows with how different the policy is:

    min_{w, xi}  ||w||_2^2 + C xi   s.t.  w . mu_E >= w . mu_pi + D(pi, pi_E) - xi  for all pi,  xi >= 0,

with the loss D(pi, pi_E) = sum_{s,a} rho_pi(s, a) l(s, a) linear in the occupancy, e.g. the Hamming
loss l(s, a) = 1 where the expert's state-action occupancy is 0. Eliminating xi gives the convex,
non-smooth objective

    J(w) = ||w||_2^2 + C max(0, max_pi [w . mu_pi + D(pi, pi_E)] - w . mu_E),

whose inner max is one *loss-augmented* planning problem: value iteration with reward r_w + l.
Two solvers:
  constraint_generation: keep a working set of policies pi_1..pi_n, solve the QP over it, add the
    loss-augmented optimal policy for the new w; stop when its violation h (the bracket above) is at
    most the slack xi plus a relative tol: ||w||^2 + C xi <= min J <= J(w), so C (h - xi) bounds the gap.
  subgradient: w <- w - alpha_k (2 w + C (mu_pi* - mu_E)) with pi* loss-augmented optimal (the
    second term only while the hinge is positive), alpha_k = step_size / (2 k) (J is 2-strongly convex).
The QP over a working set, with Delta_j = mu_E - mu_j and D_j = D(pi_j, pi_E),

    min_{w, xi}  ||w||^2 + C xi   s.t.  Delta_j . w >= D_j - xi,  xi >= 0,

is, for each fixed xi, a least-distance program solved exactly by scipy's NNLS (Lawson & Hanson's
LDP); its optimal cost is convex in xi, so a bounded scalar search over xi (above the least feasible
slack, one HiGHS LP) completes it. Then xi = max(0, max_j (D_j - w . Delta_j)) is the slack for w.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Literal

import numpy as np
import scipy.optimize
from tqdm.auto import tqdm

from irlhf.core.config import BaseConfig, NonNegative, Positive, PositiveInt
from irlhf.envs.tabular import TabularMDP
from irlhf.planning.demo_stats import Demos, ExpertStats, feature_expectations, feature_matrix, optimal_policy, resolve_planning



@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """Max-margin planning settings.

    solver: "constraint_generation" (QP over a growing working set) or "subgradient".
    C: weight of the slack xi against ||w||^2; large C = hard margin, small C = more slack.
    loss: the per-state-action loss l behind D(pi, pi_E) = sum rho_pi(s, a) l(s, a):
      "hamming" l = 1 where the expert's occupancy is 0 (state-action occupancy when demos or an
      (S, A) occupancy are given, state occupancy for an (S,) one), else 0;
      "visitation" l = 1 - the expert's occupancy normalised by its maximum.
    loss_scale: multiplies l; 0 turns the structured margin off (constraints w . mu_E >= w . mu_pi - xi).
    max_iter: constraint-generation rounds or subgradient steps.
    tol: constraint generation stops when the relative gap C (h - xi) / J(w) <= tol, where h is the
      most violated constraint's violation (J(w) - C (h - xi) lower-bounds the optimum, so tol bounds
      the relative suboptimality); the subgradient method when the subgradient's norm is <= tol
      (it usually runs all max_iter steps and returns the best iterate).
    step_size: subgradient step multiplier, alpha_k = step_size / (2 k).
    horizon: planning horizon; None = the demonstrations' common length (or mdp.horizon).
    infinite_horizon: plan infinite-horizon discounted instead (demos of any length).
    initial: start-state distribution of the model, "demos" (the demonstrations' empirical starts)
      or "mdp" (mdp.initial).
    progress: show a progress bar.
    """

    solver: Literal["constraint_generation", "subgradient"] = "constraint_generation"
    C: Positive = 10.0
    loss: Literal["hamming", "visitation"] = "hamming"
    loss_scale: NonNegative = 1.0
    max_iter: PositiveInt = 200
    tol: Positive = 1e-4
    step_size: Positive = 1.0
    horizon: PositiveInt | None = None
    infinite_horizon: bool = False
    initial: Literal["demos", "mdp"] = "demos"
    progress: bool = False


@dataclasses.dataclass
class Result:
    """F features, n generated constraints; policies (H, S, A) finite horizon or (S, A).

    weights (F,); reward phi @ w, (S,) or (S, A); policy: hard-optimal for the reward (no loss);
    mu_E, mu_pi (F,): expert and policy feature expectations.
    slack: xi, the most any policy violates its margin constraint at w, max(0, max_pi [w . mu_pi +
      D(pi, pi_E)] - w . mu_E), by one loss-augmented planning (>= every generated constraint's violation).
    objective: ||w||^2 + C * slack.  loss (S, A): l, already times loss_scale.
    mus (n, F), losses (n,): mu_j and D(pi_j, pi_E) of the generated policies (the working set, or
      the subgradient method's loss-augmented policies), in the order found.
    history: one dict per round / step.
    """

    weights: np.ndarray
    reward: np.ndarray
    policy: np.ndarray
    mu_E: np.ndarray
    mu_pi: np.ndarray
    slack: float
    objective: float
    loss: np.ndarray
    mus: np.ndarray
    losses: np.ndarray
    converged: bool
    history: list[dict]


def structured_loss(stats: ExpertStats, n_actions: int, kind: str, scale: float) -> np.ndarray:
    """l (S, A) from the expert occupancy: Hamming (1 off the expert's support) or 1 - normalised visits."""
    rho = stats.rho_E_sa if stats.rho_E_sa is not None else np.repeat(stats.rho_E[:, None], n_actions, axis=1)
    if kind == "hamming":
        l = (rho <= 1e-12 * rho.max()).astype(np.float64)  # relative zero: exact occupancies may leave ~1e-17
    else:
        l = 1.0 - rho / rho.max()
    return scale * l


def loss_augmented_policy(mdp: TabularMDP, phi: np.ndarray, w: np.ndarray, l: np.ndarray, horizon: int | None,
                          ) -> tuple[np.ndarray, np.ndarray, float]:
    """argmax_pi w . mu_pi + D(pi, pi_E): value iteration on r_w + l. Returns pi, mu_pi (F,), D."""
    r = phi @ w
    pi, rho_sa, mu = optimal_policy(mdp, phi, (r[:, None] if r.ndim == 1 else r) + l, horizon)
    return pi, mu, float((rho_sa * l).sum())


def solve_working_set(mu_E: np.ndarray, mus: np.ndarray, losses: np.ndarray, C: float) -> tuple[np.ndarray, float]:
    """The QP  min ||w||^2 + C xi  s.t.  w . (mu_E - mu_j) >= D_j - xi,  xi >= 0  over n constraints.

    mu_E (F,), mus (n, F), losses D (n,). Returns w (F,) and the optimal slack for it,
    xi = max(0, max_j (D_j - w . (mu_E - mu_j))). For a fixed xi the QP is a least-distance program
    (min ||w|| s.t. Delta w >= D - xi), solved exactly by NNLS (Lawson & Hanson 1974, ch. 23); its
    optimal cost is convex in xi, so one bounded scalar search over xi finishes the job.
    """
    Delta = mu_E[None, :] - mus  # (n, F): row j is mu_E - mu_j
    D = np.asarray(losses, dtype=np.float64)
    n, F = Delta.shape
    d_scale = float(np.abs(D).max())
    delta_scale = float(np.abs(Delta).max())
    if d_scale == 0.0 or delta_scale == 0.0:  # no margin to enforce (or no direction to enforce it in)
        w = np.zeros(F)
    else:
        w = _slack_search(Delta / delta_scale, D / d_scale, C * delta_scale**2 / d_scale) * (d_scale / delta_scale)
    xi = max(0.0, float((D - Delta @ w).max()))  # the optimal slack for this w
    return w, xi


# Solved in units where max |Delta| = max |D| = 1: w = (d / delta) v, xi = d eta turns ||w||^2 + C xi
# into (d / delta)^2 (||v||^2 + c eta) with c = C delta^2 / d, and keeps the constraints.


def least_distance(G: np.ndarray, h: np.ndarray) -> np.ndarray | None:
    """argmin ||v||_2 s.t. G v >= h (G (n, F)), or None if infeasible; Lawson & Hanson's LDP via NNLS.

    With E = [G^T; h^T] (F+1, n) and u = argmin_{u >= 0} ||E u - e_{F+1}||, r = E u - e_{F+1}:
    r = 0 means infeasible, else v = -r[:F] / r[F].
    """
    F = G.shape[1]
    E = np.vstack([G.T, h[None, :]])
    target = np.zeros(F + 1)
    target[F] = 1.0
    u, _ = scipy.optimize.nnls(E, target, maxiter=50 * (E.shape[0] + E.shape[1]))
    r = E @ u - target
    if r[F] > -1e-12:  # r[F] = ||r||^2 - 1 + ... : ~0 residual means no feasible v
        return None
    return -r[:F] / r[F]


def _slack_search(Delta: np.ndarray, D: np.ndarray, c: float) -> np.ndarray:
    """argmin_v ||v||^2 + c eta s.t. Delta v + eta >= D, eta >= 0 (scaled units).

    cost(eta) = ||LDP(Delta, D - eta)||^2 + c eta is convex on [eta_min, max(D)], where eta_min (an LP)
    is the least slack for which the constraints are feasible and v = 0 is feasible at max(D).
    """
    n, F = Delta.shape
    # eta_min = min eta s.t. Delta v + eta >= D (v free): HiGHS LP on (v, eta)
    lp = scipy.optimize.linprog(np.append(np.zeros(F), 1.0), A_ub=-np.hstack([Delta, np.ones((n, 1))]), b_ub=-D,
                                bounds=[(None, None)] * F + [(0.0, None)], method="highs")
    eta_lo = float(lp.x[F]) if lp.status == 0 else 0.0
    eta_hi = max(eta_lo, float(D.max()), 0.0)

    def solve(eta: float) -> tuple[float, np.ndarray]:
        v = least_distance(Delta, D - eta)
        if v is None:  # only within round-off of eta_min: nudge into the feasible side
            v = least_distance(Delta, D - eta - 1e-10)
        v = np.zeros(F) if v is None else v
        return float(v @ v + c * max(eta, 0.0)), v

    found = scipy.optimize.minimize_scalar(lambda eta: solve(eta)[0], bounds=(eta_lo, eta_hi), method="bounded",
                                           options={"xatol": 1e-12})
    candidates = [solve(eta) for eta in (eta_lo, float(found.x), eta_hi)]  # Brent never evaluates the ends
    return min(candidates, key=lambda cv: cv[0])[1]


def train(mdp: TabularMDP, demos: Demos, config: Config | None = None, *,
          features: np.ndarray | None = None) -> Result:
    """Run max-margin planning. ``demos``: list of Trajectory or an expert occupancy (S,) / (S, A).

    ``config`` None = ``Config()``. ``features`` overrides ``mdp.features`` ((S, F) or (S, A, F)).
    """
    config = Config() if config is None else config
    phi = feature_matrix(mdp, features)
    stats, plan_mdp, H = resolve_planning(mdp, demos, config.horizon, config.infinite_horizon, config.initial)
    mu_E = feature_expectations(phi, stats.rho_E, stats.rho_E_sa)
    l = structured_loss(stats, mdp.n_actions, config.loss, config.loss_scale)
    F, C = phi.shape[-1], config.C

    def hinge(w: np.ndarray) -> tuple[float, np.ndarray, float]:
        """max_pi w . mu_pi + D(pi, pi_E) - w . mu_E (one loss-augmented planning), with mu_pi*, D*."""
        _, mu, D = loss_augmented_policy(plan_mdp, phi, w, l, H)
        return float(w @ (mu - mu_E) + D), mu, D

    history: list[dict] = []
    mus: list[np.ndarray] = []
    losses: list[float] = []
    bar = tqdm(total=config.max_iter, desc=f"mmp ({config.solver})", disable=not config.progress, leave=False)
    t0 = time.perf_counter()
    converged = False
    w = np.zeros(F)

    if config.solver == "constraint_generation":
        xi = 0.0  # the empty working set: w = 0, xi = 0
        for k in range(1, config.max_iter + 1):
            h, mu, D = hinge(w)
            objective = float(w @ w + C * max(0.0, h))  # J(w): an upper bound on the optimum
            history.append({"iter": k, "objective": objective, "lower_bound": float(w @ w + C * xi), "slack": xi,
                            "violation": h - xi,
                            "n_constraints": len(mus), "seconds": time.perf_counter() - t0})
            if C * (h - xi) <= config.tol * max(objective, 1e-12):  # no policy violates its constraint by
                converged = True  # much more than the slack: J(w) is within tol (relative) of the optimum
                break
            mus.append(mu)
            losses.append(D)
            w, xi = solve_working_set(mu_E, np.array(mus), np.array(losses), C)
            bar.update(1)
            bar.set_postfix(violation=f"{h - xi:.3g}")
    else:
        best_w, best_J = w, np.inf
        for k in range(1, config.max_iter + 1):
            h, mu, D = hinge(w)
            mus.append(mu)
            losses.append(D)
            objective = float(w @ w + C * max(0.0, h))
            if objective < best_J:  # J is evaluated exactly, so keep the best iterate
                best_w, best_J = w, objective
            g = 2.0 * w + (C * (mu - mu_E) if h > 0 else 0.0)  # a subgradient of J at w
            history.append({"iter": k, "objective": objective, "slack": max(0.0, h),
                            "grad_norm": float(np.linalg.norm(g)), "seconds": time.perf_counter() - t0})
            if np.linalg.norm(g) <= config.tol:
                converged = True
                break
            w = w - config.step_size / (2.0 * k) * g
            bar.update(1)
            bar.set_postfix(objective=f"{objective:.4g}")
        w = best_w
    bar.close()

    h, _, _ = hinge(w)
    slack = max(0.0, h)
    pi, _, mu_pi = optimal_policy(plan_mdp, phi, phi @ w, H)
    return Result(weights=w, reward=phi @ w, policy=pi, mu_E=mu_E, mu_pi=mu_pi, slack=slack,
                  objective=float(w @ w + C * slack), loss=l, mus=np.array(mus).reshape(-1, F),
                  losses=np.array(losses), converged=converged, history=history)
