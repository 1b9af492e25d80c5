"""Planning speed: finite-horizon soft value iteration + state occupancy on slip gridworlds.

Table 1 (large grid): irlhf vs a plain vectorised numpy/scipy version (measured in the same run)
on an n x n gridworld with 30% slip at horizon 100 (256 x 256: S = 65,536, 1.6M non-zeros).
Table 2 (vs imitation): irlhf vs imitation's dense ``mce_partition_fh`` + ``mce_occupancy_measures``
at horizon 50, same MDP, values compared to 1e-9. imitation runs in its own virtualenv (gymnasium
0.29); create it once with ``bash benchmarks/setup_imitation_venv.sh`` (else Table 2 is skipped).

Each measurement runs in a fresh subprocess. Memory: "call" is the tracemalloc peak of one planning
call (numpy buffers, both libraries; interpreter and imports excluded); "total" adds the transition
model the call needs (irlhf: sparse P and its cached transpose; imitation: the dense S x A x S array).

    python benchmarks/planning_speed.py                 # both tables, plot in benchmarks/out/
    python benchmarks/planning_speed.py --sizes 48 64   # Table 2 sizes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
IMITATION_PYTHON = HERE / ".venv-imitation" / "bin" / "python"


def plain_numpy(mdp, reward: np.ndarray, H: int):
    """The obvious vectorised version: scipy logsumexp over axis 1, exp(Q - V), P^T matvec per step."""
    from scipy.special import logsumexp

    S, A, P, g = mdp.n_states, mdp.n_actions, mdp.transitions, mdp.discount
    r = np.repeat(reward[:, None], A, axis=1)
    V = np.zeros((H, S))
    Q = np.zeros((H, S, A))
    pi = np.zeros((H, S, A))
    for t in reversed(range(H)):
        Q[t] = r if t == H - 1 else r + g * (P @ V[t + 1]).reshape(S, A)
        V[t] = logsumexp(Q[t], axis=1)
        pi[t] = np.exp(Q[t] - V[t][:, None])
    d, rho = mdp.initial.copy(), np.zeros(S)
    for t in range(H):
        rho += g**t * d
        d = P.T @ (d[:, None] * pi[t]).reshape(-1)
    return V, Q, pi, rho


def irlhf_planner(mdp, reward: np.ndarray, H: int):
    from irlhf.planning import occupancy_measure, soft_value_iteration

    V, Q, pi = soft_value_iteration(mdp, reward, horizon=H)
    return V, Q, pi, occupancy_measure(mdp, pi, horizon=H)


def measure(impl: str, n: int, H: int, repeats: int, out_npz: str | None) -> dict:
    """Run inside a fresh process: best-of-`repeats` seconds and the tracemalloc peak of one call."""
    from irlhf.envs.tabular import gridworld

    mdp = gridworld(n, slip=0.3, discount=0.99)
    reward = np.random.default_rng(0).standard_normal(mdp.n_states)
    fn = irlhf_planner if impl == "irlhf" else plain_numpy
    fn(mdp, reward, H)  # warm-up: caches (P^T) and page faults, as in an IRL loop's later iterations
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn(mdp, reward, H)
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    fn(mdp, reward, H)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    if out_npz:
        np.savez(out_npz, V=result[0], Q=result[1], pi=result[2], D=result[3])
    P = mdp.transitions
    model_bytes = 2 * (P.data.nbytes + P.indices.nbytes + P.indptr.nbytes)  # P and its cached transpose
    return {"impl": impl, "n": n, "S": mdp.n_states, "nnz": int(P.nnz), "H": H,
            "seconds": min(times), "median_seconds": float(np.median(times)), "peak_mb": peak / 2**20,
            "model_mb": model_bytes / 2**20}


def run_child(impl: str, n: int, H: int, repeats: int, out_npz: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", impl, str(n), str(H), str(repeats), out_npz or ""]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_imitation(n: int, H: int, repeats: int, workdir: Path) -> tuple[dict, Path]:
    """Dense MDP to .npz, imitation's planner in its own venv; returns its JSON line and output file."""
    from irlhf.envs.tabular import gridworld

    mdp = gridworld(n, slip=0.3, discount=0.99)
    reward = np.random.default_rng(0).standard_normal(mdp.n_states)
    mdp_file, out_file = workdir / f"mdp{n}.npz", workdir / f"imitation{n}.npz"
    np.savez(mdp_file, transitions=mdp.dense_transitions(max_entries=None), reward=reward, initial=mdp.initial,
             horizon=H, discount=mdp.discount)
    cmd = [str(IMITATION_PYTHON), str(HERE / "imitation_baseline.py"), "--npz", str(mdp_file), "--job", "planning",
           "--repeats", str(repeats), "--out-npz", str(out_file)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1]), out_file


