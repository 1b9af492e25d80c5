"""Route MaxEnt at city scale (Ziebart et al. 2008): one gradient step over 100 destinations on generated cities
of three sizes (the largest >= 300,000 states), against the paper's iterative backward pass, on a log-log plot.

    python benchmarks/routes_scale.py                      # 72x72, 144x144, 288x288 grids (~19k, ~78k, ~310k states)
    python benchmarks/routes_scale.py --sides 40 80 160 --repeats 1 --vi-bounded-above 50000   # a quick look

Per size, in a fresh process: a generated city (``irlhf.envs.road_maps.generated_city``, seed 0), the hidden
theta of the synthetic commuter (``irlhf.planning.route_drivers.DRIVER_TYPES["commuter"]``: 5 nats a minute, 1 a
km, left turn 1.5, U-turn 4), 100 distinct destinations with 3 demonstrations each from uniformly drawn origins,
sampled by ``RouteModel.sample`` (timed). Best of --repeats:

- factor: the sparse LU of I - M (its ordering included) plus that of its transpose (the forward pass's), as
  ``RouteModel._solve`` makes them (first solve of one right-hand side minus a second one);
- backward: ``RouteModel.partition`` for the 100 destinations in chunks of ``CHUNK`` (factor already made);
- forward: the transposed solves of ``statistics`` (``_solve(u, transpose=True)``, factor already made);
- gradient step: the whole ``irlhf.irl.routes.objective`` (value + gradient, new model, both factors, all solves
  and the expected-feature products).

Peak MB: the peak resident set (``resource.getrusage``, ru_maxrss, so SuperLU's C allocations count) of a fresh
process that builds the city, loads the routes, and runs one gradient step; "step MB" is that peak less the
process's peak before the step.

Baseline, same run: the paper's backward pass as iteration, Z <- b + M Z from Z = b (the same pass-through model
and the same M, linear space, one sparse product with the 100 destinations as columns per sweep), until the
largest relative change of any entry in a sweep is below 1e-8 (checked every 10th sweep; "VI sweep s" is the
product alone, "VI total s" includes the checks) or 2000 sweeps. Above --vi-bounded-above states (default: at no
default size) it runs only --vi-sweeps-bounded sweeps (time per sweep) and the sweeps needed are extrapolated from
the converged sizes by a power law in the number of states (marked ~). VI/LU = VI total / (factor of I - M +
backward solves): the same work, Z for 100 destinations. LU vs VI: the largest relative difference of Z_d(o) at the
demonstrations' origins.

BLAS and thread settings are left at their defaults. Writes benchmarks/out/routes_scale.json and .png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from irlhf.envs.road_maps import generated_city  # noqa: E402
from irlhf.envs.roads import FEATURE_NAMES, RoadNetwork  # noqa: E402
from irlhf.irl.routes import objective  # noqa: E402
from irlhf.planning.route_drivers import DRIVER_TYPES  # noqa: E402
from irlhf.planning.routes import CHUNK, RouteBatch, RouteModel  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
DRIVER = "commuter"
N_DESTINATIONS, PER_DESTINATION = 100, 3
VI_TOL, VI_MAX_SWEEPS, VI_CHECK_EVERY = 1e-8, 2000, 10
TARGET_S, TARGET_STATES = 10.0, 300_000


def hidden_theta() -> np.ndarray:
    return np.array(DRIVER_TYPES[DRIVER], dtype=np.float64)


def theta_text() -> str:
    return ", ".join(f"{name} {value:g}" for name, value in zip(FEATURE_NAMES, hidden_theta()))


def city(side: int) -> RoadNetwork:
    return RoadNetwork.from_edges(**generated_city(side, side, seed=0))


def od_pairs(net: RoadNetwork) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    dests = np.sort(rng.choice(net.n_nodes, N_DESTINATIONS, replace=False))
    d = np.repeat(dests, PER_DESTINATION)
    o = rng.integers(0, net.n_nodes - 1, d.size)
    return o + (o >= d), d  # never the destination itself


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def forward_rhs(model: RouteModel, batch: RouteBatch, dests: np.ndarray, col_of: np.ndarray, lo: int,
                Z: np.ndarray) -> np.ndarray:
    """The forward pass's right-hand sides for one chunk of destinations, as ``RouteModel.statistics`` builds them."""
    chunk = dests[lo:lo + CHUNK]
    mine = np.flatnonzero((col_of >= lo) & (col_of < lo + len(chunk)))
    cols = col_of[mine] - lo
    Zo = model.origin_partition(Z, batch.origins[mine], cols)
    S0 = model._start_matrix(batch.origins[mine])
    weights = sp.csr_array((1.0 / Zo, (np.arange(len(mine)), cols)), shape=(len(mine), len(chunk)))
    return (S0.T @ weights).toarray()


