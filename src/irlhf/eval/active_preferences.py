"""Active preference learning, simulated: how fast each acquisition aligns the learned reward with the true one.

Issue 21's experiment (Sadigh et al. 2017, Fig. 4; Bıyık et al. 2019). Per environment (``irlhf.envs.driving``,
``irlhf.envs.lds``, ``irlhf.envs.mountaincar``), acquisition, answerer noise and seed:

1. a pool of ``pool_size`` random trajectories and their features phi (``env.sample_pool``, seeded);
2. a simulated person with the hidden reward direction w* = ``env.TRUE_W`` answers each query (A, B) by the
   logistic model P(A > B) = sigma(beta w* . (phi_A - phi_B)) at their ``beta`` (large: nearly noiseless; small:
   noisy); the learner assumes the same answer model and beta;
3. ``n_queries`` rounds of: choose the pair (``irlhf.preference.active.select_query`` over ``n_candidates``
   sampled pairs, or the samples' optima for Thompson / max regret), ask it, update the posterior (MH on the
   sphere, ``n_samples`` samples);
4. after every answer, the alignment m = E_posterior[w . w* / (|w| |w*|)] (``posterior_alignment``) and the
   seconds the round took (update + selection).

``queries_to_reach(curves, 0.9)`` is the first query count whose mean alignment over seeds is >= 0.9.

    result = run(Config(env="driving", seeds=tuple(range(10))))
    summarize(result.rows); plot(result.rows, "alignment.png")
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Annotated, Any, Literal

import numpy as np

from irlhf.core.config import BaseConfig, Check, PositiveInt, Range
from irlhf.core.stats import t_half_width
from irlhf.envs import driving, lds, mountaincar
from irlhf.preference import active, active_batch

ENVS: dict[str, ModuleType] = {"driving": driving, "lds": lds, "mountaincar": mountaincar}
ACQUISITIONS = ("random", "volume_removal", "information", "disagreement", "thompson", "max_regret")


def _is_tuple_of(choices: Sequence[Any]) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, tuple) and len(value) > 0 and all(v in choices for v in value)


def _is_seeds(value: Any) -> bool:
    return (isinstance(value, tuple) and len(value) > 0
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value))


def _is_betas(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) > 0 and all(
        isinstance(b, (int, float)) and not isinstance(b, bool) and np.isfinite(b) and b > 0 for b in value)


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """The experiment; the defaults are the RESULTS.md run.

    env ["driving"] (or "lds", "mountaincar").  acquisitions [all of ACQUISITIONS].  answer_betas [(10.0, 1.0)]:
    the simulated person's rationality, nearly noiseless and noisy (features are standardised, |w| = 1).
    seeds [0..9].
    n_queries [50].  pool_size [1000] trajectories.  n_candidates [5000] pairs scored per query (of the
    pool's 499,500).  n_samples [100] posterior samples (``active.Config``'s burn-in, thinning, chains).
    answer_model ["logistic"]: the person's and the learner's answer model; "weak" adds "about equal"
    (threshold ``delta`` [0.5], Bıyık et al. 2019).  batch_size [1]: queries asked per posterior update;
    above 1, chosen among the ``n_candidates`` sampled pairs by ``batch_method`` ["greedy"]
    (``irlhf.preference.active_batch``: greedy, medoids, boundary_medoids, dpp; Bıyık & Sadigh 2018) from
    their acquisition values (Thompson and max regret use their relaxed pair scores there).
    query_source ["pool"]: or "controls": each query is optimised over the two trajectories' controls with
    scipy as Sadigh et al. do (``active.optimise_query``: L-BFGS-B, 2 starts, 30 iterations; one query at a
    time; the pool is not used).
    """

    env: Literal["driving", "lds", "mountaincar"] = "driving"
    acquisitions: Annotated[tuple, Check(_is_tuple_of(ACQUISITIONS), f"a non-empty tuple of {ACQUISITIONS}")] = (
        ACQUISITIONS)
    answer_betas: Annotated[tuple, Check(_is_betas, "a non-empty tuple of numbers > 0")] = (10.0, 1.0)
    seeds: Annotated[tuple, Check(_is_seeds, "a non-empty tuple of ints >= 0")] = tuple(range(10))
    n_queries: PositiveInt = 50
    pool_size: Annotated[int, Range(2)] = 1000
    n_candidates: PositiveInt = 5000
    n_samples: PositiveInt = 100
    answer_model: Literal["logistic", "weak"] = "logistic"
    delta: Annotated[float, Range(0, low_open=True)] = 0.5
    batch_size: PositiveInt = 1
    batch_method: Literal["greedy", "medoids", "boundary_medoids", "dpp"] = "greedy"
    query_source: Literal["pool", "controls"] = "pool"

    def __post_init__(self) -> None:
        for name in ("acquisitions", "answer_betas", "seeds"):  # JSON gives lists: store tuples (checks follow)
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        super().__post_init__()


@dataclasses.dataclass
class Result:
    """rows: one dict per (acquisition, beta, seed): alignment (n_queries + 1,) from the prior on, seconds
    (n_queries,) per round, the final posterior mean direction ``w`` and the acceptance rate."""

    rows: list[dict[str, Any]]


def run_curve(env: ModuleType, acquisition: str, beta: float, seed: int, config: Config) -> dict[str, Any]:
    """One learner against one simulated person (module doc, steps 1-4)."""
    _, Phi = env.sample_pool(config.pool_size, seed=seed)
    w_star = np.asarray(env.TRUE_W, dtype=np.float64)
    rng = np.random.default_rng([seed, 1])  # the person's answers and the random / Thompson choices
    model = active.Config(answer_model=config.answer_model, beta=beta, delta=config.delta, n_samples=config.n_samples)
    posterior = active.Posterior(Phi.shape[1], config=model, seed=seed)
    alignment = [active.posterior_alignment(posterior.samples, w_star)]
    seconds = []
    while len(seconds) < config.n_queries:
        start = time.perf_counter()
        b = min(config.batch_size, config.n_queries - len(seconds))
        if config.query_source == "controls":
            bounds = env.control_bounds()
            q = active.optimise_query(posterior, env.features_of_controls, bounds.mean(axis=1), bounds, acquisition,
                                      rng, n_starts=2, max_iter=30)
            queries = [(q.phi_a, q.phi_b)]
        else:
            pairs = (_batch(posterior, Phi, acquisition, b, config, rng) if config.batch_size > 1
                     else [active.select_query(posterior, Phi, acquisition, rng, n_candidates=config.n_candidates)])
            queries = [(Phi[i], Phi[j]) for i, j in pairs]
        b = len(queries)
        posterior = posterior.update([active.simulate_answer(w_star, a, c, model, rng) for a, c in queries])
        seconds += [(time.perf_counter() - start) / b] * b
        alignment += [active.posterior_alignment(posterior.samples, w_star)] * b  # known after the batch
    return {"env": env.__name__.rsplit(".", 1)[-1], "acquisition": acquisition, "beta": beta, "seed": seed,
            "alignment": [float(a) for a in alignment], "seconds": seconds,
            "w": posterior.mean_direction.tolist(), "acceptance_rate": float(posterior.acceptance_rate)}


def _batch(posterior: active.Posterior, Phi: np.ndarray, acquisition: str, b: int, config: Config,
           rng: np.random.Generator) -> list[tuple[int, int]]:
    """b pairs to ask at once: acquisition values of ``n_candidates`` sampled pairs, then ``batch_method``."""
    n = len(Phi)
    i = rng.integers(0, n, size=config.n_candidates)
    j = (i + rng.integers(1, n, size=config.n_candidates)) % n  # j != i
    values = active.acquisition_scores(acquisition, posterior.samples, Phi[i], Phi[j], posterior.config, rng)
    values = values - values.min()  # the DPP's qualities must be >= 0; a shift changes no ranking
    pick = active_batch.select_batch(values, Phi[i] - Phi[j], b, config.batch_method, seed=rng)
    return [(int(i[k]), int(j[k])) for k in pick]


def run(config: Config | None = None, log: Callable[[str], None] = print) -> Result:
    config = config or Config()
    env, rows = ENVS[config.env], []
    for beta in config.answer_betas:
        for acquisition in config.acquisitions:
            for seed in config.seeds:
                rows.append(run_curve(env, acquisition, beta, seed, config))
            final = np.mean([r["alignment"][-1] for r in rows[-len(config.seeds):]])
            log(f"{config.env} beta={beta:g} {acquisition:>15}: alignment after {config.n_queries} queries "
                f"{final:.3f}")
    return Result(rows)


def queries_to_reach(curves: np.ndarray, level: float = 0.9) -> int | None:
    """The first query count (0 = the prior) at which the mean over seeds of ``curves`` (seeds, Q + 1) reaches
    ``level``; None if it never does."""
    mean = np.asarray(curves, dtype=np.float64).mean(axis=0)
    hit = np.flatnonzero(mean >= level)
    return int(hit[0]) if len(hit) else None


def summarize(rows: Sequence[dict[str, Any]], checkpoints: Sequence[int] = (10, 20, 30, 50)) -> list[dict[str, Any]]:
    """Per (variant, env, beta, acquisition): mean alignment and its 95% t half-width at each checkpoint, the
    queries to reach m = 0.9, and the median seconds per query. ``variant``: a row's label of the Config it ran
    under (the benchmark's --tag; "" when absent)."""

    groups: dict[tuple[str, str, float, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row.get("variant", ""), row["env"], row["beta"], row["acquisition"]), []).append(row)
    out = []
    for (variant, env, beta, acquisition), members in groups.items():
        curves = np.array([m["alignment"] for m in members])
        n = len(members)
        summary: dict[str, Any] = {"variant": variant, "env": env, "beta": beta, "acquisition": acquisition,
                                   "n_seeds": n,
                                   "queries_to_0.9": queries_to_reach(curves, 0.9),
                                   "median_ms_per_query": 1000 * float(np.median([s for m in members
                                                                                  for s in m["seconds"]]))}
        for q in checkpoints:
            if q < curves.shape[1]:
                values = curves[:, q]
                summary[f"m@{q}"], summary[f"m@{q}_ci"] = float(values.mean()), t_half_width(values)
        out.append(summary)
    return out


STYLES = {"random": "tab:gray", "volume_removal": "tab:orange", "information": "tab:blue",
          "disagreement": "tab:green", "thompson": "tab:purple", "max_regret": "tab:red"}


def plot(rows: Sequence[dict[str, Any]], path: Any) -> None:
    """Mean alignment (95% band over seeds) against the number of queries; a panel per env (columns) and answerer
    beta (rows)."""
    import matplotlib  # why: matplotlib is slow to import and only plotting needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # why: after choosing the Agg backend

    envs = sorted({r["env"] for r in rows})
    betas = sorted({r["beta"] for r in rows}, reverse=True)
    fig, axes = plt.subplots(len(betas), len(envs), figsize=(5.2 * len(envs), 4.0 * len(betas)), squeeze=False)
    for ax, (beta, env) in zip(axes.ravel(), [(b, e) for b in betas for e in envs]):
        for acquisition, color in STYLES.items():
            curves = np.array([r["alignment"] for r in rows if (r["env"], r["beta"], r["acquisition"])
                               == (env, beta, acquisition)])
            if len(curves) == 0:
                continue
            mean, q = curves.mean(0), np.arange(curves.shape[1])
            ax.plot(q, mean, color=color, label=acquisition)
            if len(curves) > 1:
                half = t_half_width(curves)
                ax.fill_between(q, mean - half, mean + half, color=color, alpha=0.15, lw=0)
        ax.axhline(0.9, color="k", lw=0.6, ls=":")
        ax.set(xlabel="queries answered", ylabel="alignment m = E[w . w*]", ylim=(0, 1.02),
               title=f"{env}, answerer beta = {beta:g}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
