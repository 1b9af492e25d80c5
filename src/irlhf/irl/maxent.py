"""Maximum-entropy IRL (Ziebart et al. 2008) with a linear reward r_w = w . f and known dynamics.

The model: the expert is soft-optimal for r_w (soft value iteration, finite horizon H or
infinite-horizon discounted). We maximise the concave dual

    g(w) = w . mu_E - E_{s0 ~ d0}[V_0^w(s0)] - (l2 / 2) ||w||^2,

whose exact gradient is the lecture's  mu_E - E_pi[f] - l2 w  (dV_0/dr = the soft policy's
discounted occupancy). With deterministic dynamics and discount 1, g is the demonstrations'
log-likelihood; in general it is the causal-entropy dual, so L-BFGS can line-search on it.
Each evaluation is one backward soft value iteration and one forward occupancy pass.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Literal

import numpy as np
import scipy.optimize
from tqdm.auto import tqdm

from irlhf.core.config import BaseConfig, NonNegative, Positive, PositiveInt
from irlhf.core.errors import ValidationError
from irlhf.envs.tabular import TabularMDP
from irlhf.planning.demo_stats import Demos, demo_log_likelihood, feature_expectations, feature_matrix, resolve_planning
from irlhf.planning import occupancy_measure, soft_value_iteration


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """MaxEnt IRL settings.

    horizon: planning horizon; None = the demonstrations' common length (or mdp.horizon).
    infinite_horizon: plan infinite-horizon discounted instead (demos of any length).
    optimizer: "lbfgs" (scipy L-BFGS-B on the dual) or "adam" (gradient ascent with Adam).
    max_iter: optimiser iterations.  lr: Adam step size.
    l2: L2 penalty on w; > 0 keeps the dual bounded when finitely many demos give an mu_E no policy
      attains exactly (then w would grow without limit). 0 for exact expert occupancies.
    tol: stop when the gradient's largest entry (the feature-expectation gap) falls below tol.
    initial: start-state distribution of the model, "demos" (the demonstrations' empirical starts,
      so mu_E is attainable at t = 0 and the dual stays bounded) or "mdp" (mdp.initial).
    progress: show a progress bar.
    """

    horizon: PositiveInt | None = None
    infinite_horizon: bool = False
    optimizer: Literal["lbfgs", "adam"] = "lbfgs"
    max_iter: PositiveInt = 200
    lr: Positive = 0.05
    l2: NonNegative = 0.1
    tol: Positive = 1e-6
    initial: Literal["demos", "mdp"] = "demos"
    progress: bool = False


@dataclasses.dataclass
class Result:
    """weights (F,); reward (S,) or (S, A); policy: soft-optimal for the reward, (H, S, A) or (S, A);
    mu_E / mu_pi (F,) expert and final policy feature expectations; history: one dict per evaluation."""

    weights: np.ndarray
    reward: np.ndarray
    policy: np.ndarray
    mu_E: np.ndarray
    mu_pi: np.ndarray
    objective: float
    converged: bool
    history: list[dict]


def objective_and_gradient(mdp: TabularMDP, phi: np.ndarray, mu_E: np.ndarray, w: np.ndarray,
                           horizon: int | None, l2: float = 0.0, V_init: np.ndarray | None = None):
    """g(w), its gradient mu_E - mu_pi - l2 w, and the soft values V, policy pi and mu_pi at w.

    phi (S, F) or (S, A, F); horizon None = infinite-horizon discounted (mdp.horizon must be None).
    """
    r = phi @ w
    V, _, pi = soft_value_iteration(mdp, r, horizon=horizon, V_init=V_init)
    V0 = V if horizon is None else V[0]
    rho_sa = occupancy_measure(mdp, pi, horizon=horizon, state_action=True)
    mu_pi = feature_expectations(phi, rho_sa.sum(axis=1), rho_sa)
    g = float(w @ mu_E - mdp.initial @ V0 - 0.5 * l2 * w @ w)
    return g, mu_E - mu_pi - l2 * w, V, pi, mu_pi


def train(mdp: TabularMDP, demos: Demos, config: Config | None = None, *,
          features: np.ndarray | None = None, w_init: np.ndarray | None = None) -> Result:
    """Fit w by maximising g(w). ``demos``: list of Trajectory or an expert occupancy (S,) / (S, A).

    ``config`` None = ``Config()``. ``features`` overrides ``mdp.features`` ((S, F) or (S, A, F));
    ``w_init`` (F,) defaults to zeros.
    """
    config = Config() if config is None else config
    phi = feature_matrix(mdp, features)
    stats, plan_mdp, H = resolve_planning(mdp, demos, config.horizon, config.infinite_horizon, config.initial)
    mu_E = feature_expectations(phi, stats.rho_E, stats.rho_E_sa)
    F = phi.shape[-1]
    w = np.zeros(F) if w_init is None else np.array(w_init, dtype=np.float64)
    if w.shape != (F,):
        raise ValidationError(f"w_init: shape {w.shape}; expected ({F},)")

    history: list[dict] = []
    state = {"V": None}  # warm start: the last soft values seed the next infinite-horizon solve
    bar = tqdm(total=config.max_iter, desc="maxent", disable=not config.progress, leave=False)
    t0 = time.perf_counter()

    def evaluate(w: np.ndarray):
        g, grad, V, pi, mu_pi = objective_and_gradient(plan_mdp, phi, mu_E, w, H, config.l2, state["V"])
        if H is None:
            state["V"] = V
        record = {"eval": len(history), "objective": g, "grad_max": float(np.abs(grad).max()),
                  "feature_gap": float(np.linalg.norm(mu_E - mu_pi)), "seconds": time.perf_counter() - t0}
        history.append(record)
        return g, grad, pi, mu_pi

    converged = False
    if config.optimizer == "lbfgs":
        def negative(w: np.ndarray):
            g, grad, _, _ = evaluate(w)
            return -g, -grad

        def step(_w: np.ndarray) -> None:
            bar.update(1)
            bar.set_postfix(gap=f"{history[-1]['feature_gap']:.3g}", refresh=False)

        out = scipy.optimize.minimize(negative, w, jac=True, method="L-BFGS-B", callback=step,
                                      options={"maxiter": config.max_iter, "gtol": config.tol, "ftol": 1e-15})
        w = out.x
        converged = bool(out.success)
    else:
        m, v = np.zeros(F), np.zeros(F)
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        for k in range(1, config.max_iter + 1):
            _, grad, _, _ = evaluate(w)
            if np.abs(grad).max() < config.tol:
                converged = True
                break
            m = beta1 * m + (1 - beta1) * grad
            v = beta2 * v + (1 - beta2) * grad**2
            w = w + config.lr * (m / (1 - beta1**k)) / (np.sqrt(v / (1 - beta2**k)) + eps)  # ascent
            bar.update(1)
            bar.set_postfix(gap=f"{history[-1]['feature_gap']:.3g}", refresh=False)
    bar.close()

    g, grad, pi, mu_pi = evaluate(w)  # final policy and statistics at the returned weights
    converged = converged or float(np.abs(grad).max()) < config.tol
    if stats.demos is not None and H is not None:
        history[-1]["demo_log_likelihood"] = demo_log_likelihood(pi, stats.demos)
    return Result(weights=w, reward=phi @ w, policy=pi, mu_E=mu_E, mu_pi=mu_pi, objective=g,
                  converged=converged, history=history)
