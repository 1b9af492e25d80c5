"""Active preference learning: irlhf (`irlhf.preference.active`) vs APReL (Stanford-ILIAD/APReL), same pool.

What: per-query wall time of the posterior update and of query selection, and the alignment
E[w . w*] after ``--queries`` queries, for the acquisitions "mutual information" (APReL's
``mutual_information``, irlhf's ``"information"``) and "volume removal" (both ``volume_removal``).

How:

- Pool: ``driving.sample_pool(D, seed=0)`` for D = 100 and D = 1000; its standardised features (D, 4) are
  the trajectory features of both libraries. APReL's ``Trajectory`` takes an Environment and calls
  ``env.features(trajectory)``; we pass a minimal stand-in object whose ``features`` returns the
  precomputed row, so no gym environment is built.
- Answerer: logistic / softmax with beta = 10 on ``driving.TRUE_W``. Each library's own simulated user
  answers with its own seeded rng (not a shared answer sequence): irlhf's ``simulate_answer`` with
  ``default_rng([seed, 1])``; APReL's ``SoftmaxUser(weights=TRUE_W, beta=10).respond`` with numpy's global
  RNG, seeded ``np.random.seed(seed)`` at the start of each run (APReL's sampler and optimiser use that
  global RNG too). Both learners assume the true model (beta = 10, logistic).
- Posterior: M = 100 samples in both. APReL: ``SamplingBasedBelief`` with its defaults (one MH chain,
  burnin 200, thin 20, Gaussian proposal 0.05 renormalised to the sphere, started at the previous mean,
  first start a random unit vector). irlhf: ``Posterior`` with its defaults (4 chains, burn_in 200, thin 10,
  adaptive sigma, warm start).
- Selection: irlhf's ``select_query`` scores all 4950 pairs at D = 100 and 5000 sampled pairs at D = 1000.
  APReL's ``QueryOptimizerDiscreteTrajectorySet.optimize(..., 'exhaustive_search')`` scores every pair of
  the set it is given, one Python call per pair and per posterior sample: about 40 s per query for the
  4950 pairs of D = 100 (measured), so 20 queries x 3 seeds x 2 acquisitions x 2 pools does not fit in
  minutes. In the learning loop it therefore gets, each query, a fresh random subset of ``--aprel-cap``
  trajectories of the pool (default 10: 45 pairs); its full-pool cost is measured once per acquisition at
  D = 100 (one exhaustive selection over all 4950 pairs, on seed 0's final belief) and, for D = 1000
  (499,500 pairs), extrapolated as ms per pair x 499,500 ("est."). APReL's alignment is thus that of
  APReL's sampler with a weaker (subset) query search, a sanity check that it learns, not a like-for-like
  comparison of query quality.
- Timing: ``time.perf_counter`` around the update and around the selection separately; median over all
  queries of all seeds; one thread (the script sets OMP/OPENBLAS/MKL_NUM_THREADS=1 before numpy loads).
  Alignment: mean over posterior samples of cos(w, w*), after the last query, mean over ``--seeds``.
- APReL imports ``gym`` (aprel/basics/environment.py) and ``moviepy.editor`` (trajectory.py,
  generate_trajectories.py) at import time; when they are missing we put empty stand-in modules in
  ``sys.modules`` (``gym.Env = object``, used only as a type annotation; ``moviepy.editor`` gets placeholder ``VideoFileClip`` / ``ImageSequenceClip``), which is
  harmless since no environment is wrapped and no clip is rendered.

Command (APReL is not on PyPI; its source tree on PYTHONPATH, commit 13a1e7f of Stanford-ILIAD/APReL)::

    git clone https://github.com/Stanford-ILIAD/APReL /tmp/aprel_src
    OMP_NUM_THREADS=1 PYTHONPATH=/tmp/aprel_src .venv/bin/python benchmarks/active_vs_aprel.py

Prints a markdown table and writes benchmarks/out/active_vs_aprel.json.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from irlhf.envs import driving  # noqa: E402
from irlhf.preference import active  # noqa: E402

BETA, M = 10.0, 100
ACQS = {"mutual_information": ("mutual_information", "information"), "volume_removal": ("volume_removal", "volume_removal")}


def _import_aprel() -> tuple[types.ModuleType, list[str]]:
    """Import aprel, stubbing gym / moviepy.editor when they are not installed."""
    stubbed = []
    try:
        import gym  # noqa: F401
    except ImportError:
        gym = types.ModuleType("gym")
        gym.Env = object  # only used as a type annotation in aprel.basics.environment
        sys.modules["gym"] = gym
        stubbed.append("gym")
    try:
        import moviepy.editor  # noqa: F401
    except ImportError:
        moviepy, editor = types.ModuleType("moviepy"), types.ModuleType("moviepy.editor")

        class _NoClip:
            def __init__(self, *args, **kwargs):
                raise RuntimeError("moviepy is stubbed in this benchmark")

        editor.VideoFileClip = editor.ImageSequenceClip = _NoClip
        moviepy.editor = editor
        sys.modules["moviepy"], sys.modules["moviepy.editor"] = moviepy, editor
        stubbed.append("moviepy.editor")
    import aprel

    return aprel, stubbed


class _FeatureEnv:
    """What aprel.Trajectory needs of its Environment: ``features(trajectory)``. Here the 'trajectory' is the
    pool index and the features are precomputed."""

    def __init__(self, Phi: np.ndarray):
        self.Phi = Phi

    def features(self, trajectory):
        return self.Phi[trajectory[0]]


def run_aprel(aprel, Phi, acq: str, seed: int, n_queries: int, cap: int | None, full: bool) -> dict:
    np.random.seed(seed)
    env = _FeatureEnv(Phi)
    pool = aprel.TrajectorySet([aprel.Trajectory(env, [k]) for k in range(len(Phi))])
    true_user = aprel.SoftmaxUser({"weights": driving.TRUE_W.copy(), "beta": BETA})
    start = {"weights": aprel.util_funs.get_random_normalized_vector(Phi.shape[1])}
    model = aprel.SoftmaxUser({"weights": start["weights"], "beta": BETA})
    belief = aprel.SamplingBasedBelief(model, [], start, num_samples=M)
    query = aprel.PreferenceQuery(pool[:2])
    sel, upd, n_pairs = [], [], []
    for _ in range(n_queries):
        t0 = time.perf_counter()
        if cap is not None and cap < len(Phi):
            opt = aprel.QueryOptimizerDiscreteTrajectorySet(pool[np.random.choice(len(Phi), cap, replace=False)])
        else:
            opt = aprel.QueryOptimizerDiscreteTrajectorySet(pool)
        queries, _ = opt.optimize(acq, belief, query)
        t1 = time.perf_counter()
        response = true_user.respond(queries[0])[0]
        t2 = time.perf_counter()
        belief.update(aprel.Preference(queries[0], response))
        t3 = time.perf_counter()
        sel.append(t1 - t0)
        upd.append(t3 - t2)
        n_pairs.append(opt.trajectory_set.size * (opt.trajectory_set.size - 1) // 2)
    full_s = None
    if full:  # one exhaustive selection over every pair of the pool
        t0 = time.perf_counter()
        aprel.QueryOptimizerDiscreteTrajectorySet(pool).optimize(acq, belief, query)
        full_s = time.perf_counter() - t0
    W = np.array([s["weights"] for s in belief.samples])
    return {"select_s": sel, "update_s": upd, "pairs": n_pairs, "full_select_s": full_s,
            "alignment": float(np.mean(active.alignment(W, driving.TRUE_W)))}


def run_irlhf(Phi, acq: str, seed: int, n_queries: int, n_candidates: int | None) -> dict:
    config = active.Config(answer_model="logistic", beta=BETA, n_samples=M)
    post = active.Posterior(Phi.shape[1], config=config, seed=seed)
    rng = np.random.default_rng([seed, 1])
    sel, upd = [], []
    for _ in range(n_queries):
        t0 = time.perf_counter()
        i, j = active.select_query(post, Phi, acq, rng, n_candidates=n_candidates)
        t1 = time.perf_counter()
        answer = active.simulate_answer(driving.TRUE_W, Phi[i], Phi[j], config, rng)
        t2 = time.perf_counter()
        post = post.update(answer)
        t3 = time.perf_counter()
        sel.append(t1 - t0)
        upd.append(t3 - t2)
    pairs = len(Phi) * (len(Phi) - 1) // 2 if n_candidates is None else n_candidates
    return {"select_s": sel, "update_s": upd, "pairs": [pairs] * n_queries,
            "alignment": active.posterior_alignment(post.samples, driving.TRUE_W)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pools", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--queries", type=int, default=20)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--irlhf-candidates", type=int, default=5000, help="sampled pairs for irlhf when D > 100")
    p.add_argument("--aprel-cap", type=int, default=10, help="APReL's random subset of trajectories per query")
    p.add_argument("--aprel-full-max", type=int, default=100, help="time one full-pool APReL selection up to this D")
    p.add_argument("--out", default=str(Path(__file__).parent / "out" / "active_vs_aprel.json"))
    args = p.parse_args()

    aprel, stubbed = _import_aprel()
    load_before = os.getloadavg()
    rows, runs = [], []
    for D in args.pools:
        _, Phi = driving.sample_pool(D, seed=0)
        for acq, (a_name, i_name) in ACQS.items():
            for lib in ("irlhf", "APReL"):
                res = []
                for seed in args.seeds:
                    t = time.perf_counter()
                    if lib == "irlhf":
                        r = run_irlhf(Phi, i_name, seed, args.queries, None if D <= 100 else args.irlhf_candidates)
                    else:
                        r = run_aprel(aprel, Phi, a_name, seed, args.queries, args.aprel_cap,
                                      full=D <= args.aprel_full_max and seed == args.seeds[0])
                    r.update(D=D, acquisition=acq, library=lib, seed=seed, total_s=time.perf_counter() - t)
                    res.append(r)
                    print(f"  D={D} {acq} {lib} seed={seed}: {r['total_s']:.1f} s, alignment {r['alignment']:.3f}",
                          file=sys.stderr, flush=True)
                runs += res
                sel = np.concatenate([r["select_s"] for r in res])
                pairs = np.concatenate([r["pairs"] for r in res])
                row = {"D": D, "acquisition": acq, "library": lib, "pairs_scored": int(np.median(pairs)),
                       "update_ms": 1e3 * float(np.median(np.concatenate([r["update_s"] for r in res]))),
                       "select_ms": 1e3 * float(np.median(sel)),
                       "select_ms_all_pairs_est": 1e3 * float(np.median(sel / pairs)) * D * (D - 1) / 2,
                       "select_ms_all_pairs_measured": next((1e3 * r["full_select_s"] for r in res
                                                             if r.get("full_select_s") is not None), None),
                       "alignment_mean": float(np.mean([r["alignment"] for r in res])),
                       "alignment_per_seed": [r["alignment"] for r in res]}
                rows.append(row)
    load_after = os.getloadavg()

    print(f"\nM = {M}, beta = {BETA}, {args.queries} queries, seeds {args.seeds}, one thread; "
          f"load avg before {load_before[0]:.2f}, after {load_after[0]:.2f} on {os.cpu_count()} cores; "
          f"stubbed modules: {', '.join(stubbed) or 'none'}\n")
    print("| D | acquisition | library | pairs scored / query | update ms (median) | select ms (median) "
          "| select ms, all pairs (est.) | E[w.w*] after %d (mean of %d seeds) |" % (args.queries, len(args.seeds)))
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        meas = r["select_ms_all_pairs_measured"]
        all_pairs = (f"{meas:.0f} (measured)" if meas is not None else r["select_ms"] if r["pairs_scored"] ==
                     r["D"] * (r["D"] - 1) // 2 else f"{r['select_ms_all_pairs_est']:.0f} (est.)")
        if not isinstance(all_pairs, str):
            all_pairs = f"{all_pairs:.1f}"
        print(f"| {r['D']} | {r['acquisition']} | {r['library']} | {r['pairs_scored']} | {r['update_ms']:.1f} "
              f"| {r['select_ms']:.1f} | {all_pairs} | {r['alignment_mean']:.3f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "M": M, "beta": BETA, "stubbed": stubbed,
                               "threads": {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                                          "MKL_NUM_THREADS")},
                               "loadavg_before": load_before, "loadavg_after": load_after,
                               "cpu_count": os.cpu_count(), "python": platform.python_version(),
                               "numpy": np.__version__, "aprel_commit": "13a1e7f7d93899682a414ce7812f4749dfcbf317",
                               "rows": rows, "runs": runs}, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
