"""Destination-conditioned MaxEnt IRL on a road network (Ziebart, Maas, Bagnell & Dey, AAAI 2008).

Drivers choose routes with P(route | o, d) = exp(-theta . f(route)) / Z_d(o) (``irlhf.planning.routes``). Given
demonstrated routes, maximise their mean log-likelihood, i.e. minimise the convex

    L(theta) = (1/n) sum_i [theta . f(route_i) + log Z_{d_i}(o_i)] + (l2 / 2) ||theta||^2,
    grad L   = (1/n) sum_i (f(route_i) - E[f | o_i, d_i]) + l2 theta        (empirical minus expected counts)

over theta >= 0 (costs, never rewards for driving). Each evaluation is one LU of I - M, one backward solve with a
right-hand side per distinct destination, and one forward solve (``RouteModel.statistics``). The optimiser is
L-BFGS-B with the bounds theta >= 0, on eta = theta * sd(f) (each feature's spread over the demonstrations): road
features differ in scale by 100x (km per edge against turns), and this preconditioning cuts the iterations ~5x. A
trial point where loops cost too little for the sum over routes to converge (L = +inf there) is reported to it as
a huge finite loss, so its line search steps back instead of stopping.

Identifiability: with speed limits at their class defaults, minutes are a linear function of the per-class km, so
only their combination (the cost of each edge) is determined by routes; compare weights with that in mind.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import scipy.optimize
from tqdm.auto import tqdm

from irlhf.core.config import BaseConfig, NonNegative, Positive, PositiveInt
from irlhf.core.errors import ValidationError, shown
from irlhf.envs.roads import FEATURE_NAMES, RoadNetwork
from irlhf.planning.routes import RouteBatch, RouteCostsTooHigh, RouteCostsTooLow, RouteModel

# the starting theta: every turn costs at least 1.5 nats, so a state's outgoing weights sum below 1 (at most two
# straight-on exits, three more left/right, one U-turn: 0.87) whatever the edge lengths, and the sum over loops
# converges; a median edge adds 0.5 nats of minutes
INITIAL_TURN_NATS = {"turn_left": 2.0, "turn_right": 2.0, "turn_straight": 1.5, "turn_uturn": 4.0}
INITIAL_EDGE_NATS = 0.5
DIVERGED_LOSS = 1e10  # what L-BFGS-B sees where L = +inf (an inf ends its search early)


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """MaxEnt route IRL settings.

    max_iter: L-BFGS-B iterations at most.  tol: stop when the largest entry of the projected gradient (in the
      preconditioned variables eta) is below tol.
    l2: L2 penalty on theta (0 = plain maximum likelihood).  progress: show a progress bar.
    """

    max_iter: PositiveInt = 200
    tol: Positive = 1e-7
    l2: NonNegative = 0.0
    progress: bool = False


@dataclasses.dataclass
class Result:
    """theta (F,) learned cost weights over FEATURE_NAMES; nll: final mean negative log-likelihood per route;
    empirical / expected (F,) mean feature counts of the demonstrations and of the model; history: one dict per
    accepted step (iteration, nll, gradient norm, step, seconds)."""

    theta: np.ndarray
    nll: float
    empirical: np.ndarray
    expected: np.ndarray
    converged: bool
    history: list[dict]
    feature_names: tuple[str, ...] = FEATURE_NAMES

    def model(self, net: RoadNetwork) -> RouteModel:
        return RouteModel(net, self.theta)


def initial_theta(net: RoadNetwork) -> np.ndarray:
    """Turn costs INITIAL_TURN_NATS and minutes scaled so the median edge costs INITIAL_EDGE_NATS."""
    minutes = net.edge_features[:, FEATURE_NAMES.index("minutes")]
    theta = np.zeros(net.n_features)
    theta[FEATURE_NAMES.index("minutes")] = INITIAL_EDGE_NATS / np.median(minutes)
    for name, value in INITIAL_TURN_NATS.items():
        theta[FEATURE_NAMES.index(name)] = value
    return theta


def objective(net: RoadNetwork, batch: RouteBatch, theta: np.ndarray, empirical: np.ndarray,
              l2: float = 0.0) -> tuple[float, np.ndarray]:
    """L(theta) and its gradient; +inf (and no gradient) where the sum over routes diverges or underflows."""
    try:
        stats = RouteModel(net, theta).statistics(batch)
    except (RouteCostsTooLow, RouteCostsTooHigh):
        return np.inf, np.full_like(theta, np.nan)
    n = len(batch)
    nll = -stats["log_prob"].mean() + 0.5 * l2 * theta @ theta
    grad = empirical - stats["expected_features"] / n + l2 * theta
    return float(nll), grad


def train(net: RoadNetwork, routes: RouteBatch | list[np.ndarray], config: Config | None = None, *,
          theta0: np.ndarray | None = None, progress: bool | None = None) -> Result:
    """Fit cost weights theta >= 0 to demonstrated routes (edge sequences) by maximum likelihood."""
    config = config or Config()
    batch = routes if isinstance(routes, RouteBatch) else RouteBatch.from_routes(net, routes)
    route_features = batch.features(net)
    empirical = route_features.mean(axis=0)
    theta = initial_theta(net) if theta0 is None else np.asarray(theta0, np.float64).copy()
    if theta.shape != (net.n_features,) or not np.isfinite(theta).all() or (theta < 0).any():
        raise ValidationError(f"theta0={shown(theta)}: expected {net.n_features} finite weights >= 0")
    if not np.isfinite(objective(net, batch, theta, empirical, config.l2)[0]):
        raise ValidationError(f"theta0={shown(np.round(theta, 4))}: the sum over routes diverges there; expected "
                              f"larger starting costs")
    history: list[dict] = []
    start = time.perf_counter()
    show = config.progress if progress is None else progress
    bar = tqdm(total=config.max_iter, desc="route MaxEnt", disable=not show, leave=False)

    spread = route_features.std(axis=0)
    scale = np.where(spread > 0, spread, 1.0)  # eta = theta * scale; a feature the routes never vary keeps scale 1

    last: dict = {}  # the latest evaluation, so the per-iteration record costs nothing

    def loss(eta: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = objective(net, batch, eta / scale, empirical, config.l2)
        last.update(eta=eta.copy(), f=f, g=g)
        return (f, g / scale) if np.isfinite(f) else (DIVERGED_LOSS, np.zeros_like(eta))

    def record(eta: np.ndarray) -> None:
        x = eta / scale
        f, g = ((last["f"], last["g"]) if np.array_equal(last.get("eta"), eta)
                else objective(net, batch, x, empirical, config.l2))
        gap = float(np.abs(x - np.maximum(x - g, 0.0)).max())  # projected gradient in theta: zero at the optimum
        history.append({"iteration": len(history) + 1, "nll": f, "gap": gap, "seconds": time.perf_counter() - start})
        bar.update(1)
        bar.set_postfix(nll=f"{f:.4f}")

    out = scipy.optimize.minimize(loss, theta * scale, jac=True, method="L-BFGS-B", callback=record,
                                  bounds=[(0.0, None)] * net.n_features,
                                  options={"maxiter": config.max_iter, "gtol": config.tol, "ftol": 1e-15})
    bar.close()
    theta = out.x / scale
    f, g = objective(net, batch, theta, empirical, config.l2)
    expected = empirical - (g - config.l2 * theta)
    return Result(theta=theta, nll=f, empirical=empirical, expected=expected, converged=bool(out.success),
                  history=history)
