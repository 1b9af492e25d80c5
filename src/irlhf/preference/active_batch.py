"""Batch active query selection: choose b preference queries to ask at once.

Bıyık & Sadigh 2018, "Batch active preference-based learning of reward functions" (CoRL), and Bıyık, Wang,
Anari & Sadigh 2019, "Batch active learning using determinantal point processes" (arXiv:1906.07975).

Each of N candidate queries (a pair of trajectories A, B) has an acquisition value v_i (higher = more
informative: information gain, volume removal, ... computed elsewhere) and a feature difference
psi_i = phi(A) - phi(B) in R^d. A linear reward w answers the query by the sign of w . psi_i, so a query is a
hyperplane through the origin; asking the b individually best queries (``"greedy"``, the paper's baseline)
tends to ask nearly the same hyperplane b times. The other methods trade value for diversity:

    pre    = the B = ``preselect`` candidates of highest value (ties: lower index first)
    greedy:            argmax_{|S| = b} sum_{i in S} v_i                     (top-b; ``preselect`` unused)
    medoids:           k-medoids of pre under the query distance D into b clusters; return the medoids,
                       argmin_{M subset pre, |M| = b} sum_{j in pre} min_{m in M} D(j, m)
    boundary_medoids:  the same, over only the vertices of conv{psi_i : i in pre}
    dpp:               argmax_{S subset pre, |S| = b} det L_S,   L_ij = q_i S_ij q_j,   q_i = v_i^gamma,
                       S_ij = exp(-D(i, j)^2 / (2 l^2))             (greedy MAP inference)

Query distance D (``distance``); u = psi / ||psi|| (a zero psi stays the zero vector):

- ``"axis"`` (default): D(i, j) = ||u_i u_i^T - u_j u_j^T||_F = sqrt(2 - 2 (u_i . u_j)^2). Sign-invariant:
  psi and -psi are the same query with A and B swapped (the same hyperplane), so they are at distance 0.
- ``"direction"``: D(i, j) = ||u_i - u_j|| = sqrt(2 - 2 u_i . u_j); a query and its swap are at distance 2.
- ``"euclidean"``: D(i, j) = ||psi_i - psi_j|| on raw psi (the authors' APReL library).

Each is a Euclidean distance between embedded points, so the Gaussian similarity S is positive semi-definite.

k-medoids (``kmedoids``): k-medoids++ seeding (Arthur & Vassilvitskii 2007, on D) from ``seed``, then PAM's
SWAP phase (Kaufman & Rousseeuw 1990) to a local optimum: every iteration evaluates all k (n - k) swaps at
once, with the change of cost of removing medoid i and adding x written as (FastPAM1, Schubert & Rousseeuw 2019)

    delta(i, x) = sum_j [min(D_jx, d1_j) - d1_j] + sum_{j: n1_j = i} [min(D_jx, d2_j) - min(D_jx, d1_j)]

(d1_j, d2_j: distances of j to its nearest and second-nearest medoid, n1_j: its nearest), one (k, n) x (n, n)
product, and takes the best swap while it lowers the cost.

Boundary (``hull_vertices``): the hull is taken of the raw preselected psi (the paper's; unit vectors would all
be vertices), in their affine span of dimension r <= d (found by an SVD, so a flat set of points is no error):
r = 0: every point; r = 1: the two ends; 2 <= r <= ``max_hull_dim`` (default 6): Qhull's vertices
(scipy.spatial.ConvexHull). For r > ``max_hull_dim`` (Qhull's output grows like n^(r/2)), or if Qhull fails on a
nearly flat set, the vertices are those found as the unique maximiser or minimiser of a linear function
psi . g over ``n_directions`` seeded Gaussian directions g and the coordinate axes: every one found is on the
boundary, though not every vertex need be found. With h vertices: if h > b, k-medoids of the vertices (under
D) chooses b; if h <= b, all vertices are kept and the batch is completed with the highest-value non-vertices
(the authors' APReL rule).

DPP (``dpp_greedy_map``): grows S one candidate at a time by the largest gain of log det L_S, using the
incremental Cholesky factor of Chen, Zhang & Zhou 2018 ("Fast greedy MAP inference for determinantal point
process", NeurIPS): with c_i the rows of the factor and d_i^2 = L_ii - ||c_i||^2 the gain of i,

    j = argmax_{i not in S} d_i^2,   e_i = (L_ji - c_j . c_i) / d_j,   c_i <- [c_i, e_i],   d_i^2 <- d_i^2 - e_i^2,

O(B b) work a step. When every remaining gain is below 1e-12 max_i L_ii (all remaining candidates repeat
chosen ones, or have zero value), the batch is completed with the highest-value candidates not yet chosen.
Values must be non-negative here (q_i = v_i^gamma; the authors' ``gamma`` weighs value against diversity).
The default length scale l is the authors' heuristic, the expected minimum of b distances drawn uniformly from
the preselected pairs' distances, computed exactly from their empirical distribution instead of by sampling
(APReL counts the zero self-distances too; we do not). With ``kernel="identity"`` (S = I), det L_S = prod q_i^2
and the DPP selects the top-b by value, the same batch as ``"greedy"``.

    idx = select_batch(values, psi, b=10, method="dpp")            # indices into the N candidates, (b,)
    idx = select_batch(values, psi, 10, "boundary_medoids", preselect=200, seed=0)

Returned indices are distinct; ``greedy`` and the medoid methods list them by decreasing value, ``dpp`` in the
order the greedy MAP chose them. Only the medoid methods use randomness (k-medoids++ seeding and, in high
dimension, the hull's search directions); the same ``seed`` gives the same batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.spatial

from irlhf.core.errors import ValidationError, shown
from irlhf.core.newton import blas_threads_limited
from irlhf.core.seeding import SeedLike, as_generator

__all__ = ["METHODS", "DISTANCES", "KERNELS", "DEFAULT_PRESELECT", "select_batch", "query_distances",
           "kmedoids", "hull_vertices", "dpp_greedy_map", "default_length_scale"]

METHODS = ("greedy", "medoids", "boundary_medoids", "dpp")
DISTANCES = ("axis", "direction", "euclidean")
KERNELS = ("gaussian", "identity")
DEFAULT_PRESELECT = 100  # the authors' default B (APReL's reduced_size); at least 5 b, at most N
GAIN_TOL = 1e-12  # relative DPP gain below which a candidate adds nothing new


# -- the entry point -------------------------------------------------------------------------------
def select_batch(values: Any, psi: Any, b: int, method: str, *, seed: SeedLike = 0, preselect: int | None = None,
                 distance: str = "axis", gamma: float = 1.0, kernel: str = "gaussian",
                 length_scale: float | None = None, max_hull_dim: int = 6, n_directions: int = 256) -> np.ndarray:
    """Indices (b,) into the N candidates of a batch of b distinct queries to ask at once.

    ``values`` (N,): acquisition values, higher = more informative (non-negative for ``"dpp"``).
    ``psi`` (N, d): each query's feature difference.  ``method``: one of ``METHODS`` (see the module docstring).
    ``preselect``: B, how many of the highest-value candidates the medoid and DPP methods choose among
    (default max(100, 5 b), capped at N).  ``distance``: one of ``DISTANCES``.  ``gamma``, ``kernel``,
    ``length_scale``: the DPP's quality exponent, similarity and its length scale (None: the authors'
    heuristic).  ``max_hull_dim``, ``n_directions``: the boundary's exact-hull limit and its fallback's
    directions.  ``seed``: an int or Generator (k-medoids++ seeding, the hull fallback).
    """
    v, X = _check_inputs(values, psi)
    n = len(v)
    if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or not 1 <= b <= n:
        raise ValidationError(f"b={shown(b)}: expected an int with 1 <= b <= N = {n} (the number of candidates)")
    b = int(b)
    if method not in METHODS:
        raise ValidationError(f"method={shown(method)}: expected one of {', '.join(map(repr, METHODS))}")
    if distance not in DISTANCES:
        raise ValidationError(f"distance={shown(distance)}: expected one of {', '.join(map(repr, DISTANCES))}")
    if preselect is None:
        size = min(n, max(DEFAULT_PRESELECT, 5 * b))
    elif isinstance(preselect, bool) or not isinstance(preselect, (int, np.integer)) or preselect < b:
        raise ValidationError(f"preselect={shown(preselect)}: expected None or an int >= b = {b}")
    else:
        size = min(n, int(preselect))

    order = np.argsort(-v, kind="stable")  # decreasing value, ties by index
    if method == "greedy":
        return order[:b].copy()
    pre = order[:size]
    rng = as_generator(seed)
    if method == "dpp":
        _check_dpp_options(v, gamma, kernel, length_scale)
        with blas_threads_limited(size):
            if kernel == "identity":
                similarity = np.eye(size)
            else:
                D = np.sqrt(query_distances(X[pre], distance, squared=True))
                scale = default_length_scale(D, b) if length_scale is None else float(length_scale)
                similarity = np.exp(-(D * D) / (2.0 * scale * scale))
            chosen = dpp_greedy_map(v[pre] ** gamma, similarity, b)
        return pre[chosen]
    if isinstance(max_hull_dim, bool) or not isinstance(max_hull_dim, (int, np.integer)) or max_hull_dim < 1:
        raise ValidationError(f"max_hull_dim={shown(max_hull_dim)}: expected an int >= 1")
    if isinstance(n_directions, bool) or not isinstance(n_directions, (int, np.integer)) or n_directions < 1:
        raise ValidationError(f"n_directions={shown(n_directions)}: expected an int >= 1")
    with blas_threads_limited(size):
        if method == "medoids":
            medoids, _ = kmedoids(np.sqrt(query_distances(X[pre], distance, squared=True)), b, seed=rng)
            chosen = medoids
        else:  # boundary_medoids
            vertices = hull_vertices(X[pre], max_dim=int(max_hull_dim), seed=rng, n_directions=int(n_directions))
            if len(vertices) <= b:  # keep every vertex, complete with the best non-vertices
                rest = np.setdiff1d(np.arange(size), vertices)  # sorted = decreasing value
                chosen = np.concatenate([vertices, rest[: b - len(vertices)]])
            else:
                D = np.sqrt(query_distances(X[pre][vertices], distance, squared=True))
                chosen = vertices[kmedoids(D, b, seed=rng)[0]]
    return pre[np.sort(chosen)]  # positions in pre ascending = decreasing value


def _check_inputs(values: Any, psi: Any) -> tuple[np.ndarray, np.ndarray]:
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(f"values={shown(values)}: expected a 1-D array of numbers") from None
    try:
        X = np.asarray(psi, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(f"psi={shown(psi)}: expected a 2-D array (N, d) of numbers") from None
    if v.ndim != 1 or len(v) == 0:
        raise ValidationError(f"values={shown(values)}: expected a non-empty 1-D array (N,), got shape {v.shape}")
    if X.ndim != 2 or X.shape[1] == 0:
        raise ValidationError(f"psi={shown(psi)}: expected a 2-D array (N, d) with d >= 1, got shape {X.shape}")
    if X.shape[0] != len(v):
        raise ValidationError(f"psi has {X.shape[0]} rows but values has {len(v)} entries: expected one psi row "
                              "per candidate")
    if not np.isfinite(v).all():
        bad = int(np.flatnonzero(~np.isfinite(v))[0])
        raise ValidationError(f"values[{bad}]={shown(v[bad])}: expected finite numbers")
    if not np.isfinite(X).all():
        bad = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise ValidationError(f"psi[{bad}]={shown(X[bad])}: expected finite numbers")
    return v, X


def _check_dpp_options(v: np.ndarray, gamma: Any, kernel: Any, length_scale: Any) -> None:
    if (isinstance(gamma, bool) or not isinstance(gamma, (int, float, np.integer, np.floating))
            or not np.isfinite(gamma) or gamma < 0):
        raise ValidationError(f"gamma={shown(gamma)}: expected a finite number >= 0")
    if kernel not in KERNELS:
        raise ValidationError(f"kernel={shown(kernel)}: expected one of {', '.join(map(repr, KERNELS))}")
    if length_scale is not None and (
            isinstance(length_scale, bool) or not isinstance(length_scale, (int, float, np.integer, np.floating))
            or not np.isfinite(length_scale) or length_scale <= 0):
        raise ValidationError(f"length_scale={shown(length_scale)}: expected None or a finite number > 0")
    if (v < 0).any():
        bad = int(np.flatnonzero(v < 0)[0])
        raise ValidationError(f"values[{bad}]={shown(v[bad])}: expected values >= 0 for method='dpp' "
                              "(the DPP's quality is value ** gamma)")


# -- distances -------------------------------------------------------------------------------------
def query_distances(psi: np.ndarray, distance: str = "axis", *, squared: bool = False) -> np.ndarray:
    """(n, n) distances between queries with feature differences ``psi`` (n, d) (see ``DISTANCES``)."""
    X = np.asarray(psi, dtype=np.float64)
    if distance == "euclidean":
        U = X
    elif distance in ("direction", "axis"):
        norm = np.linalg.norm(X, axis=1, keepdims=True)
        U = X / np.where(norm > 0, norm, 1.0)
    else:
        raise ValidationError(f"distance={shown(distance)}: expected one of {', '.join(map(repr, DISTANCES))}")
    G = U @ U.T
    sq = np.diagonal(G).copy()
    if distance == "axis":  # ||u u^T - v v^T||_F^2 = |u|^4 + |v|^4 - 2 (u . v)^2
        G, sq = G * G, sq * sq
    D2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * G, 0.0)
    np.fill_diagonal(D2, 0.0)
    return D2 if squared else np.sqrt(D2)


# -- k-medoids ---------------------------------------------------------------------------------------
def kmedoids(D: np.ndarray, k: int, *, seed: SeedLike = 0, max_iter: int | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """k-medoids of the points with distance matrix ``D`` (n, n): (medoid indices (k,), labels (n,) in 0..k-1).

    k-medoids++ seeding from ``seed``, then PAM SWAP (all swaps evaluated at once) until no swap lowers
    sum_j min_m D(j, m), or ``max_iter`` (default 50 + 10 k) swaps.
    """
    D = np.asarray(D, dtype=np.float64)
    n = D.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValidationError(f"k={shown(k)}: expected an int with 1 <= k <= n = {n}")
    rng = as_generator(seed)
    medoids = _kmedoids_plus_plus(D, int(k), rng)
    rows = np.arange(n)
    slots = np.arange(k)[:, None]
    for _ in range(50 + 10 * k if max_iter is None else max_iter):
        if k == n:
            break
        Dm = D[:, medoids]
        ranked = np.argsort(Dm, axis=1, kind="stable")
        nearest = ranked[:, 0]
        d1 = Dm[rows, nearest]
        d2 = Dm[rows, ranked[:, 1]] if k > 1 else np.full(n, np.inf)
        kept = np.minimum(D, d1[:, None])  # j's distance once x is added and no medoid removed
        delta = (kept.sum(axis=0) - d1.sum())[None, :] + (nearest[None, :] == slots) @ (
            np.minimum(D, d2[:, None]) - kept)
        delta[:, medoids] = np.inf
        slot, x = np.unravel_index(int(np.argmin(delta)), delta.shape)
        if not delta[slot, x] < -1e-12 * (1.0 + d1.sum()):
            break
        medoids[slot] = x
    labels = np.argmin(D[:, medoids], axis=1)
    return medoids, labels


def _kmedoids_plus_plus(D: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    n = D.shape[0]
    medoids = np.empty(k, dtype=np.int64)
    medoids[0] = rng.integers(n)
    nearest = D[:, medoids[0]].copy()
    for m in range(1, k):
        weight = nearest * nearest
        weight[medoids[:m]] = 0.0
        total = weight.sum()
        if total > 0:
            medoids[m] = rng.choice(n, p=weight / total)
        else:  # every remaining point repeats a chosen one
            medoids[m] = rng.choice(np.setdiff1d(np.arange(n), medoids[:m]))
        nearest = np.minimum(nearest, D[:, medoids[m]])
    return medoids


# -- convex hull boundary ----------------------------------------------------------------------------
def hull_vertices(points: np.ndarray, *, max_dim: int = 6, seed: SeedLike = 0, n_directions: int = 256
                  ) -> np.ndarray:
    """Sorted indices of the vertices of the convex hull of ``points`` (n, d), in their affine span of dimension
    r: exact (Qhull) for 2 <= r <= ``max_dim``; otherwise the unique extremes of seeded random linear functions
    (a subset of the vertices; see the module docstring)."""
    X = np.asarray(points, dtype=np.float64)
    n = X.shape[0]
    centred = X - X.mean(axis=0)
    _, s, Vt = np.linalg.svd(centred, full_matrices=False)
    r = int((s > max(X.shape) * np.finfo(np.float64).eps * (s[0] if len(s) else 0.0)).sum()) if n > 1 else 0
    if r == 0:
        return np.arange(n)
    Y = centred @ Vt[:r].T  # coordinates in the affine span
    if r == 1:
        return np.unique([int(np.argmin(Y[:, 0])), int(np.argmax(Y[:, 0]))])
    if r <= max_dim:
        try:
            return np.sort(scipy.spatial.ConvexHull(X if r == X.shape[1] else Y).vertices)
        except scipy.spatial.QhullError:
            pass  # a nearly flat set Qhull refuses: the directional search below finds its vertices
    G = np.concatenate([np.eye(r), as_generator(seed).standard_normal((r, n_directions))], axis=1)
    scores = Y @ G
    found = []
    for extreme in (scores.max(axis=0), scores.min(axis=0)):
        hits = scores == extreme[None, :]
        unique = hits.sum(axis=0) == 1  # a unique maximiser of a linear function is a vertex
        found.append(np.argmax(hits[:, unique], axis=0))
    return np.unique(np.concatenate(found))


# -- determinantal point process -----------------------------------------------------------------------
def default_length_scale(D: np.ndarray, k: int) -> float:
    """The expected minimum of k distances drawn uniformly with replacement from the off-diagonal entries of
    ``D`` (the authors' DPP length scale, computed exactly); 1.0 when there are none or all are 0."""
    n = D.shape[0]
    d = np.sort(D[np.triu_indices(n, 1)])
    m = len(d)
    if m == 0:
        return 1.0
    survive = ((m - np.arange(m + 1)) / m) ** k  # P(min >= d_(i)), i = 0..m
    scale = float(d @ (survive[:-1] - survive[1:]))
    return scale if scale > 0 else 1.0


def dpp_greedy_map(quality: np.ndarray, similarity: np.ndarray, k: int) -> np.ndarray:
    """Greedy MAP of the DPP with L = diag(quality) similarity diag(quality): k indices in the order chosen
    (Chen et al. 2018's incremental Cholesky; see the module docstring). Ties go to the lower index."""
    q = np.asarray(quality, dtype=np.float64)
    L = q[:, None] * np.asarray(similarity, dtype=np.float64) * q[None, :]
    n = len(q)
    gains = np.diagonal(L).copy()
    tol = GAIN_TOL * max(float(gains.max()), np.finfo(np.float64).tiny)
    C = np.zeros((k, n))
    chosen = np.empty(k, dtype=np.int64)
    free = np.ones(n, dtype=bool)
    for t in range(k):
        masked = np.where(free, gains, -np.inf)
        j = int(np.argmax(masked))
        if masked[j] <= tol:  # nothing left adds a new direction: complete with the best by quality
            chosen[t:] = np.flatnonzero(free)[np.argsort(-q[free], kind="stable")[: k - t]]
            break
        chosen[t] = j
        free[j] = False
        e = (L[j] - C[:t, j] @ C[:t]) / np.sqrt(gains[j])
        C[t] = e
        gains -= e * e
    return chosen
