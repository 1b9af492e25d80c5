"""The comparison models of Ziebart et al. (AAAI 2008, "Maximum Entropy Inverse Reinforcement Learning", Table 1)
for route prediction on a ``RoadNetwork``: shortest time / length, max-margin planning, and a per-turn action model.

Routes are edge sequences (states of the road MDP); origins and destinations are node indices. Costs use the
features of ``irlhf.envs.roads.FEATURE_NAMES``: cost(route) = theta . f(route), theta (F,) >= 0.

(a) Shortest route:  argmin_route  sum_e minutes(e)   (by="time")   or   sum_e km(e)   (by="length").

(b) Max-margin planning (Ratliff, Bagnell & Zinkevich, ICML 2006, "Maximum margin planning"), route form:

        min_{theta >= 0}  lambda/2 ||theta||^2 + 1/n sum_i [ cost(r_i) - min_path (cost(path) - loss_i(path)) ]_+

    with the structured loss loss_i(path) = m * (km of route r_i that path does not drive), m = margin_per_km: the
    demonstration must beat every path by m per km of the demonstration it misses. The usual loss "m per km of path
    off the demonstration" would give Dijkstra negative edge costs; ours differs from it by m * km(path) - a term
    that favours short paths, not the demonstration - and keeps every cost >= 0, because

        min_path (cost(path) - loss_i(path)) = min_path (cost(path) + m * km(path on r_i)) - m * km(r_i),

    so loss-augmented planning is a Dijkstra run on the state graph with each demonstrated edge's cost raised by m
    per km, and each hinge is >= 0 (the demonstration itself is a path). Solved by projected subgradient descent,
    theta <- max(0, theta - a_t P (lambda theta + 1/n sum_i [f(r_i) - f(path_i*)])), a_t = step_size / sqrt(t),
    with P = diag(1 / sd(f)^2) over the demonstrations (features differ in scale by 100x: km per edge against
    turns; unpreconditioned steps overshoot), keeping the iterate of least objective (steps are not monotone).

(c) Per-turn action model: a multinomial logit over the choices at each decision of a route (the edges leaving the
    origin; then each successor edge of the current edge, plus "stop" when the current edge enters the destination):

        P(c | s, d) = exp(w . x(s, c, d)) / sum_{c'} exp(w . x(s, c', d)),

    x = the candidate edge's features and its turn one-hot (``FEATURE_NAMES``), straight-line progress towards the
    destination (km), |heading error| to the destination (radians, in [0, pi]) and a "stop" indicator (the stop
    choice has only that feature). P(route) is the product over its decisions, stop included. w maximises the
    convex log-likelihood with L2 (L-BFGS); every decision of every route is one segment of flat arrays.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Literal

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra
from tqdm.auto import tqdm

from irlhf.core.config import BaseConfig, NonNegative, Positive, PositiveInt
from irlhf.core.errors import ValidationError, shown
from irlhf.envs.roads import FEATURE_NAMES, ROAD_CLASSES, TURNS, RoadNetwork
from irlhf.planning.routes import RouteBatch, RouteModel

EPS_COST = 1e-12  # csgraph drops explicit zeros, so a zero-cost move would vanish from the graph
TURN_FEATURE_NAMES = FEATURE_NAMES + ("progress_km", "heading_error_rad", "stop")


# ---------------------------------------------------------------------------------------------- (a) shortest route
def shortest_theta(by: Literal["time", "length"] = "time") -> np.ndarray:
    """(F,) cost weights of the shortest-time (1 per minute) or shortest-length (1 per km, any class) driver."""
    if by not in ("time", "length"):
        raise ValidationError(f"by={shown(by)}: expected 'time' or 'length'")
    names = ("minutes",) if by == "time" else tuple(f"km_{c}" for c in ROAD_CLASSES)
    return np.array([1.0 if f in names else 0.0 for f in FEATURE_NAMES])


def shortest_route(net: RoadNetwork, origin: int, destination: int,
                   by: Literal["time", "length"] = "time") -> np.ndarray:
    """The fastest (by="time": least minutes at the speed limits) or shortest (by="length": least km) route from node
    index ``origin`` to node index ``destination``, as edges; turns cost nothing."""
    return RouteModel(net, shortest_theta(by)).best_route(origin, destination)


# ------------------------------------------------------------------------------------------- (b) max-margin planning
@dataclasses.dataclass(frozen=True)
class MMPConfig(BaseConfig):
    """Max-margin planning on routes.

    l2: lambda, the weight of lambda/2 ||theta||^2; it sets theta's scale against the margin.
    margin_per_km: m, nats per km of the demonstration a path misses (0: plain structured perceptron with L2).
    step_size: a_t = step_size / sqrt(t), in units of the features' spread.  max_iter: subgradient steps.
    tol: stop when the subgradient's norm is at most tol.  progress: show a progress bar.
    """

    l2: Positive = 0.01
    margin_per_km: NonNegative = 1.0
    step_size: Positive = 0.1
    max_iter: PositiveInt = 200
    tol: NonNegative = 1e-9
    progress: bool = False


@dataclasses.dataclass
class MMPResult:
    """theta (F,) >= 0 of least objective seen; objective at it; history: one dict per step (objective, hinge,
    matched = fraction of demonstrations that are their own loss-augmented best path, step, seconds)."""

    theta: np.ndarray
    objective: float
    converged: bool
    history: list[dict]


class _StateGraph:
    """The state graph with a virtual start node E, rebuilt cheaply per route: transitions' costs are fixed for a
    given theta; only the start row (the origin's edges) and the raised costs into demonstrated edges change."""

    def __init__(self, net: RoadNetwork):
        self.net = net
        self.into_order = np.argsort(net.succ, kind="stable")  # transitions grouped by the edge they enter
        self.into_ptr = np.concatenate([[0], np.cumsum(np.bincount(net.succ, minlength=net.n_states))])

    def transitions_into(self, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions in ``succ`` of the transitions entering each of ``edges``, and which edge (index into edges)."""
        sizes = np.diff(self.into_ptr)[edges]
        ptr = np.concatenate([[0], np.cumsum(sizes)])
        which = np.repeat(np.arange(len(edges)), sizes)
        return self.into_order[self.into_ptr[edges][which] + np.arange(ptr[-1]) - ptr[which]], which

    def cheapest(self, trans_cost: np.ndarray, edge_cost: np.ndarray, origin: int, destination: int,
                 limit: float = np.inf) -> tuple[np.ndarray, float]:
        """The cheapest route (edges) from node ``origin`` to node ``destination`` and its cost, by Dijkstra."""
        net, E = self.net, self.net.n_states
        out = net.out_edges[net.out_ptr[origin]:net.out_ptr[origin + 1]]
        G = sp.csr_array((np.concatenate([trans_cost, edge_cost[out]]) + EPS_COST,
                          np.concatenate([net.succ, out]), np.append(net.succ_ptr, len(net.succ) + len(out))),
                         shape=(E + 1, E + 1))
        dist, pred = dijkstra(G, indices=E, return_predecessors=True, limit=limit)
        ends = net.in_edges[net.in_ptr[destination]:net.in_ptr[destination + 1]]
        if not np.isfinite(dist[ends]).any():
            raise ValidationError(f"destination {shown(net.node_ids[destination])}: not reachable from origin "
                                  f"{shown(net.node_ids[origin])}")
        s = end = int(ends[np.argmin(dist[ends])])
        path = [s]
        while pred[s] != E:
            s = int(pred[s])
            path.append(s)
        return np.array(path[::-1], dtype=np.int64), float(dist[end])


def train_mmp(net: RoadNetwork, batch: RouteBatch, config: MMPConfig | None = None, *,
              theta0: np.ndarray | None = None) -> MMPResult:
    """Max-margin planning (Ratliff et al. 2006) on demonstrated routes; see the module docstring for the objective.

    theta0: the starting weights (F,) >= 0 (default zeros). Each step runs one loss-augmented Dijkstra per route on
    the state graph (E + 1 nodes), cut off beyond the demonstration's own augmented cost, which bounds the best
    path's.
    """
    config = config or MMPConfig()
    if not isinstance(batch, RouteBatch):
        raise ValidationError(f"batch={shown(type(batch).__name__)}: expected a RouteBatch (RouteBatch.from_routes)")
    n, m = len(batch), config.margin_per_km
    graph = _StateGraph(net)
    demo_f = batch.features(net)
    km = net.length_m / 1000.0
    route_edges = [batch.route(i) for i in range(n)]
    on_route = [np.unique(r) for r in route_edges]
    into = [graph.transitions_into(u) for u in on_route]
    try:
        theta = np.zeros(net.n_features) if theta0 is None else np.array(theta0, dtype=np.float64)
    except (TypeError, ValueError):
        theta = np.full(1, np.nan)
    if theta.shape != (net.n_features,) or not np.isfinite(theta).all() or (theta < 0).any():
        raise ValidationError(f"theta0={shown(theta0)}: expected {net.n_features} finite cost weights >= 0")
    spread = demo_f.std(axis=0)
    precondition = 1.0 / np.where(spread > 0, spread, 1.0) ** 2  # steps in eta = theta * sd(f), as route MaxEnt
    best = (np.inf, theta.copy())
    history: list[dict] = []
    converged = False
    bar = tqdm(range(1, config.max_iter + 1), disable=not config.progress, desc="mmp")
    start = time.perf_counter()
    for t in bar:
        edge_cost, trans_cost = net.costs(theta)
        hinge, active = np.zeros(n), np.zeros(n, dtype=bool)
        path_f = demo_f.copy()
        for i, r in enumerate(route_edges):
            pos, which = into[i]
            edges_i = on_route[i]
            aug_edge = edge_cost.copy()
            aug_edge[edges_i] += m * km[edges_i]
            aug_trans = trans_cost.copy()
            aug_trans[pos] += m * km[edges_i[which]]
            demo_aug = demo_f[i] @ theta + m * km[r].sum()
            path, aug_cost = graph.cheapest(aug_trans, aug_edge, int(batch.origins[i]), int(batch.destinations[i]),
                                            limit=demo_aug + 1e-9 * (1.0 + demo_aug) + len(r) * 2 * EPS_COST)
            hinge[i] = max(demo_aug - aug_cost, 0.0)
            active[i] = hinge[i] > 1e-9 * (1.0 + demo_aug)  # beyond float noise: a path beats the demonstration
            if active[i]:
                path_f[i] = net.route_features(path)
        objective = 0.5 * config.l2 * theta @ theta + hinge.mean()
        if objective < best[0]:
            best = (objective, theta.copy())
        grad = config.l2 * theta + (demo_f - path_f).mean(axis=0)
        step = config.step_size / np.sqrt(t)
        history.append({"iteration": t, "objective": float(objective), "hinge": float(hinge.mean()),
                        "matched": float(1.0 - active.mean()), "step": float(step),
                        "seconds": time.perf_counter() - start})
        bar.set_postfix(objective=f"{objective:.4g}")
        if np.linalg.norm(grad) <= config.tol:
            converged = True
            break
        theta = np.maximum(theta - step * precondition * grad, 0.0)
    return MMPResult(theta=best[1], objective=float(best[0]), converged=converged, history=history)


# ------------------------------------------------------------------------------------------ (c) per-turn action model
@dataclasses.dataclass(frozen=True)
class TurnConfig(BaseConfig):
    """Per-turn logit settings. l2: weight of l2/2 ||w||^2 beside the mean negative log-likelihood per route.
    max_iter: L-BFGS iterations.  tol: L-BFGS gradient tolerance."""

    l2: NonNegative = 1e-3
    max_iter: PositiveInt = 500
    tol: Positive = 1e-8


@dataclasses.dataclass(frozen=True)
class ChoiceSets:
    """K decisions as segments of C candidates: decision k's candidates are ``candidate[ptr[k]:ptr[k + 1]]`` (edge
    indices, -1 = stop) with features ``X`` (C, len(TURN_FEATURE_NAMES))."""

    ptr: np.ndarray
    candidate: np.ndarray
    X: np.ndarray

    @property
    def segment(self) -> np.ndarray:
        """(C,) the decision each candidate belongs to."""
        return np.repeat(np.arange(len(self.ptr) - 1), np.diff(self.ptr))


def choice_sets(net: RoadNetwork, states: np.ndarray, nodes: np.ndarray, destinations: np.ndarray) -> ChoiceSets:
    """The candidates and local features of K decisions: at edge states[k] (or at origin node nodes[k] when
    states[k] = -1, the first decision of a route), heading for destination node destinations[k]. nodes[k] is the
    node the driver stands at (head of states[k]). Successors come in ``succ`` order, then "stop" if offered."""
    states, nodes, dests = (np.asarray(a, np.int64) for a in (states, nodes, destinations))
    deg = np.diff(net.out_ptr)[nodes]
    stop = (states >= 0) & (nodes == dests)
    sizes = deg + stop
    ptr = np.concatenate([[0], np.cumsum(sizes)])
    seg = np.repeat(np.arange(len(states)), sizes)
    k = np.arange(ptr[-1]) - ptr[seg]
    is_stop = k >= deg[seg]
    at, st, dd = nodes[seg], states[seg], dests[seg]
    cand = np.where(is_stop, -1, net.out_edges[np.minimum(net.out_ptr[at] + k, net.n_states - 1)])
    c = np.maximum(cand, 0)
    Fe = net.edge_features.shape[1]
    X = np.zeros((len(cand), len(TURN_FEATURE_NAMES)))
    moving = ~is_stop
    X[moving, :Fe] = net.edge_features[c[moving]]
    turning = moving & (st >= 0)  # the first decision, at the origin, has no incoming edge and so no turn
    codes = net.turn[net.succ_ptr[st[turning]] + k[turning]].astype(np.int64)
    X[np.flatnonzero(turning), Fe + codes] = 1.0
    to_dest = net.xy[dd] - net.xy[at]
    step = net.xy[net.head[c]] - net.xy[at]
    X[:, Fe + len(TURNS)] = np.where(moving, (np.linalg.norm(to_dest, axis=1)
                                              - np.linalg.norm(net.xy[dd] - net.xy[net.head[c]], axis=1)) / 1000, 0)
    angle = np.abs(np.arctan2(step[:, 0] * to_dest[:, 1] - step[:, 1] * to_dest[:, 0], (step * to_dest).sum(1)))
    X[:, Fe + len(TURNS) + 1] = np.where(moving, np.where(at == dd, np.pi, angle), 0.0)  # at d, going on leaves it
    X[:, -1] = is_stop
    return ChoiceSets(ptr=ptr, candidate=cand, X=X)


def _segment_log_softmax(z: np.ndarray, ptr: np.ndarray) -> np.ndarray:
    """log softmax of z within each segment ptr[k]:ptr[k + 1] (none empty)."""
    seg = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
    top = np.maximum.reduceat(z, ptr[:-1])
    shifted = z - top[seg]
    return shifted - np.log(np.add.reduceat(np.exp(shifted), ptr[:-1]))[seg]


def _route_decisions(net: RoadNetwork, batch: RouteBatch) -> tuple[ChoiceSets, np.ndarray, np.ndarray]:
    """The choice sets of every decision of every route, the chosen candidate's position (K,) in the flat arrays,
    and the route (K,) of each decision. Route i of L edges makes L + 1 decisions: L edges, then stop."""
    n, L = len(batch), np.diff(batch.ptr)
    route = np.repeat(np.arange(n), L + 1)
    j = np.arange(len(route)) - np.repeat(batch.ptr[:-1] + np.arange(n), L + 1)  # 0 .. L within a route
    flat = batch.ptr[route] + j  # the index of edge j in batch.edges (the chosen one, if j < L)
    states = np.where(j == 0, -1, batch.edges[np.maximum(flat - 1, 0)])
    nodes = np.where(j == 0, batch.origins[route], net.head[np.maximum(states, 0)])
    chosen = np.where(j == L[route], -1, batch.edges[np.minimum(flat, len(batch.edges) - 1)])
    sets = choice_sets(net, states, nodes, batch.destinations[route])
    hit = sets.candidate == chosen[sets.segment]
    if np.bincount(sets.segment[hit], minlength=len(route)).min(initial=1) != 1:
        k = int(np.argmin(np.bincount(sets.segment[hit], minlength=len(route))))
        raise ValidationError(f"route {route[k]}: edge {j[k]} is not a successor of the edge before it; expected "
                              f"routes whose consecutive edges are turn transitions of the map")
    return sets, np.flatnonzero(hit), route


@dataclasses.dataclass
class TurnModel:
    """A fitted per-turn logit: weights (len(TURN_FEATURE_NAMES),) over ``TURN_FEATURE_NAMES`` (utilities: larger
    is more likely); nll the mean negative log-likelihood per training route at the fit."""

    net: RoadNetwork
    weights: np.ndarray
    nll: float = float("nan")
    converged: bool = False
    history: list[dict] = dataclasses.field(default_factory=list)

    def choice_probabilities(self, states: np.ndarray, nodes: np.ndarray,
                             destinations: np.ndarray) -> tuple[ChoiceSets, np.ndarray]:
        """The choice sets of K decisions (see ``choice_sets``) and each candidate's probability (C,)."""
        sets = choice_sets(self.net, states, nodes, destinations)
        return sets, np.exp(_segment_log_softmax(sets.X @ self.weights, sets.ptr))

    def log_prob(self, batch: RouteBatch) -> np.ndarray:
        """(n,) log P(route | origin, destination) = sum of the log-probabilities of its decisions, stop included."""
        sets, chosen, route = _route_decisions(self.net, batch)
        logp = _segment_log_softmax(sets.X @ self.weights, sets.ptr)[chosen]
        return np.bincount(route, logp, minlength=len(batch))

    def best_route(self, origin: int, destination: int) -> np.ndarray:
        """The most likely route from node ``origin`` to node ``destination``: Dijkstra on the state graph with
        weights -log P(choice | state, destination), from a virtual start (the origin's first choice) to a virtual
        end (reached by stopping)."""
        net, E = self.net, self.net.n_states
        states = np.concatenate([[-1], np.arange(E)])
        nodes = np.concatenate([[origin], net.head])
        sets, p = self.choice_probabilities(states, nodes, np.full(E + 1, destination))
        seg = sets.segment
        source = np.where(seg == 0, E, seg - 1)  # decision 0 is at the virtual start, decision k at state k - 1
        target = np.where(sets.candidate < 0, E + 1, sets.candidate)
        cost = -np.log(np.maximum(p, 1e-300)) + EPS_COST
        G = sp.csr_array((cost, (source, target)), shape=(E + 2, E + 2))
        dist, pred = dijkstra(G, indices=E, return_predecessors=True)
        if not np.isfinite(dist[E + 1]):
            raise ValidationError(f"destination {shown(net.node_ids[destination])}: not reachable from origin "
                                  f"{shown(net.node_ids[origin])}")
        path, s = [], int(pred[E + 1])
        while s != E:
            path.append(s)
            s = int(pred[s])
        return np.array(path[::-1], dtype=np.int64)


def train_turn_model(net: RoadNetwork, batch: RouteBatch, config: TurnConfig | None = None) -> TurnModel:
    """Fit the per-turn logit by L-BFGS on the convex objective

        J(w) = -1/n sum_i sum_{decisions k of route i} log P(c_k | s_k, d_i)  +  l2/2 ||w||^2,

    whose gradient is 1/n X^T (p - y) + l2 w (p: model probabilities, y: one-hot of the chosen candidates)."""
    config = config or TurnConfig()
    if not isinstance(batch, RouteBatch):
        raise ValidationError(f"batch={shown(type(batch).__name__)}: expected a RouteBatch (RouteBatch.from_routes)")
    sets, chosen, _ = _route_decisions(net, batch)
    n = len(batch)
    y_X = sets.X[chosen].sum(axis=0)
    history: list[dict] = []

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        logp = _segment_log_softmax(sets.X @ w, sets.ptr)
        nll = -logp[chosen].sum() / n
        grad = (sets.X.T @ np.exp(logp) - y_X) / n + config.l2 * w
        history.append({"nll": float(nll)})
        return nll + 0.5 * config.l2 * w @ w, grad

    res = scipy.optimize.minimize(objective, np.zeros(sets.X.shape[1]), jac=True, method="L-BFGS-B",
                                  options={"maxiter": config.max_iter, "gtol": config.tol})
    return TurnModel(net=net, weights=res.x, nll=float(-_segment_log_softmax(sets.X @ res.x, sets.ptr)[chosen].sum()
                                                       / n), converged=bool(res.success), history=history)
