"""Bradley-Terry maximum likelihood: irlhf vs `choix`, same data, same run.

Protocol: n items with scores theta ~ N(0, 1) (seed 0); m comparisons between uniformly random pairs of
distinct items, the winner drawn from Bradley-Terry. Both libraries get the data in their own format,
built before timing (choix: a list of (winner, loser) tuples; irlhf: the (m, 2) int array, so our time
includes validating it). Each method runs ``--repeats`` times; the best wall time counts. choix's MLE
methods: ``ilsr_pairwise`` (iterative Luce spectral ranking), ``mm_pairwise`` (Hunter's MM) and
``opt_pairwise`` (Newton-CG); alpha = 0 (no prior) everywhere; choix's functions return log-strengths
that we mean-centre. Agreement: Pearson correlation of the scores and the relative difference of the
log-likelihoods (irlhf's ``bradley_terry.log_likelihood`` evaluated on both score vectors).

Then the scale target: irlhf alone on 10,000 items and 1,000,000 comparisons (standard errors off,
since they need a dense 10,000 x 10,000 inverse).

    pip install choix
    python benchmarks/bt_vs_choix.py                    # 200 items / 20,000 comparisons, then 10k / 1M
    python benchmarks/bt_vs_choix.py --repeats 3 --skip-large

Prints a markdown table and writes benchmarks/out/bt_vs_choix.json.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def sample(n: int, m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=n)
    i = rng.integers(0, n, m)
    j = (i + rng.integers(1, n, m)) % n
    win = rng.random(m) < 1.0 / (1.0 + np.exp(-(theta[i] - theta[j])))
    return theta, np.stack([np.where(win, i, j), np.where(win, j, i)], axis=1)


def best_time(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--comparisons", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--out", default=str(HERE / "out"))
    args = parser.parse_args()
    import choix

    from irlhf.preference import bradley_terry as bt

    n, m = args.items, args.comparisons
    theta, pairs = sample(n, m)
    pairs_list = [tuple(p) for p in pairs.tolist()]
    rows = []
    t_ours, ours = best_time(lambda: bt.fit(n, pairs, standard_errors=False), args.repeats)
    t_ours_se, _ = best_time(lambda: bt.fit(n, pairs), args.repeats)
    rows.append({"method": "irlhf bradley_terry.fit", "seconds": t_ours, "corr": 1.0, "loglik": ours.log_likelihood,
                 "rel_loglik_diff": 0.0})
    methods = {
        "choix.ilsr_pairwise": lambda: choix.ilsr_pairwise(n, pairs_list, alpha=0.0),
        "choix.mm_pairwise": lambda: choix.mm_pairwise(n, pairs_list, alpha=0.0),
        "choix.opt_pairwise": lambda: choix.opt_pairwise(n, pairs_list, alpha=0.0),
    }
    for name, fn in methods.items():
        seconds, x = best_time(fn, args.repeats)
        x = np.asarray(x) - np.mean(x)
        ll = bt.log_likelihood(x, pairs)
        rows.append({"method": name, "seconds": seconds, "corr": float(np.corrcoef(x, ours.scores)[0, 1]),
                     "loglik": ll, "rel_loglik_diff": abs(ll - ours.log_likelihood) / abs(ours.log_likelihood)})
    fastest = min(rows[1:], key=lambda r: r["seconds"])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, choix "
          f"{importlib.metadata.version('choix')}; best of {args.repeats}")
    print(f"\n### {n} items, {m:,} comparisons (alpha = 0)\n")
    print("| method | seconds | speed-up of irlhf | corr. with irlhf | log-likelihood | rel. diff |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['seconds']:.4f} | {r['seconds'] / t_ours:.1f}x | {r['corr']:.8f} | "
              f"{r['loglik']:.6f} | {r['rel_loglik_diff']:.1e} |")
    print(f"\nirlhf with standard errors: {t_ours_se:.4f} s. irlhf vs choix's fastest ({fastest['method']}): "
          f"{fastest['seconds'] / t_ours:.1f}x faster. Correlation with the true scores: "
          f"{np.corrcoef(ours.scores, theta)[0, 1]:.4f}.")
    result = {"small": {"n_items": n, "n_comparisons": m, "rows": rows, "irlhf_with_se_seconds": t_ours_se,
                        "n_iter": ours.n_iter}}
    if not args.skip_large:
        N, M = 10_000, 1_000_000
        theta_l, pairs_l = sample(N, M, seed=1)
        seconds, res = best_time(lambda: bt.fit(N, pairs_l, standard_errors=False), max(1, min(args.repeats, 3)))
        corr = float(np.corrcoef(res.scores, theta_l)[0, 1])
        print(f"\n### {N:,} items, {M:,} comparisons: irlhf {seconds:.2f} s ({res.n_iter} Newton steps, converged "
              f"{res.converged}, correlation with the true scores {corr:.4f})")
        result["large"] = {"n_items": N, "n_comparisons": M, "seconds": seconds, "n_iter": res.n_iter,
                           "converged": res.converged, "corr_truth": corr}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bt_vs_choix.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
