"""Destination-conditioned MaxEnt route distributions on a ``RoadNetwork`` (Ziebart et al., AAAI 2008).

A route from origin node o to destination node d is a path of edges e_1 .. e_L with head(e_L) = d; under cost
weights theta its probability is

    P(route | o, d) = exp(-cost(route)) / Z_d(o),     cost = sum of edge costs + sum of turn costs.

Z is the soft value exp(V) in linear space. Per state s (a directed edge) it satisfies the soft Bellman equation

    Z_d(s) = [head(s) = d] + sum_{s'} exp(-c(s, s')) Z_d(s'),    i.e.   (I - M) Z_d = b_d,

with M[s, s'] = exp(-c(s, s')) over turn transitions and b_d the indicator of the edges entering d: arriving at d
offers "stop" with weight 1, as the +1 at the goal in the paper's backward pass; a driver may also pass through d
and come back, which costs at least a loop and is rare at realistic costs (``pass_through`` measures it). One sparse
LU factorisation of I - M serves every destination, so the backward pass over D destinations is one solve with D
right-hand sides; Z_d(o) = sum over edges e leaving o of exp(-c(e)) Z_d(e).

The forward pass gives expected visits: prefix weights F = (I - M)^-T u with u the first-edge weights of each
demonstration divided by its Z_d(o); a state is visited F(s) Z_d(s) times in expectation and a transition used
F(s) M[s, s'] Z_d(s') times, so expected features (the MaxEnt gradient's second term) cost four sparse products.
The series behind (I - M)^-1 converges only when loops cost enough (spectral radius of M below 1);
``RouteCostsTooLow`` says when they do not. Everything is float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.sparse.csgraph import dijkstra

from irlhf.core.errors import ValidationError, shown
from irlhf.core.newton import blas_threads_limited
from irlhf.envs.roads import TURNS, RoadNetwork

CHUNK = 64  # destinations per solve: bounds memory at E x CHUNK x 8 bytes per array
MIN_Z = 1e-300  # below this Z_d(o) has underflowed


class RouteCostsTooLow(ValidationError):
    """The partition sum over routes diverges: some loop's weight exp(-cost) is too large."""


class RouteCostsTooHigh(ValidationError):
    """A route's sum over routes underflows float64: its routes cost more than ~690 nats."""


@dataclass(frozen=True)
class RouteBatch:
    """Routes as flat arrays: route i is ``edges[ptr[i]:ptr[i + 1]]``; origins/destinations node indices (n,)."""

    edges: np.ndarray
    ptr: np.ndarray
    origins: np.ndarray
    destinations: np.ndarray

    @classmethod
    def from_routes(cls, net: RoadNetwork, routes: list[np.ndarray]) -> RouteBatch:
        if len(routes) == 0:
            raise ValidationError("routes: none given; expected at least one route")
        sizes = np.array([len(r) for r in routes])
        if (sizes == 0).any():
            raise ValidationError(f"routes[{int(np.argmin(sizes))}]: empty; expected at least one edge")
        edges = np.concatenate([np.asarray(r, np.int64) for r in routes])
        ptr = np.concatenate([[0], np.cumsum(sizes)])
        return cls(edges, ptr, net.tail[edges[ptr[:-1]]], net.head[edges[ptr[1:] - 1]])

    def __len__(self) -> int:
        return len(self.ptr) - 1

    def route(self, i: int) -> np.ndarray:
        return self.edges[self.ptr[i]:self.ptr[i + 1]]

    def features(self, net: RoadNetwork) -> np.ndarray:
        """(n, F) feature counts of each route."""
        n, Fe = len(self), net.edge_features.shape[1]
        which = np.repeat(np.arange(n), np.diff(self.ptr))
        edge_part = np.zeros((n, Fe))
        np.add.at(edge_part, which, net.edge_features[self.edges])
        inner = np.ones(len(self.edges), dtype=bool)
        inner[self.ptr[:-1]] = False  # a turn joins each edge to the one before it, except the first
        codes = net.turn[net.transition_index(self.edges[np.flatnonzero(inner) - 1], self.edges[inner])]
        turn_part = np.zeros((n, len(TURNS)))
        np.add.at(turn_part, (which[inner], codes.astype(np.int64)), 1.0)
        return np.hstack([edge_part, turn_part])


