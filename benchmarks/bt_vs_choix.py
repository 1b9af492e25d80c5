"""Bradley-Terry maximum likelihood: irlhf vs `choix`, same data, same run, idle and on a busy machine.

Protocol: n items with scores theta ~ N(0, 1) (seed 0); m comparisons between uniformly random pairs of
distinct items, the winner drawn from Bradley-Terry. Both libraries get the data in their own format,
built before timing (choix: a list of (winner, loser) tuples; irlhf: the (m, 2) int array, so our time
includes validating it). irlhf fits without standard errors (its default). Every time is the median of
``--repeats`` fits (at least 7).

1. Load: irlhf against choix's fastest method, ``ilsr_pairwise`` (iterative Luce spectral ranking), with
   the machine idle, with one core busy and with all cores busy. The load is made by the script itself:
   busy-loop processes (one per busy core), started a second before timing and stopped after; the two
   libraries' fits alternate, so both see the same load. Both run with their default BLAS threads (irlhf
   limits its own small dense solves to one thread, choix does not). Target: irlhf >= 10x choix in all
   three.
2. Agreement (idle): choix's MLE methods ``ilsr_pairwise``, ``mm_pairwise`` (Hunter's MM) and
   ``opt_pairwise`` (Newton-CG); alpha = 0 (no prior) everywhere; choix's functions return log-strengths
   that we mean-centre. Pearson correlation of the scores and the relative difference of the
   log-likelihoods (irlhf's ``bradley_terry.log_likelihood`` evaluated on both score vectors).
3. Scale: irlhf alone on 10,000 items and 1,000,000 comparisons.

    pip install choix
    python benchmarks/bt_vs_choix.py                      # 200 items / 20,000 comparisons, then 10k / 1M
    python benchmarks/bt_vs_choix.py --skip-large --skip-slow-choix   # the load table only (~1 min)

Prints markdown tables and writes benchmarks/out/bt_vs_choix.json.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import multiprocessing
import os
import platform
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
MIN_REPEATS = 7
WARM_UP_SECONDS = 1.0  # busy processes start (spawn imports Python) before the timed fits


def sample(n: int, m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=n)
    i = rng.integers(0, n, m)
    j = (i + rng.integers(1, n, m)) % n
    win = rng.random(m) < 1.0 / (1.0 + np.exp(-(theta[i] - theta[j])))
    return theta, np.stack([np.where(win, i, j), np.where(win, j, i)], axis=1)


def seconds_of(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median_times(fns: dict[str, Callable[[], Any]], repeats: int) -> tuple[dict[str, float], dict[str, Any]]:
    """Median wall time of each function over ``repeats`` rounds, the functions alternating within a round
    (so a change of load hits all of them); and each one's last output."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    outputs: dict[str, Any] = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            seconds, outputs[name] = seconds_of(fn)
            times[name].append(seconds)
    return {name: float(np.median(t)) for name, t in times.items()}, outputs


def busy_loop() -> None:
    while True:  # keeps one core at 100% until terminated
        pass


@contextlib.contextmanager
def background_load(n_busy: int) -> Iterator[None]:
    """``n_busy`` busy-loop processes running for the duration of the block."""
    context = multiprocessing.get_context("spawn")  # no fork of a process holding BLAS thread pools
    workers = [context.Process(target=busy_loop, daemon=True) for _ in range(n_busy)]
    for worker in workers:
        worker.start()
    try:
        if workers:
            time.sleep(WARM_UP_SECONDS)
        yield
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.join()


def load_table(n: int, pairs: np.ndarray, repeats: int) -> list[dict[str, Any]]:
    """irlhf vs choix.ilsr_pairwise, idle, one core busy, all cores busy."""
    import choix

    from irlhf.preference import bradley_terry as bt

    pairs_list = [tuple(p) for p in pairs.tolist()]
    fns = {"irlhf": lambda: bt.fit(n, pairs), "choix": lambda: choix.ilsr_pairwise(n, pairs_list, alpha=0.0)}
    cores = os.cpu_count() or 1
    rows = []
    for load, n_busy in (("idle", 0), ("one core busy", 1), (f"all {cores} cores busy", cores)):
        outside = os.getloadavg()[0]  # other processes' load: "idle" means something only when this is ~0
        with background_load(n_busy):
            medians, _ = median_times(fns, repeats)
        rows.append({"load": load, "busy_processes": n_busy, "load_average_before": outside,
                     "irlhf_seconds": medians["irlhf"], "choix_ilsr_seconds": medians["choix"],
                     "speedup": medians["choix"] / medians["irlhf"]})
    return rows


