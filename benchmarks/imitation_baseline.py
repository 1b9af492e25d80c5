"""Baseline timings of the `imitation` library's tabular MCE planner and MCE IRL.

Run with the interpreter of the dedicated venv (see setup_imitation_venv.sh),
never with the project's own environment::

    bash benchmarks/setup_imitation_venv.sh
    benchmarks/.venv-imitation/bin/python benchmarks/imitation_baseline.py \
        --npz mdp.npz --job planning --repeats 5 --out-npz imitation_out.npz
    benchmarks/.venv-imitation/bin/python benchmarks/imitation_baseline.py \
        --npz mdp.npz --job mceirl --repeats 20

Exactly one JSON line is printed to stdout (warnings go to stderr).

Input ``--npz``: a dense tabular MDP

    transitions     (S, A, S) float64   P[s, a, s']
    reward          (S,)      float64   state-only reward r(s)
    initial         (S,)      float64   initial state distribution
    horizon         ()        int       H, number of decisions (actions) per episode
    discount        ()        float     gamma
    features        (S, F)    float64   only for --job mceirl
    demo_state_om   (S,)      float64   only for --job mceirl (expert occupancy,
                                        passed to MCEIRL verbatim -- see below)
    theta0          (F,)      float64   optional, mceirl initial weights (default 0)

Jobs
----
planning
    Times ``mce_partition_fh(env, reward=reward, discount=discount)`` followed by
    ``mce_occupancy_measures(env, pi=pi, discount=discount)``, best of --repeats.
    ``env`` is a ``seals.base_envs.TabularModelMDP`` (observation == state; the
    planner only reads transition_matrix, horizon, initial_state_dist).
    Memory is measured in two extra, untimed calls made *before* the timed ones:
    ``peak_delta_mb`` = peak RSS during one call minus RSS just before it (the
    kernel's peak-RSS counter is reset through /proc/self/clear_refs; if that is
    unavailable the ru_maxrss high-water increase is used, a lower bound), and
    ``traced_peak_mb`` = tracemalloc peak of one call (counts numpy buffers).
    ``peak_rss_mb`` is the whole process's ru_maxrss, i.e. it includes the
    interpreter, torch/imitation imports and the loaded dense MDP
    (``baseline_rss_mb`` is the RSS right before the first call).
    (``/usr/bin/time -v`` reports ~12 MB more, also for a bare import, probably
    RSS counter sync at exit). ``median_seconds``/``seconds_all`` come with the best time.
    ``--out-npz`` receives V (H,S), Q (H,S,A), pi (H,S,A) and D (S,) in *our*
    convention, plus imitation's raw D_t (H+1,S) and Dcum (S,).

mceirl
    Builds ``imitation.algorithms.mce_irl.MCEIRL`` on a
    ``seals.base_envs.TabularModelPOMDP`` whose ``observation_matrix`` is the
    npz ``features`` (S, F), so the reward net sees feature vectors as
    observations. The reward net is a bias-free ``nn.Linear(F, 1)`` wrapped in
    imitation's ``RewardNet`` interface, i.e. r_theta(s) = features[s] @ theta
    (imitation's stock BasicRewardNet(hid_sizes=()) would add a bias term),
    in float64 (``--dtype``) to match our planner; weights start at theta0
    (zeros by default). Optimiser: imitation's default Adam, lr ``--lr``
    (1e-2 default). ``linf_eps``/``grad_l2_eps`` are set negative so that
    ``trainer.train(max_iter=K)`` runs exactly K = --repeats iterations, and
    logging is disabled. Each iteration = reward forward pass +
    mce_occupancy_measures (which internally calls mce_partition_fh) + backward +
    Adam step; ``train`` also makes one extra mce_partition_fh call after the
    loop, which is included in the total and hence in ``seconds_per_iter``.
    ``--out-npz`` receives theta (F,), the final reward (S,) and the final
    visitations (S,, imitation's Dcum convention).

Conventions of imitation 1.0.1 (read from imitation/algorithms/mce_irl.py)
---------------------------------------------------------------------------
mce_partition_fh(env, *, reward=None, discount=1.0) -> (V, Q, pi)
    V (H,S), Q (H,S,A), pi (H,S,A), time index t = 0..H-1 (t = number of
    actions already taken). Q[H-1] = r (broadcast over actions);
    Q[t] = r[:, None] + discount * (P @ V[t+1]); V[t] = logsumexp_a Q[t];
    pi = exp(Q - V[:, :, None]). Reward is state-only r(s) of the current
    state. -> IDENTICAL to our V/Q/pi convention, no mapping needed.
mce_occupancy_measures(env, *, reward=None, pi=None, discount=1.0) -> (D_t, Dcum)
    D_t has H+1 rows: D_t[0] = initial, D_t[t+1] = sum_a (D_t[t] * pi[t,:,a]) @ P[:,a,:]
    for t = 0..H-1, so D_t[H] is the distribution *after* the last action.
    Dcum = sum_{t=0..H} discount^t D_t[t]  (rollout.discounted_sum along axis 0,
    Horner's scheme), total mass sum_{t=0..H} discount^t (= H+1 undiscounted).
    -> imitation's Dcum INCLUDES t = H. Ours stops at t = H-1:
       D_ours = sum_{t<H} discount^t D_t[t] = Dcum - discount^H * D_t[H].
    NB: if pi is None it is recomputed with mce_partition_fh(env, reward=reward)
    i.e. with the DEFAULT discount 1.0, whatever ``discount`` says.
MCEIRL
    gradient step uses  visitations - demo_state_om  with visitations from
    ``mce_occupancy_measures(env, reward=r_theta, discount=discount)`` -- no pi,
    so (pitfall above) the policy inside MCE IRL is the UNDISCOUNTED soft-optimal
    one even when discount < 1, while the occupancy is discounted. With
    discount == 1 it is consistent. The expert occupancy is expected in
    imitation's Dcum convention (includes t = H; imitation normalises
    transition-based demos to total mass H+1). Our convention's demo occupancy
    (t < H) shifts the fixed point by discount^H * D_t[H]; it does not change
    the cost per iteration, which is what this job measures.

Threads: numpy (BLAS) and torch use their defaults; set OMP_NUM_THREADS /
OPENBLAS_NUM_THREADS for both sides of a comparison alike.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata as md
import json
import resource
import sys
import tempfile
import time
import tracemalloc
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import torch as th
from imitation.algorithms import mce_irl
from imitation.data import rollout
from imitation.rewards import reward_nets
from imitation.util import logger as imit_logger
from seals import base_envs

MB = 1024.0 * 1024.0
# Lifetime peak RSS seen so far; needed because resetting VmHWM also resets ru_maxrss.
_PEAK_RSS_MB = 0.0


# ----------------------------------------------------------------------------
# memory helpers
# ----------------------------------------------------------------------------


def _status_kb(field: str) -> Optional[int]:
    """Value of a kB field (VmRSS, VmHWM) of /proc/self/status, None if absent."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM); False if not permitted."""
    peak_rss_mb()  # remember the lifetime peak before the kernel forgets it
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _ru_maxrss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def peak_rss_mb() -> float:
    """Process lifetime peak RSS (ru_maxrss, MB), surviving VmHWM resets."""
    global _PEAK_RSS_MB
    _PEAK_RSS_MB = max(_PEAK_RSS_MB, _ru_maxrss_mb())
    return _PEAK_RSS_MB


