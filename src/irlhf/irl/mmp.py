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
The QP over a working set with Delta_j = mu_E - mu_j and D_j = D(pi_j, pi_E) has F + 1 variables (w, xi),
and its dual

    max_alpha  sum_j alpha_j D_j - ||sum_j alpha_j Delta_j||^2 / 4   s.t.  alpha >= 0,  sum_j alpha_j <= C,

with w = sum_j alpha_j Delta_j / 2, has n. scipy's SLSQP solves the smaller of the two; then
xi = max(0, max_j (D_j - w . Delta_j)) is the optimal slack for w.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import scipy.optimize
from tqdm.auto import tqdm

from irlhf.core.config import BaseConfig, check_choice, check_number
from irlhf.core.errors import ValidationError
from irlhf.envs.tabular import TabularMDP
from irlhf.irl.expert import Demos, ExpertStats, feature_expectations, feature_matrix, resolve_planning
from irlhf.planning import occupancy_measure, value_iteration

QP_FTOL = 1e-13  # SLSQP accuracy on the rescaled QP objectives (order-one terms)


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

    solver: str = "constraint_generation"
    C: float = 10.0
    loss: str = "hamming"
    loss_scale: float = 1.0
    max_iter: int = 200
    tol: float = 1e-4
    step_size: float = 1.0
    horizon: int | None = None
    infinite_horizon: bool = False
    initial: str = "demos"
    progress: bool = False

    def __post_init__(self) -> None:
        check_choice("solver", self.solver, ("constraint_generation", "subgradient"))
        check_number("C", self.C, low=0, low_open=True)
        check_choice("loss", self.loss, ("hamming", "visitation"))
        check_number("loss_scale", self.loss_scale, low=0)
        check_number("max_iter", self.max_iter, low=1, integer=True)
        check_number("tol", self.tol, low=0, low_open=True)
        check_number("step_size", self.step_size, low=0, low_open=True)
        if self.horizon is not None:
            check_number("horizon", self.horizon, low=1, integer=True)
        if not isinstance(self.infinite_horizon, bool):
            raise ValidationError(f"infinite_horizon={self.infinite_horizon!r}: expected a bool")
        check_choice("initial", self.initial, ("demos", "mdp"))


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
    _, _, pi = value_iteration(mdp, (r[:, None] if r.ndim == 1 else r) + l, horizon=horizon)
    rho_sa = occupancy_measure(mdp, pi, horizon=horizon, state_action=True)
    return pi, feature_expectations(phi, rho_sa.sum(axis=1), rho_sa), float((rho_sa * l).sum())


def solve_working_set(mu_E: np.ndarray, mus: np.ndarray, losses: np.ndarray, C: float,
                      w_start: np.ndarray | None = None, alpha_start: np.ndarray | None = None,
                      ) -> tuple[np.ndarray, float, np.ndarray | None]:
    """The QP  min ||w||^2 + C xi  s.t.  w . (mu_E - mu_j) >= D_j - xi,  xi >= 0  over n constraints.

    mu_E (F,), mus (n, F), losses D (n,); ``w_start`` (F,) warm-starts the primal, ``alpha_start`` (<= n,)
    the dual (missing entries start at 0). Returns w (F,), the optimal slack for it,
    xi = max(0, max_j (D_j - w . (mu_E - mu_j))), and the dual multipliers alpha (n,) with
    w = sum_j alpha_j (mu_E - mu_j) / 2 (None when the primal was solved). SLSQP solves whichever
    form has fewer variables: the dual (n) while n <= F, else the primal (F + 1); past F constraints
    the dual's Gram matrix is singular, which stalls SLSQP's quasi-Newton steps.
    """
    Delta = mu_E[None, :] - mus  # (n, F): row j is mu_E - mu_j
    D = np.asarray(losses, dtype=np.float64)
    n, F = Delta.shape
    d_scale = float(np.abs(D).max())
    delta_scale = float(np.abs(Delta).max())
    alpha = None
    if d_scale == 0.0 or delta_scale == 0.0:  # no margin to enforce (or no direction to enforce it in)
        w = np.zeros(F)
    elif n <= F:
        to_scaled = delta_scale**2 / d_scale  # alpha in the scaled problem = to_scaled * alpha in ours
        start = np.zeros(n)
        if alpha_start is not None:
            start[: len(alpha_start)] = np.asarray(alpha_start)[:n] * to_scaled
        v, alpha_scaled = _dual(Delta / delta_scale, D / d_scale, C * to_scaled, start)
        w, alpha = v * (d_scale / delta_scale), alpha_scaled / to_scaled
    else:
        start = None if w_start is None else np.asarray(w_start) * (delta_scale / d_scale)
        w = _primal(Delta / delta_scale, D / d_scale, C * delta_scale**2 / d_scale, start) * (d_scale / delta_scale)
    xi = max(0.0, float((D - Delta @ w).max()))  # the optimal slack for this w
    return w, xi, alpha


