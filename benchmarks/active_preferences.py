"""Active preference learning (``irlhf.preference.active``): alignment against the number of queries for every
acquisition, and the time one query costs (``irlhf.eval.active_preferences``).

    python benchmarks/active_preferences.py --env driving          # 6 acquisitions x 2 noise levels x 10 seeds
    python benchmarks/active_preferences.py --env lds
    python benchmarks/active_preferences.py --timing               # one query's breakdown, D = 1000, M = 100
    python benchmarks/active_preferences.py --table                # table and plot from the saved rows
    python benchmarks/active_preferences.py --env driving --tag weak --set answer_model='"weak"' \
        --set acquisitions='["random", "volume_removal", "information"]'     # a variant: its own file and rows

Rows go to benchmarks/out/active_preferences_<env>[_<tag>].json; the plot (untagged runs) to
docs/img/active_preferences.png. One process, numpy with one BLAS thread. ``--set KEY=JSON`` sets a field of
``irlhf.eval.active_preferences.Config``; ``--tag`` names the variant (rows carry it as "variant").

Timing: a posterior after 20 answers of the driving task (pool D = 1000, M = 100 samples, d = 4): the median
over --repeats of (a) ``Posterior.update`` with one more answer (MH: burn-in, adaptation, thinning, 4 chains)
and (b) ``select_query`` per acquisition over 5000 sampled pairs and over all 499,500 pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy loads BLAS
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402  (after the thread settings)

from irlhf.envs import driving  # noqa: E402
from irlhf.eval import active_preferences as ap  # noqa: E402
from irlhf.preference import active  # noqa: E402

OUT = ROOT / "benchmarks" / "out"


def timing(repeats: int) -> None:
    _, Phi = driving.sample_pool(1000, seed=0)
    rng = np.random.default_rng(0)
    model = active.Config(beta=10.0, n_samples=100)
    posterior = active.Posterior(4, config=model, seed=0)
    for _ in range(20):
        i, j = active.select_query(posterior, Phi, "information", rng, n_candidates=5000)
        posterior = posterior.update(active.simulate_answer(driving.TRUE_W, Phi[i], Phi[j], model, rng))
    extra = active.simulate_answer(driving.TRUE_W, Phi[0], Phi[1], model, rng)

    def median_ms(fn) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return 1000 * float(np.median(times))

    update = median_ms(lambda: posterior.update(extra))
    print(f"load {os.getloadavg()[0]:.2f}; D = 1000, M = {len(posterior.samples)}, d = 4, 20 answers; "
          f"median of {repeats}\n")
    print("| acquisition | update ms | select ms (5000 pairs) | total ms | select ms (all 499,500 pairs) |")
    print("|---|---|---|---|---|")
    for acquisition in ap.ACQUISITIONS:
        sub = median_ms(lambda: active.select_query(posterior, Phi, acquisition, rng, n_candidates=5000))
        full = median_ms(lambda: active.select_query(posterior, Phi, acquisition, rng)) if repeats else 0.0
        print(f"| {acquisition} | {update:.1f} | {sub:.1f} | {update + sub:.1f} | {full:.0f} |")


def table() -> None:
    rows = []
    for path in sorted(OUT.glob("active_preferences_*.json")):
        rows += json.loads(path.read_text())["rows"]
    print("| variant | env | answerer beta | acquisition | seeds | m@10 | m@20 | m@30 | m@50 | queries to m >= 0.9 "
          "| ms/query |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for s in ap.summarize(rows):
        cells = [f"{s[f'm@{q}']:.3f} ± {s[f'm@{q}_ci']:.3f}" if f"m@{q}" in s else "-" for q in (10, 20, 30, 50)]
        reach = s["queries_to_0.9"] if s["queries_to_0.9"] is not None else "not reached"
        print(f"| {s['variant'] or 'base'} | {s['env']} | {s['beta']:g} | {s['acquisition']} | {s['n_seeds']} | "
              + " | ".join(cells) + f" | {reach} | {s['median_ms_per_query']:.1f} |")
    ap.plot([r for r in rows if not r.get("variant")], ROOT / "docs" / "img" / "active_preferences.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", choices=tuple(ap.ENVS))
    parser.add_argument("--timing", action="store_true")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--table", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="an experiment Config field")
    parser.add_argument("--tag", default="", help="name of this variant (its own output file)")
    args = parser.parse_args()
    if args.env:
        start = time.perf_counter()
        config = ap.Config.from_dict({"env": args.env, **{k: json.loads(v) for k, v in
                                                          (item.split("=", 1) for item in args.set)}})
        result = ap.run(config)
        rows = [{**row, "variant": args.tag} if args.tag else row for row in result.rows]
        OUT.mkdir(parents=True, exist_ok=True)
        name = f"active_preferences_{args.env}" + (f"_{args.tag}" if args.tag else "")
        (OUT / f"{name}.json").write_text(json.dumps(
            {"config": config.to_dict(), "load_end": os.getloadavg()[0],
             "seconds": time.perf_counter() - start, "rows": rows}))
        print(f"{args.env}: {time.perf_counter() - start:.0f} s, load {os.getloadavg()[0]:.2f}")
    if args.timing:
        timing(args.repeats)
    if args.table:
        table()


if __name__ == "__main__":
    main()