class RouteModel:
    """The MaxEnt route distribution of cost weights ``theta`` (F,) on ``net``; factorises I - M once."""

    def __init__(self, net: RoadNetwork, theta: np.ndarray):
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape != (net.n_features,) or not np.isfinite(theta).all():
            raise ValidationError(f"theta: {shown(theta)}; expected {net.n_features} finite cost weights")
        self.net, self.theta = net, theta
        self.edge_cost, self.trans_cost = net.costs(theta)
        self.edge_weight = np.exp(-self.edge_cost)
        self.M = sp.csr_array((np.exp(-self.trans_cost), net.succ, net.succ_ptr), shape=(net.n_states,) * 2)
        self._lu = self._lu_T = None

    # -- backward: Z_d for every state ------------------------------------------------------------------
    def _solve(self, rhs: np.ndarray, transpose: bool = False) -> np.ndarray:
        E, order = self.net.n_states, self.net.state_order
        lu = self._lu_T if transpose else self._lu
        if lu is None:
            # I - M is a nonsingular M-matrix when the sum over routes converges, so LU needs no pivoting (diagonal
            # pivots keep the ordering's fill); SuperLU's dense kernels work on small supernodes, where a second
            # BLAS thread only waits (on a busy 2-core machine one 64-column solve took 1.0 s or up to 25 s)
            A = (sp.eye(E, format="csr") - self.M)[order][:, order]
            try:
                with blas_threads_limited(1):
                    lu = spla.splu((A.T if transpose else A).tocsc(), permc_spec="NATURAL", diag_pivot_thresh=0.0,
                                   options={"SymmetricMode": True})
            except RuntimeError as exc:  # a zero pivot: I - M is singular, the series cannot converge
                raise self._too_low() from exc
            if transpose:  # a separate factor of (I - M)^T: its solves run ~2.5x faster than trans="T"
                self._lu_T = lu
            else:
                self._lu = lu
        out = np.empty_like(rhs, dtype=np.float64)
        with blas_threads_limited(1):
            out[order] = lu.solve(np.asarray(rhs, dtype=np.float64)[order])
        low, high = out.min(initial=0.0), out.max(initial=1.0)  # NaN or inf anywhere makes one of them non-finite
        if not (np.isfinite(low) and np.isfinite(high)) or low < -1e-9 * max(high, 1.0):
            raise self._too_low()
        return np.maximum(out, 0.0, out=out)

    def _too_low(self) -> RouteCostsTooLow:
        return RouteCostsTooLow(f"theta={np.round(self.theta, 4).tolist()}: loops cost too little, so the sum over "
                                f"routes diverges (spectral radius of exp(-cost) >= 1); expected larger costs, e.g. a "
                                f"larger weight on minutes or km")

    def partition(self, destinations: np.ndarray) -> np.ndarray:
        """Z (E, D): Z[s, j] = sum over routes from state s ending at destinations[j] of exp(-cost)."""
        net = self.net
        destinations = np.asarray(destinations, dtype=np.int64)
        b = np.zeros((net.n_states, len(destinations)))
        cols = np.repeat(np.arange(len(destinations)), np.diff(net.in_ptr)[destinations])
        b[self._in_edges(destinations), cols] = 1.0
        return self._solve(b)

    def _in_edges(self, nodes: np.ndarray) -> np.ndarray:
        net = self.net
        sizes = np.diff(net.in_ptr)[nodes]
        starts = np.repeat(net.in_ptr[nodes], sizes) + np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes,
                                                                                          sizes)
        return net.in_edges[starts]

    def _start_matrix(self, origins: np.ndarray) -> sp.csr_array:
        """(n, E): row i holds exp(-c(e)) on the edges e leaving origins[i]."""
        net = self.net
        sizes = np.diff(net.out_ptr)[origins]
        ptr = np.concatenate([[0], np.cumsum(sizes)])
        edges = net.out_edges[np.repeat(net.out_ptr[origins], sizes) + np.arange(ptr[-1]) - np.repeat(ptr[:-1], sizes)]
        return sp.csr_array((self.edge_weight[edges], edges, ptr), shape=(len(origins), net.n_states))

    def origin_partition(self, Z: np.ndarray, origins: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """(n,) Z_d(o) for origins[i] with destination column columns[i] of Z."""
        S0 = self._start_matrix(np.asarray(origins, np.int64))
        rows = np.repeat(np.arange(len(origins)), np.diff(S0.indptr))
        return np.bincount(rows, S0.data * Z[S0.indices, np.asarray(columns)[rows]], minlength=len(origins))

    # -- likelihood and expected features ---------------------------------------------------------------
    def statistics(self, batch: RouteBatch, weights: np.ndarray | None = None, *, visits: bool = False) -> dict:
        """Log-likelihood terms and expected features of the demonstrations' (origin, destination) pairs.

        Returns log_prob (n,) of each route, expected_features (F,) = sum_i w_i E[f | o_i, d_i], and with
        ``visits`` the expected visits (E,) of each state summed over routes (weighted).
        """
        net = self.net
        n = len(batch)
        w = np.ones(n) if weights is None else np.asarray(weights, np.float64)
        cost = batch.features(net) @ self.theta
        dests, col_of = np.unique(batch.destinations, return_inverse=True)
        log_Zo = np.zeros(n)
        expected = np.zeros(net.n_features)
        visit_total = np.zeros(net.n_states) if visits else None
        Fe = net.edge_features.shape[1]
        turn_M = [self._turn_matrix(k) for k in range(len(TURNS))]
        for lo in range(0, len(dests), CHUNK):
            chunk = dests[lo:lo + CHUNK]
            Z = self.partition(chunk)
            mine = np.flatnonzero((col_of >= lo) & (col_of < lo + len(chunk)))
            cols = col_of[mine] - lo
            Zo = self.origin_partition(Z, batch.origins[mine], cols)
            if (Zo < MIN_Z).any():
                i = int(mine[np.argmin(Zo)])
                raise RouteCostsTooHigh(f"route {i}: its origin-destination sum over routes underflows (costs above "
                                        f"~690 nats); expected smaller cost weights than "
                                        f"{np.round(self.theta, 3).tolist()}")
            log_Zo[mine] = np.log(Zo)
            S0 = self._start_matrix(batch.origins[mine])
            u = (S0.T @ sp.csr_array((w[mine] / Zo, (np.arange(len(mine)), cols)), shape=(len(mine), len(chunk))))
            F = self._solve(u.toarray(), transpose=True)
            state_visits = (F * Z).sum(axis=1)
            expected[:Fe] += net.edge_features.T @ state_visits
            for k, Mk in enumerate(turn_M):
                expected[Fe + k] += float(np.einsum("ij,ij->", F, Mk @ Z))
            if visits:
                visit_total += state_visits
        return {"log_prob": -cost - log_Zo, "expected_features": expected, "visits": visit_total}

    def _turn_matrix(self, code: int) -> sp.csr_array:
        data = np.where(self.net.turn == code, self.M.data, 0.0)
        return sp.csr_array((data, self.M.indices, self.M.indptr), shape=self.M.shape)

    def log_prob(self, batch: RouteBatch) -> np.ndarray:
        """(n,) log P(route | its origin, its destination)."""
        return self.statistics(batch)["log_prob"]

    # -- sampling, most likely route, destinations ------------------------------------------------------
    def sample(self, origins: np.ndarray, destinations: np.ndarray, rng: np.random.Generator,
               max_steps: int = 100_000) -> list[np.ndarray]:
        """Routes drawn from P(. | origins[i], destinations[i]), all advanced together one turn at a time."""
        net = self.net
        origins, destinations = np.asarray(origins, np.int64), np.asarray(destinations, np.int64)
        if (origins == destinations).any():
            i = int(np.flatnonzero(origins == destinations)[0])
            raise ValidationError(f"origin {shown(net.node_ids[origins[i]])} equals its destination; expected two "
                                  f"different nodes")
        dests, cols = np.unique(destinations, return_inverse=True)
        Z = self.partition(dests)
        S0 = self._start_matrix(origins)
        n = len(origins)
        rows = np.repeat(np.arange(n), np.diff(S0.indptr))
        first_w = S0.data * Z[S0.indices, cols[rows]]
        state = S0.indices[_choose_segments(first_w, S0.indptr, rng)]
        paths = [state.copy()]
        active = np.ones(n, dtype=bool)
        deg = np.diff(net.succ_ptr)
        for _ in range(max_steps):
            idx = np.flatnonzero(active)
            if len(idx) == 0:
                break
            s = state[idx]
            stop_w = (net.head[s] == destinations[idx]).astype(np.float64)
            sizes = deg[s] + 1  # the successors, then "stop"
            ptr = np.concatenate([[0], np.cumsum(sizes)])
            seg = np.repeat(np.arange(len(idx)), sizes)
            k = np.arange(ptr[-1]) - ptr[seg]
            is_stop = k == sizes[seg] - 1
            pos = net.succ_ptr[s[seg]] + np.where(is_stop, 0, k)
            nxt = np.where(is_stop, -1, net.succ[np.minimum(pos, len(net.succ) - 1)])
            wts = np.where(is_stop, stop_w[seg], self.M.data[np.minimum(pos, len(net.succ) - 1)]
                           * Z[np.maximum(nxt, 0), cols[idx][seg]])
            pick = nxt[_choose_segments(wts, ptr, rng)]
            stopped = pick < 0
            active[idx[stopped]] = False
            state[idx[~stopped]] = pick[~stopped]
            step = np.full(n, -1)
            step[idx[~stopped]] = pick[~stopped]
            paths.append(step)
        else:
            raise ValidationError(f"sampling: routes still running after max_steps={max_steps}; expected costs that "
                                  f"end routes (is theta tiny?)")
        P = np.stack(paths, axis=1)
        return [row[row >= 0] for row in P]

    def best_route(self, origin: int, destination: int) -> np.ndarray:
        """The most likely (= cheapest) route from node ``origin`` to node ``destination`` (Dijkstra)."""
        net = self.net
        E = net.n_states
        out = net.out_edges[net.out_ptr[origin]:net.out_ptr[origin + 1]]
        # a virtual start node E joined to the edges leaving the origin; costs > 0 (explicit zeros are dropped)
        G = sp.bmat([[sp.csr_array((self.trans_cost + 1e-12, net.succ, net.succ_ptr), shape=(E, E)), None],
                     [sp.csr_array((self.edge_cost[out] + 1e-12, (np.zeros(len(out), np.int64), out)), shape=(1, E)),
                      None]], format="csr")
        G.resize((E + 1, E + 1))
        dist, pred = dijkstra(G, indices=E, return_predecessors=True)
        ends = net.in_edges[net.in_ptr[destination]:net.in_ptr[destination + 1]]
        if not np.isfinite(dist[ends]).any():
            raise ValidationError(f"destination {shown(net.node_ids[destination])}: not reachable from origin "
                                  f"{shown(net.node_ids[origin])}")
        s = int(ends[np.argmin(dist[ends])])
        path = [s]
        while pred[s] != E:
            s = int(pred[s])
            path.append(s)
        return np.array(path[::-1], dtype=np.int64)

    def top_routes(self, origin: int, destination: int, k: int = 5, n_samples: int = 2000,
                   rng: np.random.Generator | None = None) -> list[tuple[np.ndarray, float]]:
        """The k most likely distinct routes among the best route and ``n_samples`` draws, with their exact
        probabilities (the list is exact for the routes it holds; it may miss a likely route never drawn)."""
        rng = np.random.default_rng(0) if rng is None else rng
        draws = self.sample(np.full(n_samples, origin), np.full(n_samples, destination), rng)
        distinct = {tuple(r): r for r in [self.best_route(origin, destination), *draws]}
        routes = list(distinct.values())
        log_p = self.log_prob(RouteBatch.from_routes(self.net, routes))
        order = np.argsort(-log_p, kind="stable")[:k]
        return [(routes[i], float(np.exp(log_p[i]))) for i in order]

    def destination_posterior(self, prefix: np.ndarray, candidates: np.ndarray,
                              log_prior: np.ndarray | None = None) -> np.ndarray:
        """P(d | the route so far) over candidate destination nodes (Ziebart et al. 2008, Bayes' rule):

        P(d | prefix) ~ P(d) exp(-cost(prefix)) Z_d(last state) / Z_d(origin), and exp(-cost) cancels.
        Candidates equal to the origin get probability 0.
        """
        net = self.net
        prefix = np.asarray(prefix, np.int64)
        candidates = np.asarray(candidates, np.int64)
        origin = net.tail[prefix[0]]
        log_prior = np.zeros(len(candidates)) if log_prior is None else np.asarray(log_prior, np.float64)
        log_post = np.full(len(candidates), -np.inf)
        for lo in range(0, len(candidates), CHUNK):
            chunk = candidates[lo:lo + CHUNK]
            Z = self.partition(chunk)
            Zo = self.origin_partition(Z, np.full(len(chunk), origin), np.arange(len(chunk)))
            with np.errstate(divide="ignore"):
                log_post[lo:lo + len(chunk)] = np.log(Z[prefix[-1]]) - np.log(Zo) + log_prior[lo:lo + len(chunk)]
        log_post[candidates == origin] = -np.inf
        log_post -= log_post.max()
        post = np.exp(log_post)
        return post / post.sum()

    def pass_through(self, destinations: np.ndarray) -> np.ndarray:
        """(D,) the largest probability, over edges entering each destination, of driving on instead of stopping."""
        Z = self.partition(destinations)
        ends = self._in_edges(np.asarray(destinations, np.int64))
        cols = np.repeat(np.arange(len(destinations)), np.diff(self.net.in_ptr)[destinations])
        p = 1.0 - 1.0 / Z[ends, cols]
        return np.maximum.reduceat(p, np.concatenate([[0], np.cumsum(np.diff(self.net.in_ptr)[destinations])[:-1]]))


def _choose_segments(weights: np.ndarray, ptr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each segment ptr[i]:ptr[i + 1] of ``weights`` (>= 0, some > 0), one index drawn with probability ~
    weight. Each segment is normalised first, so tiny weights in one segment are not lost beside large ones."""
    seg = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
    csum = np.cumsum(weights / np.add.reduceat(weights, ptr[:-1])[seg])
    target = np.arange(len(ptr) - 1) + rng.random(len(ptr) - 1)  # segment i's cumulative sum runs from i to i + 1
    pick = np.searchsorted(csum, target, side="right")
    return np.clip(pick, ptr[:-1], ptr[1:] - 1)