# Both forms are solved in units where max |Delta| = max |D| = 1: w = (d / delta) v, xi = d eta turns
# ||w||^2 + C xi into (d / delta)^2 (||v||^2 + c eta) with c = C delta^2 / d, and keeps the constraints.


def _primal(Delta: np.ndarray, D: np.ndarray, c: float, v_start: np.ndarray | None) -> np.ndarray:
    """argmin_v ||v||^2 + c eta s.t. Delta v + eta >= D, eta >= 0 (SLSQP on (v, eta))."""
    n, F = Delta.shape
    A = np.hstack([Delta, np.ones((n, 1))])
    v0 = np.zeros(F) if v_start is None else v_start
    z0 = np.append(v0, max(0.0, float((D - Delta @ v0).max())))  # feasible start: eta = the slack v0 needs
    out = scipy.optimize.minimize(
        lambda z: (float(z[:F] @ z[:F] + c * z[F]), np.append(2.0 * z[:F], c)), z0, jac=True, method="SLSQP",
        bounds=[(None, None)] * F + [(0.0, None)],
        constraints=[{"type": "ineq", "fun": lambda z: A @ z - D, "jac": lambda z: A}],
        options={"ftol": QP_FTOL, "maxiter": 1000},
    )
    return out.x[:F]


def _dual(Delta: np.ndarray, D: np.ndarray, c: float,
          alpha_start: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(v = Delta^T alpha / 2, alpha) at argmax_alpha alpha . D - alpha K alpha / 4 s.t. alpha >= 0, sum alpha <= c.

    ``alpha_start`` warm-starts SLSQP (constraint generation adds one row at a time: the previous
    multipliers plus a 0 are nearly optimal, which cuts SLSQP's iterations several-fold)."""
    n = len(D)
    alpha0 = np.zeros(n) if alpha_start is None else np.clip(alpha_start, 0.0, c)
    if alpha0.sum() > c:
        alpha0 *= c / alpha0.sum()
    K = Delta @ Delta.T  # (n, n) Gram matrix of the constraint directions

    def negative_dual(alpha: np.ndarray) -> tuple[float, np.ndarray]:
        Ka = K @ alpha
        return -(alpha @ D - 0.25 * (alpha @ Ka)), -(D - 0.5 * Ka)

    out = scipy.optimize.minimize(
        negative_dual, alpha0, jac=True, method="SLSQP", bounds=[(0.0, c)] * n,
        constraints=[{"type": "ineq", "fun": lambda a: np.array([c - a.sum()]), "jac": lambda a: -np.ones((1, n))}],
        options={"ftol": QP_FTOL, "maxiter": 1000},
    )
    alpha = np.clip(out.x, 0.0, c)
    if alpha.sum() > c:  # SLSQP may step ~1e-15 outside sum(alpha) <= c
        alpha *= c / alpha.sum()
    return 0.5 * alpha @ Delta, alpha  # stationarity of the Lagrangian: 2 v = sum_j alpha_j Delta_j


def train(mdp: TabularMDP, demos: Demos, config: Config = Config(), *,
          features: np.ndarray | None = None) -> Result:
    """Run max-margin planning. ``demos``: list of Trajectory or an expert occupancy (S,) / (S, A).

    ``features`` overrides ``mdp.features`` ((S, F) or (S, A, F)).
    """
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
        xi, alpha = 0.0, None  # the empty working set: w = 0, xi = 0
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
            w, xi, alpha = solve_working_set(mu_E, np.array(mus), np.array(losses), C, w, alpha)
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
    _, _, pi = value_iteration(plan_mdp, phi @ w, horizon=H)
    rho_sa = occupancy_measure(plan_mdp, pi, horizon=H, state_action=True)
    mu_pi = feature_expectations(phi, rho_sa.sum(axis=1), rho_sa)
    return Result(weights=w, reward=phi @ w, policy=pi, mu_E=mu_E, mu_pi=mu_pi, slack=slack,
                  objective=float(w @ w + C * slack), loss=l, mus=np.array(mus).reshape(-1, F),
                  losses=np.array(losses), converged=converged, history=history)