def agreement_table(n: int, pairs: np.ndarray, repeats: int, slow_choix: bool) -> dict[str, Any]:
    """Every choix MLE method against irlhf, idle: time, correlation, log-likelihood."""
    import choix

    from irlhf.preference import bradley_terry as bt

    pairs_list = [tuple(p) for p in pairs.tolist()]
    fns = {"irlhf bradley_terry.fit": lambda: bt.fit(n, pairs),
           "choix.ilsr_pairwise": lambda: choix.ilsr_pairwise(n, pairs_list, alpha=0.0)}
    if slow_choix:
        fns["choix.mm_pairwise"] = lambda: choix.mm_pairwise(n, pairs_list, alpha=0.0)
        fns["choix.opt_pairwise"] = lambda: choix.opt_pairwise(n, pairs_list, alpha=0.0)
    medians, outputs = median_times(fns, repeats)
    ours = outputs["irlhf bradley_terry.fit"]
    rows = []
    for name, out in outputs.items():
        x = ours.scores if name.startswith("irlhf") else np.asarray(out) - np.mean(out)
        ll = bt.log_likelihood(x, pairs)
        rows.append({"method": name, "seconds": medians[name], "corr": float(np.corrcoef(x, ours.scores)[0, 1]),
                     "loglik": ll, "rel_loglik_diff": abs(ll - ours.log_likelihood) / abs(ours.log_likelihood)})
    with_se, _ = median_times({"se": lambda: bt.fit(n, pairs, standard_errors=True)}, repeats)
    return {"rows": rows, "irlhf_with_se_seconds": with_se["se"], "n_iter": ours.n_iter, "scores": ours.scores}


def print_load_table(rows: list[dict[str, Any]], repeats: int) -> None:
    print(f"\n#### irlhf vs choix.ilsr_pairwise under load (median of {repeats} fits each)\n")
    print("| load | 1-min load average before | irlhf s | choix ILSR s | choix / irlhf |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['load']} | {r['load_average_before']:.2f} | {r['irlhf_seconds']:.4f} | "
              f"{r['choix_ilsr_seconds']:.4f} | {r['speedup']:.1f}x |")
    worst = min(r["speedup"] for r in rows)
    print(f"\nTarget irlhf >= 10x choix in all three: {'met' if worst >= 10 else 'NOT met'} (lowest {worst:.1f}x).")


def print_agreement_table(result: dict[str, Any], theta: np.ndarray, repeats: int) -> None:
    rows = result["rows"]
    t_ours = rows[0]["seconds"]
    print(f"\n#### Agreement, idle (median of {repeats} fits each)\n")
    print("| method | seconds | speed-up of irlhf | corr. with irlhf | log-likelihood | rel. diff |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['seconds']:.4f} | {r['seconds'] / t_ours:.1f}x | {r['corr']:.8f} | "
              f"{r['loglik']:.6f} | {r['rel_loglik_diff']:.1e} |")
    print(f"\nirlhf with standard errors (standard_errors=True): {result['irlhf_with_se_seconds']:.4f} s. "
          f"Correlation with the true scores: {np.corrcoef(result['scores'], theta)[0, 1]:.4f}.")


def large_run(repeats: int) -> dict[str, Any]:
    from irlhf.preference import bradley_terry as bt

    N, M = 10_000, 1_000_000
    theta, pairs = sample(N, M, seed=1)
    medians, outputs = median_times({"fit": lambda: bt.fit(N, pairs)}, max(1, min(repeats, 3)))
    res = outputs["fit"]
    corr = float(np.corrcoef(res.scores, theta)[0, 1])
    print(f"\n#### {N:,} items, {M:,} comparisons: irlhf {medians['fit']:.2f} s ({res.n_iter} Newton steps, "
          f"converged {res.converged}, correlation with the true scores {corr:.4f})")
    return {"n_items": N, "n_comparisons": M, "seconds": medians["fit"], "n_iter": res.n_iter,
            "converged": res.converged, "corr_truth": corr}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--comparisons", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=MIN_REPEATS, help=f"fits per median (>= {MIN_REPEATS})")
    parser.add_argument("--skip-slow-choix", action="store_true", help="leave mm_pairwise and opt_pairwise out")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--unlimited-blas", action="store_true",
                        help="irlhf's dense solves on every BLAS thread, as before the one-thread limit (to compare)")
    parser.add_argument("--out", default=str(HERE / "out"))
    args = parser.parse_args()
    if args.repeats < MIN_REPEATS:
        parser.error(f"--repeats {args.repeats}: expected at least {MIN_REPEATS}")

    if args.unlimited_blas:
        from irlhf.core import newton

        newton.ONE_THREAD_MAX_N = 0
    n, m = args.items, args.comparisons
    theta, pairs = sample(n, m)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, choix "
          f"{importlib.metadata.version('choix')}, threadpoolctl {importlib.metadata.version('threadpoolctl')}"
          f"{'; irlhf on every BLAS thread (--unlimited-blas)' if args.unlimited_blas else ''}")
    print(f"\n### {n} items, {m:,} comparisons (alpha = 0)")
    loads = load_table(n, pairs, args.repeats)
    print_load_table(loads, args.repeats)
    agreement = agreement_table(n, pairs, args.repeats, slow_choix=not args.skip_slow_choix)
    print_agreement_table(agreement, theta, args.repeats)
    result: dict[str, Any] = {"small": {"n_items": n, "n_comparisons": m, "repeats": args.repeats, "load": loads,
                                        "rows": agreement["rows"], "n_iter": agreement["n_iter"],
                                        "irlhf_with_se_seconds": agreement["irlhf_with_se_seconds"]}}
    if not args.skip_large:
        result["large"] = large_run(args.repeats)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bt_vs_choix.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