def rss_mb() -> float:
    kb = _status_kb("VmRSS")
    return kb / 1024.0 if kb is not None else float("nan")


def measure_peak_delta(fn: Callable[[], Any]) -> Tuple[Any, float, str]:
    """Run fn once; return (result, peak RSS during the call - RSS before, method)."""
    gc.collect()
    if _reset_peak_rss() and _status_kb("VmHWM") is not None:
        before = rss_mb()
        out = fn()
        return out, _status_kb("VmHWM") / 1024.0 - before, "vmhwm_reset"
    # Fallback: growth of the lifetime high-water mark (lower bound of the true delta).
    before = _ru_maxrss_mb()
    out = fn()
    return out, _ru_maxrss_mb() - before, "ru_maxrss_growth"


def measure_traced_peak(fn: Callable[[], Any]) -> float:
    """tracemalloc peak (MB) of one call; numpy registers its buffers with it."""
    gc.collect()
    tracemalloc.start()
    try:
        out = fn()
        peak = tracemalloc.get_traced_memory()[1] / MB
    finally:
        tracemalloc.stop()
    del out
    return peak


# ----------------------------------------------------------------------------
# MDP loading / env construction
# ----------------------------------------------------------------------------


def load_mdp(path: str) -> Dict[str, Any]:
    """Load and validate the dense MDP npz."""
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    T = np.ascontiguousarray(data["transitions"], dtype=np.float64)
    if T.ndim != 3 or T.shape[0] != T.shape[2]:
        raise ValueError(f"transitions must be (S, A, S), got {T.shape}")
    S, A, _ = T.shape
    mdp = {
        "T": T,
        "reward": np.asarray(data["reward"], dtype=np.float64),
        "initial": np.asarray(data["initial"], dtype=np.float64),
        "horizon": int(data["horizon"]),
        "discount": float(data["discount"]),
        "S": S,
        "A": A,
    }
    if mdp["reward"].shape != (S,) or mdp["initial"].shape != (S,):
        raise ValueError("reward and initial must both have shape (S,)")
    if not np.allclose(T.sum(axis=2), 1.0):
        raise ValueError("transitions rows must sum to 1")
    for key in ("features", "demo_state_om", "theta0"):
        if key in data:
            mdp[key] = np.asarray(data[key], dtype=np.float64)
    return mdp