def value_iteration(M: sp.csr_array, rows: np.ndarray, cols: np.ndarray, D: int, max_sweeps: int) -> dict:
    """Z <- b + M Z from Z = b until the largest relative change in one sweep is below VI_TOL (checked every
    VI_CHECK_EVERY sweeps, so the count is rounded up to that) or max_sweeps."""
    E = M.shape[0]
    Z = np.zeros((E, D))
    Z[rows, cols] = 1.0
    backup_s = check_s = 0.0
    sweeps, converged = 0, False
    while sweeps < max_sweeps:
        start = time.perf_counter()
        Znew = M @ Z
        Znew[rows, cols] += 1.0
        mid = time.perf_counter()
        sweeps += 1
        if sweeps % VI_CHECK_EVERY == 0:  # in place, in the old Z's memory (no 200 MB allocations)
            change = np.subtract(Znew, Z, out=Z)
            np.abs(change, out=change)
            np.divide(change, Znew, out=change, where=Znew > 0)
            converged = float(change.max()) < VI_TOL
        Z = Znew
        end = time.perf_counter()
        backup_s += mid - start
        check_s += end - mid
        if converged:
            break
    return {"Z": Z, "sweeps": sweeps, "converged": converged, "sweep_s": backup_s / sweeps,
            "check_s": check_s / sweeps, "seconds": backup_s + check_s}


def measure(side: int, repeats: int, vi_max_sweeps: int, routes_file: str) -> dict:
    """One size, in its own process: sampling, the LU passes, the gradient step, and the iterative baseline."""
    start = time.perf_counter()
    net = city(side)
    build_s = time.perf_counter() - start
    theta = hidden_theta()
    origins, destinations = od_pairs(net)
    rng = np.random.default_rng(2)
    model = RouteModel(net, theta)
    start = time.perf_counter()
    routes = model.sample(origins, destinations, rng)
    sample_s = time.perf_counter() - start
    np.savez(routes_file, edges=np.concatenate(routes), sizes=[len(r) for r in routes])
    batch = RouteBatch.from_routes(net, routes)
    empirical = batch.features(net).mean(axis=0)
    dests, col_of = np.unique(batch.destinations, return_inverse=True)
    assert len(dests) == N_DESTINATIONS

    # factors (first solve minus a second of one column), backward and forward solves, each best of `repeats`
    one = dests[:1]
    factor, factor_T, backward, forward = [], [], [], []
    for _ in range(repeats):
        model = RouteModel(net, theta)
        t0 = time.perf_counter()
        model.partition(one)
        t1 = time.perf_counter()
        model.partition(one)
        t2 = time.perf_counter()
        factor.append((t1 - t0) - (t2 - t1))
        Zs = []
        t0 = time.perf_counter()
        for lo in range(0, len(dests), CHUNK):
            Zs.append(model.partition(dests[lo:lo + CHUNK]))
        backward.append(time.perf_counter() - t0)
        rhs = [forward_rhs(model, batch, dests, col_of, lo, Z) for lo, Z in zip(range(0, len(dests), CHUNK), Zs)]
        t0 = time.perf_counter()
        model._solve(rhs[0][:, :1], transpose=True)
        t1 = time.perf_counter()
        model._solve(rhs[0][:, :1], transpose=True)
        t2 = time.perf_counter()
        factor_T.append((t1 - t0) - (t2 - t1))
        t0 = time.perf_counter()
        for u in rhs:
            model._solve(u, transpose=True)
        forward.append(time.perf_counter() - t0)
        del Zs, rhs
    gradient_s = best_of(repeats, lambda: objective(net, batch, theta, empirical))
    nll, grad = objective(net, batch, theta, empirical)

    # Z by LU for every destination; costs of the worst origin over the whole map and at the demonstrations
    Z = np.hstack([model.partition(dests[lo:lo + CHUNK]) for lo in range(0, len(dests), CHUNK)])
    S_all = sp.csr_array((model.edge_weight, (net.tail, np.arange(net.n_states))), shape=(net.n_nodes, net.n_states))
    Zo_all = S_all @ Z
    Zo_all[dests, np.arange(len(dests))] = np.inf  # origin = destination is not a route
    Zo_lu = model.origin_partition(Z, batch.origins, col_of)

    # the iterative baseline
    b_rows = model._in_edges(dests)
    b_cols = np.repeat(np.arange(len(dests)), np.diff(net.in_ptr)[dests])
    vi = value_iteration(model.M, b_rows, b_cols, len(dests), vi_max_sweeps)
    Zo_vi = model.origin_partition(vi.pop("Z"), batch.origins, col_of)
    return {
        "side": side, "states": net.n_states, "transitions": net.n_transitions, "nodes": net.n_nodes,
        "build_s": build_s, "sample_s": sample_s, "routes": len(batch), "destinations": len(dests),
        "mean_route_edges": float(np.mean(np.diff(batch.ptr))), "factor_A_s": min(factor),
        "factor_T_s": min(factor_T), "factor_s": min(factor) + min(factor_T), "backward_s": min(backward),
        "forward_s": min(forward), "gradient_s": gradient_s, "nll": nll, "grad_norm": float(np.linalg.norm(grad)),
        "max_origin_cost_nats": float(-np.log(Zo_all.min())), "max_demo_cost_nats": float(-np.log(Zo_lu.min())),
        "min_origin_Z": float(Zo_all.min()),
        "vi": vi, "vi_vs_lu_max_rel": float(np.max(np.abs(Zo_vi - Zo_lu) / Zo_lu)),
    }