def max_abs_diff(a_file: Path, b_file: Path) -> float:
    with np.load(a_file) as a, np.load(b_file) as b:
        return max(float(np.abs(a[k] - b[k]).max()) for k in ("V", "Q", "pi", "D"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--large", type=int, default=256, help="grid side for Table 1")
    parser.add_argument("--large-horizon", type=int, default=100)
    parser.add_argument("--sizes", type=int, nargs="*", default=[48, 64, 96], help="grid sides for Table 2")
    parser.add_argument("--horizon", type=int, default=50, help="horizon for Table 2")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(HERE / "out"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}")

    print(f"\nTable 1: soft VI + occupancy, {args.large}x{args.large} gridworld, slip 0.3, H={args.large_horizon}, best of {args.repeats}")
    print("| implementation | S | nnz | seconds (best) | seconds (median) | peak MB |")
    print("|---|---|---|---|---|---|")
    rows1 = [run_child(impl, args.large, args.large_horizon, args.repeats) for impl in ("irlhf", "numpy")]
    for row in rows1:
        print(f"| {row['impl']} | {row['S']} | {row['nnz']} | {row['seconds']:.3f} | {row['median_seconds']:.3f} | {row['peak_mb']:.0f} |")

    rows2 = []
    if args.sizes and not IMITATION_PYTHON.exists():
        print(f"\nTable 2 skipped: {IMITATION_PYTHON} missing; run `bash benchmarks/setup_imitation_venv.sh` first")
    elif args.sizes:
        print(f"\nTable 2: vs imitation {{mce_partition_fh + mce_occupancy_measures}}, slip 0.3, H={args.horizon}, best of {args.repeats}")
        print("| n | S | irlhf s | imitation s | speed-up | irlhf call MB | imitation call MB | irlhf total MB | "
              "imitation total MB | total memory ratio | max abs diff |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        with tempfile.TemporaryDirectory() as tmp:
            for n in args.sizes:
                ours_file = Path(tmp) / f"ours{n}.npz"
                ours = run_child("irlhf", n, args.horizon, args.repeats, str(ours_file))
                theirs, theirs_file = run_imitation(n, args.horizon, args.repeats, Path(tmp))
                diff = max_abs_diff(ours_file, theirs_file)
                dense_mb = 8 * ours["S"] * 5 * ours["S"] / 2**20
                row = {"n": n, "S": ours["S"], "irlhf_s": ours["seconds"], "imitation_s": theirs["seconds"],
                       "irlhf_mb": ours["peak_mb"], "imitation_mb": theirs["traced_peak_mb"],
                       "irlhf_total_mb": ours["peak_mb"] + ours["model_mb"],
                       "imitation_total_mb": theirs["traced_peak_mb"] + dense_mb, "max_abs_diff": diff}
                rows2.append(row)
                print(f"| {n} | {row['S']} | {row['irlhf_s']:.4f} | {row['imitation_s']:.2f} | "
                      f"{row['imitation_s'] / row['irlhf_s']:.0f}x | {row['irlhf_mb']:.1f} | {row['imitation_mb']:.1f} | "
                      f"{row['irlhf_total_mb']:.1f} | {row['imitation_total_mb']:.0f} | "
                      f"{row['imitation_total_mb'] / row['irlhf_total_mb']:.0f}x | {diff:.1e} |")
    (out / "planning_speed.json").write_text(json.dumps({"table1": rows1, "table2": rows2}, indent=2))
    if rows2:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
        S = [r["S"] for r in rows2]
        ax[0].loglog(S, [r["irlhf_s"] for r in rows2], "o-", label="irlhf (sparse)")
        ax[0].loglog(S, [r["imitation_s"] for r in rows2], "s-", label="imitation (dense)")
        ax[0].set(xlabel="states S", ylabel="seconds", title=f"soft VI + occupancy, H={args.horizon}")
        ax[1].loglog(S, [r["irlhf_total_mb"] for r in rows2], "o-", label="irlhf (sparse)")
        ax[1].loglog(S, [r["imitation_total_mb"] for r in rows2], "s-", label="imitation (dense)")
        ax[1].set(xlabel="states S", ylabel="MB (model + call peak)", title="memory")
        ax[0].legend()
        fig.tight_layout()
        fig.savefig(out / "planning_speed.png", dpi=110)
        print(f"\nplot: {out / 'planning_speed.png'}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        impl, n, H, repeats, out_npz = sys.argv[2:7]
        print(json.dumps(measure(impl, int(n), int(H), int(repeats), out_npz or None)))
    else:
        main()
