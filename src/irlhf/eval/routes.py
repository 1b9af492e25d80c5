"""Route-prediction metrics of Ziebart et al. (AAAI 2008, "Maximum Entropy Inverse Reinforcement Learning",
Table 1 and Figure 4) on held-out routes of a ``RoadNetwork``.

- distance matched: the fraction of the true route's length (metres) driven on edges the predicted route also uses
  (directed edges: the same street driven the other way does not match), route_match in [0, 1];
- % exact match, % of routes with >= 90 % of their distance matched, mean % distance matched, and the mean
  log-probability of the demonstrated routes under the model (nats per route);
- cosine between recovered and hidden cost weights, and the correlation of the transition costs they give (what
  routes identify);
- destination prediction from a partial route: after a fraction of the route's distance, the posterior
  P(d | prefix) ~ P(d) Z_d(last edge) / Z_d(origin) over candidate destinations (the paper's Bayes rule; the prefix's
  own exp(-cost) cancels), scored by top-1 accuracy and the mean probability of the true destination.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from irlhf.core.errors import ValidationError, shown
from irlhf.core.io import atomic_open
from irlhf.envs.roads import RoadNetwork
from irlhf.planning.routes import CHUNK

DEFAULT_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def route_match(net: RoadNetwork, predicted_edges: np.ndarray, true_edges: np.ndarray) -> float:
    """Fraction in [0, 1] of the true route's length on edges the predicted route also drives (an edge the true
    route drives twice counts twice)."""
    true_edges = np.asarray(true_edges, np.int64)
    if len(true_edges) == 0:
        raise ValidationError("true_edges: empty; expected a route of at least one edge")
    length = net.length_m[true_edges]
    return float(length[np.isin(true_edges, np.asarray(predicted_edges, np.int64))].sum() / length.sum())


def _match_fractions(net: RoadNetwork, predicted: Sequence[np.ndarray], true: Sequence[np.ndarray]) -> np.ndarray:
    """route_match of every pair at once: (route, edge) keys make one isin serve all routes."""
    n, E = len(true), net.n_states
    t_edges = [np.asarray(r, np.int64) for r in true]
    if any(len(r) == 0 for r in t_edges):
        i = next(i for i, r in enumerate(t_edges) if len(r) == 0)
        raise ValidationError(f"true[{i}]: empty; expected a route of at least one edge")
    t_sizes = np.array([len(r) for r in t_edges])
    p_edges = [np.asarray(r, np.int64) for r in predicted]
    p_sizes = np.array([len(r) for r in p_edges])
    t_flat, p_flat = np.concatenate(t_edges), np.concatenate(p_edges) if p_sizes.sum() else np.zeros(0, np.int64)
    t_route, p_route = np.repeat(np.arange(n), t_sizes), np.repeat(np.arange(n), p_sizes)
    hit = np.isin(t_route * E + t_flat, p_route * E + p_flat)
    length = net.length_m[t_flat]
    return np.bincount(t_route, length * hit, minlength=n) / np.bincount(t_route, length, minlength=n)


def route_metrics(net: RoadNetwork, predicted: Sequence[np.ndarray], true: Sequence[np.ndarray],
                  log_probs: np.ndarray | None = None) -> dict[str, float]:
    """The paper's route-prediction scores over n held-out routes (percentages 0-100):

    exact_match: % of routes predicted edge for edge; matched_90: % with >= 90 % of their distance matched;
    mean_match: mean % of distance matched; mean_log_prob: mean of ``log_probs`` (n,), log P(true route) under the
    model, when given; n: the number of routes.
    """
    if len(predicted) != len(true):
        raise ValidationError(f"predicted: {len(predicted)} routes for {len(true)} true routes; expected one each")
    if len(true) == 0:
        raise ValidationError("true: no routes; expected at least one held-out route")
    frac = _match_fractions(net, predicted, true)
    exact = [np.array_equal(np.asarray(p, np.int64), np.asarray(t, np.int64)) for p, t in zip(predicted, true)]
    out = {"n": len(true), "exact_match": 100.0 * float(np.mean(exact)),
           "matched_90": 100.0 * float(np.mean(frac >= 0.9 - 1e-12)), "mean_match": 100.0 * float(frac.mean())}
    if log_probs is not None:
        log_probs = np.asarray(log_probs, np.float64)
        if log_probs.shape != (len(true),):
            raise ValidationError(f"log_probs: shape {log_probs.shape}; expected ({len(true)},), one per route")
        out["mean_log_prob"] = float(log_probs.mean())
    return out


def weights_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity a . b / (|a| |b|) of two weight vectors (the scale of cost weights is arbitrary)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValidationError(f"weights: shapes {a.shape} and {b.shape}; expected two vectors of one length")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if not (np.isfinite(na) and np.isfinite(nb)) or na == 0 or nb == 0:
        raise ValidationError(f"weights: {shown(a if not na else b)}; expected finite, non-zero vectors")
    return float(a @ b / (na * nb))


def cost_correlation(net: RoadNetwork, theta_a: np.ndarray, theta_b: np.ndarray) -> float:
    """Pearson correlation over all turn transitions of their costs (next edge + turn) under two weight vectors.

    What routes identify is each transition's cost, not the weights: with class-default speeds, minutes and the
    per-class km are collinear, so two quite different theta can price every edge alike (cosine low, this high).
    """
    a, b = net.costs(theta_a)[1], net.costs(theta_b)[1]
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def prefix_lengths(net: RoadNetwork, route: np.ndarray, fractions: Sequence[float]) -> np.ndarray:
    """(k,) number of edges in the prefix covering each fraction of the route's distance: the fewest edges whose
    length reaches it, at least 1."""
    cum = np.cumsum(net.length_m[np.asarray(route, np.int64)])
    return np.maximum(np.searchsorted(cum, np.asarray(fractions) * cum[-1] * (1 - 1e-12)) + 1, 1).clip(max=len(cum))


def destination_accuracy(model, routes: Sequence[np.ndarray], candidates: np.ndarray,
                         fractions: Sequence[float] = DEFAULT_FRACTIONS,
                         log_prior: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Destination prediction from partial routes (Ziebart et al. 2008, Figure 4).

    For each route (edges) and each fraction of its distance observed, the posterior over ``candidates`` (D,) node
    indices, P(d | prefix) ~ exp(log_prior[d]) Z_d(last edge) / Z_d(origin), as ``model.destination_posterior``
    (a RouteModel) gives it, with candidates equal to the origin at 0. Each route's true destination (head of its
    last edge) must be a candidate. Returns fractions (k,), accuracy (k,) the share of routes whose most probable
    candidate is the true one, and mean_prob (k,) the mean posterior of the true destination.
    """
    net = model.net
    candidates = np.asarray(candidates, np.int64)
    fractions = np.asarray(fractions, np.float64)
    if fractions.ndim != 1 or len(fractions) == 0 or not ((fractions > 0) & (fractions <= 1)).all():
        raise ValidationError(f"fractions={shown(fractions)}: expected fractions of the route in (0, 1]")
    if len(routes) == 0:
        raise ValidationError("routes: none given; expected at least one route")
    prior = np.zeros(len(candidates)) if log_prior is None else np.asarray(log_prior, np.float64)
    if prior.shape != candidates.shape:
        raise ValidationError(f"log_prior: shape {prior.shape}; expected {candidates.shape}, one per candidate")
    routes = [np.asarray(r, np.int64) for r in routes]
    dest = np.array([net.head[r[-1]] for r in routes])
    where = np.array([int(np.argmax(candidates == d)) if (candidates == d).any() else -1 for d in dest])
    if (where < 0).any():
        i = int(np.argmax(where < 0))
        raise ValidationError(f"routes[{i}]: destination {shown(net.node_ids[dest[i]])} is not among the candidates; "
                              f"expected candidates that include every route's destination")
    origins = np.array([net.tail[r[0]] for r in routes])
    cut = np.stack([prefix_lengths(net, r, fractions) for r in routes])  # (n, k)
    last = np.stack([r[c - 1] for r, c in zip(routes, cut)])  # (n, k): the last observed edge
    if not (hasattr(model, "partition") and hasattr(model, "origin_partition")):
        post = np.stack([[model.destination_posterior(r[:c], candidates, log_prior) for c in cs]
                         for r, cs in zip(routes, cut)])
    else:  # one backward solve per chunk of candidates serves every prefix (the posterior's formula, vectorised)
        n, k, D = len(routes), len(fractions), len(candidates)
        log_post = np.full((n, k, D), -np.inf)
        for lo in range(0, D, CHUNK):
            chunk = candidates[lo:lo + CHUNK]
            Z = model.partition(chunk)
            cols = np.tile(np.arange(len(chunk)), n)
            Zo = model.origin_partition(Z, np.repeat(origins, len(chunk)), cols).reshape(n, len(chunk))
            with np.errstate(divide="ignore"):
                log_post[:, :, lo:lo + len(chunk)] = (np.log(Z[last]) - np.log(Zo)[:, None, :]
                                                      + prior[lo:lo + len(chunk)])
        log_post[np.broadcast_to((candidates[None, :] == origins[:, None])[:, None, :], log_post.shape)] = -np.inf
        log_post -= log_post.max(axis=2, keepdims=True)
        post = np.exp(log_post)
        post /= post.sum(axis=2, keepdims=True)
    true_p = np.take_along_axis(post, where[:, None, None].repeat(len(fractions), 1), axis=2)[..., 0]
    correct = post.argmax(axis=2) == where[:, None]
    return {"fractions": fractions, "accuracy": correct.mean(axis=0), "mean_prob": true_p.mean(axis=0)}


def plot_destination_accuracy(curves: dict[str, tuple[Sequence[float], Sequence[float]]],
                              path: str | os.PathLike, *, title: str = "Destination prediction") -> Path:
    """Line plot of accuracy (in [0, 1], as ``destination_accuracy`` gives it) against the fraction of the route
    observed, one line per name of ``curves`` {name: (fractions, accuracy)}; written as PNG
    atomically (matplotlib's object API, Agg: no display needed)."""
    from matplotlib.figure import Figure  # why: slow optional plotting dependency, only when plotting

    if not curves:
        raise ValidationError("curves: none given; expected {name: (fractions, accuracy)}")
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.subplots()
    for name, (x, y) in curves.items():
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if x.shape != y.shape or x.ndim != 1 or not ((y >= 0) & (y <= 1)).all():
            raise ValidationError(f"curves[{name!r}]: {len(x)} fractions and {len(y)} accuracies; expected two "
                                  f"equal-length sequences, accuracies in [0, 1]")
        ax.plot(100 * x, 100 * y, marker="o", label=name)
    ax.set_xlabel("% of route distance observed")
    ax.set_ylabel("top-1 destination accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    target = Path(path)
    with atomic_open(target, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    return target