def memory(side: int, routes_file: str) -> dict:
    """Peak resident set of one gradient step, in a fresh process (ru_maxrss includes SuperLU's C allocations)."""
    net = city(side)
    with np.load(routes_file) as f:
        edges, sizes = f["edges"], f["sizes"]
    batch = RouteBatch.from_routes(net, np.split(edges, np.cumsum(sizes)[:-1]))
    empirical = batch.features(net).mean(axis=0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    objective(net, batch, hidden_theta(), empirical)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_mb": peak, "before_mb": before, "step_mb": peak - before}


def child(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def slope(x: list[float], y: list[float]) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0]) if len(x) >= 2 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[72, 144, 288], help="grid sides (rows = cols)")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many timings")
    parser.add_argument("--vi-bounded-above", type=int, default=1_000_000,
                        help="above this many states run only --vi-sweeps-bounded VI sweeps and extrapolate")
    parser.add_argument("--vi-sweeps-bounded", type=int, default=30)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = " ".join([Path(sys.executable).as_posix(), *sys.argv])
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    try:
        from threadpoolctl import threadpool_info
        blas = sorted({f"{i['internal_api']} {i['num_threads']} threads" for i in threadpool_info()})
    except ImportError:
        blas = ["unknown"]
    load_before = os.getloadavg()
    started = time.perf_counter()
    print(f"command: {command}")
    print(f"machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}, "
          f"scipy {scipy.__version__}, BLAS {', '.join(blas)} (defaults)")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)}")
    print(f"hidden theta ({DRIVER}): {theta_text()}; {N_DESTINATIONS} destinations x {PER_DESTINATION} demonstrations; "
          f"CHUNK = {CHUNK}; best of {args.repeats}", flush=True)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for side in args.sides:
            routes_file = str(Path(tmp) / f"routes{side}.npz")
            states_guess = 3.7 * side * side
            sweeps = args.vi_sweeps_bounded if states_guess > args.vi_bounded_above else VI_MAX_SWEEPS
            row = child("measure", str(side), str(args.repeats), str(sweeps), routes_file)
            row |= child("memory", str(side), routes_file)
            rows.append(row)
            vi = row["vi"]
            print(f"  {side}x{side}: {row['states']} states, {row['transitions']} transitions; sampled "
                  f"{row['routes']} routes (mean {row['mean_route_edges']:.0f} edges) in {row['sample_s']:.1f} s; "
                  f"worst origin cost {row['max_origin_cost_nats']:.0f} nats (demos {row['max_demo_cost_nats']:.0f}); "
                  f"gradient step {row['gradient_s']:.2f} s; VI {vi['sweeps']} sweeps"
                  f"{'' if vi['converged'] else ' (bounded)'}, LU vs VI {row['vi_vs_lu_max_rel']:.1e}", flush=True)

    # sweeps needed where VI was bounded: a power law in states through the converged sizes
    done = [r for r in rows if r["vi"]["converged"]]
    for r in rows:
        vi = r["vi"]
        per_sweep = vi["sweep_s"] + vi["check_s"]
        if vi["converged"]:
            vi["sweeps_total"], vi["total_s"], vi["extrapolated"] = vi["sweeps"], vi["seconds"], False
        elif len(done) >= 2:
            k = slope([d["states"] for d in done], [d["vi"]["sweeps"] for d in done])
            ref = done[-1]
            vi["sweeps_total"] = ref["vi"]["sweeps"] * (r["states"] / ref["states"]) ** k
            vi["total_s"], vi["extrapolated"] = vi["sweeps_total"] * per_sweep, True
        else:
            vi["sweeps_total"], vi["total_s"], vi["extrapolated"] = float("nan"), float("nan"), True
        r["vi_over_lu"] = vi["total_s"] / (r["factor_A_s"] + r["backward_s"])

    print("\n| states | transitions | factor s | backward s | forward s | gradient step s | peak MB | step MB | "
          "VI sweep s | VI sweeps | VI total s | VI/LU | LU vs VI | sample s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        vi = r["vi"]
        mark = "~" if vi["extrapolated"] else ""
        agree = f"{r['vi_vs_lu_max_rel']:.1e}" if vi["converged"] else f"n/a ({vi['sweeps']} sweeps)"
        print(f"| {r['states']:,} | {r['transitions']:,} | {r['factor_s']:.2f} | {r['backward_s']:.2f} | "
              f"{r['forward_s']:.2f} | {r['gradient_s']:.2f} | {r['peak_mb']:.0f} | {r['step_mb']:.0f} | "
              f"{vi['sweep_s']:.4f} | {mark}{vi['sweeps_total']:.0f} | {mark}{vi['total_s']:.1f} | "
              f"{mark}{r['vi_over_lu']:.0f}x | {agree} | {r['sample_s']:.1f} |")
    S = [r["states"] for r in rows]
    growth = {key: slope(S, [r[key] for r in rows])
              for key in ("factor_s", "backward_s", "forward_s", "gradient_s", "peak_mb")}
    growth["vi_sweep_s"] = slope(S, [r["vi"]["sweep_s"] for r in rows])
    print("\ngrowth exponents (time ~ states^k, least squares on log-log): "
          + ", ".join(f"{k} {v:.2f}" for k, v in growth.items()))
    big = [r for r in rows if r["states"] >= TARGET_STATES]
    if big:
        r = big[-1]
        verdict = "meets" if r["gradient_s"] < TARGET_S else "misses"
        print(f"target: one gradient step over {r['destinations']} destinations at {r['states']:,} states in "
              f"{r['gradient_s']:.2f} s on {os.cpu_count()} cores: {verdict} < {TARGET_S:.0f} s")
    print("factor = LU of I - M plus LU of its transpose; VI/LU = VI total / (factor of I - M + backward); "
          "~ = extrapolated (sweeps from a power law through the converged sizes, times measured sweep time)")
    wall = time.perf_counter() - started
    load_after = os.getloadavg()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in load_after)}; wall {wall:.0f} s")

    result = {"command": command, "machine": {"cpu": cpu, "cores": os.cpu_count(), "blas": blas,
                                              "numpy": np.__version__, "scipy": scipy.__version__},
              "load_before": load_before, "load_after": load_after, "wall_s": wall,
              "hidden_theta": dict(zip(FEATURE_NAMES, hidden_theta().tolist())),
              "chunk": CHUNK, "repeats": args.repeats, "rows": rows, "growth_exponents": growth}
    (out / "routes_scale.json").write_text(json.dumps(result, indent=1))
    plot(rows, out / "routes_scale.png")
    print(f"wrote {out / 'routes_scale.json'} and {out / 'routes_scale.png'}")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    S = np.array([r["states"] for r in rows])
    fig, (ax, ax_mem) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label, style in (("gradient_s", "gradient step (LU)", "o-"), ("factor_s", "factor (both)", "^--"),
                              ("backward_s", "backward solves", "v--"), ("forward_s", "forward solves", "s--")):
        ax.loglog(S, [r[key] for r in rows], style, label=label)
    vi_total = np.array([r["vi"]["total_s"] for r in rows])
    measured = np.array([not r["vi"]["extrapolated"] for r in rows])
    ax.loglog(S, vi_total, "k-", alpha=0.5)
    ax.loglog(S[measured], vi_total[measured], "ko", label="VI backward (measured)")
    if (~measured).any():
        ax.loglog(S[~measured], vi_total[~measured], "ko", mfc="none", label="VI backward (extrapolated)")
    ax.loglog(S, [r["vi"]["sweep_s"] for r in rows], "k:", marker=".", label="one VI sweep")
    ax.axhline(TARGET_S, color="red", lw=0.8, ls=":")
    ax.axvline(TARGET_STATES, color="red", lw=0.8, ls=":")
    ax.set(xlabel="states (directed road segments)", ylabel="seconds",
           title=f"route MaxEnt, {rows[0]['destinations']} destinations")
    ax.legend(fontsize=7)
    ax_mem.loglog(S, [r["peak_mb"] for r in rows], "o-", label="peak RSS")
    ax_mem.loglog(S, [r["step_mb"] for r in rows], "s--", label="peak less before the step")
    ax_mem.set(xlabel="states", ylabel="MB", title="memory of one gradient step")
    ax_mem.legend(fontsize=7)
    for axis in (ax.xaxis, ax_mem.xaxis):
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # 2x10^4, 3x10^4 ... overlap
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        job, side = sys.argv[2], int(sys.argv[3])
        if job == "measure":
            result = measure(side, int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
        else:
            result = memory(side, sys.argv[4])
        print(json.dumps(result))
    else:
        main()