def make_mdp_env(mdp: Dict[str, Any]) -> base_envs.TabularModelMDP:
    # Observation == state: the planning functions never look at observations.
    return base_envs.TabularModelMDP(
        transition_matrix=mdp["T"],
        reward_matrix=mdp["reward"],
        horizon=mdp["horizon"],
        initial_state_dist=mdp["initial"],
    )


def make_pomdp_env(mdp: Dict[str, Any]) -> base_envs.TabularModelPOMDP:
    # MCEIRL feeds env.observation_matrix (S, F) to the reward net.
    return base_envs.TabularModelPOMDP(
        transition_matrix=mdp["T"],
        observation_matrix=mdp["features"],
        reward_matrix=mdp["reward"],
        horizon=mdp["horizon"],
        initial_state_dist=mdp["initial"],
    )


def versions() -> Dict[str, str]:
    return {
        "imitation_version": md.version("imitation"),
        "seals_version": md.version("seals"),
        "gymnasium_version": md.version("gymnasium"),
        "torch_version": th.__version__,
        "numpy_version": np.__version__,
    }


# ----------------------------------------------------------------------------
# job: planning
# ----------------------------------------------------------------------------


def job_planning(mdp: Dict[str, Any], repeats: int, out_npz: Optional[str]) -> Dict:
    env = make_mdp_env(mdp)
    reward, discount, H = mdp["reward"], mdp["discount"], mdp["horizon"]

    def plan():
        V, Q, pi = mce_irl.mce_partition_fh(env, reward=reward, discount=discount)
        D_t, Dcum = mce_irl.mce_occupancy_measures(env, pi=pi, discount=discount)
        return V, Q, pi, D_t, Dcum

    baseline = rss_mb()
    # Memory first, on a fresh heap, so freed blocks of earlier runs cannot hide growth.
    result, peak_delta, method = measure_peak_delta(plan)
    del result
    traced_peak = measure_traced_peak(plan)

    times = []
    result = None
    for _ in range(repeats):
        result = None  # drop the previous outputs before the next call allocates
        gc.collect()
        t0 = time.perf_counter()
        result = plan()
        times.append(time.perf_counter() - t0)

    V, Q, pi, D_t, Dcum = result
    # Our occupancy stops at t = H-1; imitation's Dcum also adds discount^H * D_t[H].
    D_ours = rollout.discounted_sum(D_t[:H], discount)
    if out_npz:
        np.savez(
            out_npz, V=V, Q=Q, pi=pi, D=D_ours, D_t=D_t, Dcum_imitation=Dcum,
        )
    return {
        "job": "planning",
        "seconds": min(times),
        "median_seconds": float(np.median(times)),
        "seconds_all": times,
        "peak_rss_mb": peak_rss_mb(),
        "baseline_rss_mb": baseline,
        "peak_delta_mb": peak_delta,
        "peak_delta_method": method,
        "traced_peak_mb": traced_peak,
        "S": mdp["S"],
        "A": mdp["A"],
        "H": H,
        "discount": discount,
        "repeats": repeats,
        "D_sum": float(D_ours.sum()),
    }


# ----------------------------------------------------------------------------
# job: mceirl
# ----------------------------------------------------------------------------


class LinearRewardNet(reward_nets.RewardNet):
    """r_theta(s) = obs(s) @ theta, no bias, state-only (MCEIRL passes None else)."""

    def __init__(self, observation_space, action_space, n_features: int, dtype):
        super().__init__(observation_space, action_space, normalize_images=False)
        self.linear = th.nn.Linear(n_features, 1, bias=False, dtype=dtype)

    def forward(self, state, action, next_state, done):
        del action, next_state, done
        return self.linear(state).squeeze(-1)


def job_mceirl(
    mdp: Dict[str, Any],
    iters: int,
    out_npz: Optional[str],
    lr: float,
    dtype: th.dtype,
    seed: int,
) -> Dict:
    for key in ("features", "demo_state_om"):
        if key not in mdp:
            raise ValueError(f"--job mceirl needs '{key}' in the npz")
    S = mdp["S"]
    features = mdp["features"]
    if features.ndim != 2 or features.shape[0] != S:
        raise ValueError(f"features must be (S, F), got {features.shape}")
    F = features.shape[1]
    demo = mdp["demo_state_om"]
    if demo.shape != (S,):
        raise ValueError(f"demo_state_om must be (S,), got {demo.shape}")

    th.manual_seed(seed)
    env = make_pomdp_env(mdp)
    net = LinearRewardNet(env.observation_space, env.action_space, F, dtype)
    with th.no_grad():
        net.linear.weight.copy_(
            th.as_tensor(mdp.get("theta0", np.zeros(F)), dtype=dtype).view(1, F),
        )

    with tempfile.TemporaryDirectory(prefix="imitation-log-") as logdir:
        # No output formats: imitation's default logger would print to stdout.
        logger = imit_logger.configure(folder=logdir, format_strs=[])
        trainer = mce_irl.MCEIRL(
            demo,
            env,
            net,
            rng=np.random.default_rng(seed),
            optimizer_kwargs={"lr": lr},
            discount=mdp["discount"],
            linf_eps=-1.0,  # negative thresholds: never stop before max_iter
            grad_l2_eps=-1.0,
            log_interval=None,
            custom_logger=logger,
        )
        baseline = rss_mb()
        gc.collect()

        def train():
            t0 = time.perf_counter()
            visitations = trainer.train(max_iter=iters)
            return visitations, time.perf_counter() - t0

        (visitations, seconds), peak_delta, method = measure_peak_delta(train)

    theta = net.linear.weight.detach().cpu().numpy().reshape(F).astype(np.float64)
    if out_npz:
        np.savez(
            out_npz,
            theta=theta,
            reward=features @ theta,
            visitations_imitation=visitations,
        )
    return {
        "job": "mceirl",
        "seconds": seconds,
        "seconds_per_iter": seconds / iters,
        "iters": iters,
        "peak_rss_mb": peak_rss_mb(),
        "baseline_rss_mb": baseline,
        "peak_delta_mb": peak_delta,
        "peak_delta_method": method,
        "S": S,
        "A": mdp["A"],
        "H": mdp["horizon"],
        "F": F,
        "discount": mdp["discount"],
        "lr": lr,
        "dtype": str(dtype).replace("torch.", ""),
        "final_linf_delta": float(np.max(np.abs(visitations - demo))),
    }


# ----------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--npz", required=True, help="dense tabular MDP (see docstring)")
    p.add_argument("--job", choices=("planning", "mceirl"), required=True)
    p.add_argument(
        "--repeats", type=int, default=5,
        help="planning: best-of-K timed calls; mceirl: K training iterations",
    )
    p.add_argument("--out-npz", default=None, help="where to save the results")
    p.add_argument("--lr", type=float, default=1e-2, help="mceirl Adam learning rate")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="mceirl reward-net dtype")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be >= 1")

    mdp = load_mdp(args.npz)
    if args.job == "planning":
        res = job_planning(mdp, args.repeats, args.out_npz)
    else:
        res = job_mceirl(
            mdp, args.repeats, args.out_npz, args.lr,
            getattr(th, args.dtype), args.seed,
        )
    res.update(versions())
    res["torch_threads"] = th.get_num_threads()
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
