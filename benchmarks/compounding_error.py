"""Compounding error: BC's expected mistakes grow like eps*T^2, DAgger's like eps*T.

Construction (exact, tabular, no neural nets):

* Environment: ``irlhf.envs.corridor.corridor(half_width)``, a lane of lateral offsets -K..K with
  deterministic steer-left / straight / steer-right actions, started on the centre line. The expert
  (the optimal policy, checked against ``value_iteration``) drives straight on the centre line and
  steers back towards it from any off-lane offset, so it never leaves the centre line itself.
* Learner ("tabular classifier with per-step training error eps"): for every state in its training
  data it predicts the majority expert label there, but takes a wrong action (uniform over the two
  others) with probability eps. So its per-step error on its own training distribution is exactly eps,
  for BC and DAgger alike. On states with no training data it predicts the dataset's majority label
  (what an untrained-on-this-input classifier falls back to): for BC's data that is "straight", which
  is wrong everywhere off the lane, so once a BC learner leaves the lane it stays off and errs every step.
* BC: training states = support of the expert's state occupancy over the horizon T (centre line only).
* DAgger: rounds i = 1..N with roll-in policy beta_i * expert + (1 - beta_i) * learner_i,
  beta_1 = 1, beta_i = 0.5^(i-1); the states the roll-in visits with positive probability (exact
  occupancy, i.e. the infinite-data limit) are labelled by the expert and aggregated; the learner is
  retrained on the aggregate. The final learner is evaluated.
* Metric: expected number of mistakes in T steps (steps where the learner's action differs from the
  expert's at the state it is in), computed exactly from ``occupancy_measure`` (discount 1, horizon T,
  state-action occupancy). Also reported: expected off-lane steps. A Monte Carlo check with
  ``sample_trajectories`` (seeded) is printed for the largest T.
* Fit: least squares of log(mistakes) = a + k log(T) for each method; expect k ~ 2 (BC), k ~ 1 (DAgger).
  Theory for this construction: BC = sum_t [1 - (1-eps)^t (1 - eps)] ~ eps T + eps T^2 / 2 while
  eps T << 1; DAgger = eps T exactly once its data covers every reachable state.

Run:

    python benchmarks/compounding_error.py                    # eps 1e-4, K 3, T 10..320
    python benchmarks/compounding_error.py --epsilon 1e-3 --horizons 10 20 40 80 160 320

Writes benchmarks/out/compounding_error.png (log-log plot with the fitted lines).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from irlhf.envs.corridor import corridor, corridor_expert
from irlhf.envs.tabular import sample_trajectories
from irlhf.planning import occupancy_measure, value_iteration

OUT = Path(__file__).resolve().parent / "out"


def train_learner(labels: dict[int, int], n_states: int, n_actions: int, eps: float) -> np.ndarray:
    """Tabular classifier with per-step error eps on covered states, majority fallback elsewhere."""
    values, counts = np.unique(list(labels.values()), return_counts=True)
    fallback = int(values[counts.argmax()])
    pi = np.zeros((n_states, n_actions))
    for s in range(n_states):
        if s in labels:
            pi[s] = eps / (n_actions - 1)
            pi[s, labels[s]] = 1.0 - eps
        else:
            pi[s, fallback] = 1.0
    return pi


def visited(mdp, pi, T: int) -> np.ndarray:
    return np.flatnonzero(occupancy_measure(mdp, pi, T) > 0)


def bc(mdp, expert, T, eps):
    labels = {int(s): int(expert[s].argmax()) for s in visited(mdp, expert, T)}
    return train_learner(labels, mdp.n_states, mdp.n_actions, eps), labels


def dagger(mdp, expert, T, eps, rounds):
    labels: dict[int, int] = {}
    learner = None
    for i in range(rounds):
        beta = 0.5**i
        roll_in = expert if learner is None else beta * expert + (1 - beta) * learner
        for s in visited(mdp, roll_in, T):
            labels[int(s)] = int(expert[s].argmax())  # expert labels; deterministic, so aggregation = union
        learner = train_learner(labels, mdp.n_states, mdp.n_actions, eps)
    return learner, labels


def evaluate(mdp, expert, pi, T):
    rho = occupancy_measure(mdp, pi, T, state_action=True)  # discount 1: expected visit counts
    mistakes = float((rho * (1.0 - expert)).sum())
    off_lane = float(rho.sum(1).sum() - rho.sum(1)[mdp.meta["centre"]])
    return mistakes, off_lane


def training_error(pi, expert, labels):
    """Per-step error of the learner on its training states (uniform weight per labelled state)."""
    return float(np.mean([1.0 - pi[s] @ expert[s] for s in labels]))


def fit(T, y):
    k, a = np.polyfit(np.log(T), np.log(y), 1)
    return k, a


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epsilon", type=float, default=1e-4)
    p.add_argument("--half-width", type=int, default=3)
    p.add_argument("--horizons", type=int, nargs="+", default=[10, 20, 40, 80, 160, 320])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--mc-rollouts", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    eps, T_list = args.epsilon, np.array(sorted(args.horizons))

    mdp = corridor(args.half_width, discount=1.0, horizon=int(T_list.max()))
    expert = corridor_expert(mdp)
    _, _, pi_star = value_iteration(corridor(args.half_width, discount=0.9), mdp.true_reward)
    assert (pi_star.argmax(1) == expert.argmax(1)).all(), "expert is not the optimal policy"

    rows = []
    for T in T_list:
        T = int(T)
        pi_bc, lab_bc = bc(mdp, expert, T, eps)
        pi_dg, lab_dg = dagger(mdp, expert, T, eps, args.rounds)
        m_bc, off_bc = evaluate(mdp, expert, pi_bc, T)
        m_dg, off_dg = evaluate(mdp, expert, pi_dg, T)
        rows.append((T, m_bc, m_dg, off_bc, off_dg, training_error(pi_bc, expert, lab_bc),
                     training_error(pi_dg, expert, lab_dg), len(lab_bc), len(lab_dg), pi_bc, pi_dg))

    T_arr = np.array([r[0] for r in rows], float)
    bc_m, dg_m = np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
    bc_off, dg_off = np.array([r[3] for r in rows]), np.array([r[4] for r in rows])
    k_bc, a_bc = fit(T_arr, bc_m)
    k_dg, a_dg = fit(T_arr, dg_m)
    ko_bc, _ = fit(T_arr, bc_off)
    ko_dg, _ = fit(T_arr, dg_off)

    print(f"corridor half_width={args.half_width} (S={mdp.n_states}, A=3), per-step training error "
          f"eps={eps:g}, DAgger rounds={args.rounds}, exact occupancy (discount 1)\n")
    print("| T | BC mistakes | DAgger mistakes | BC / (eps T^2/2) | DAgger / (eps T) | BC off-lane steps "
          "| DAgger off-lane steps | train err BC / DAgger | states labelled BC / DAgger |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for T, mb, md, ob, od, eb, ed, nb, nd, _, _ in rows:
        print(f"| {T} | {mb:.5g} | {md:.5g} | {mb / (eps * T * T / 2):.3f} | {md / (eps * T):.3f} | "
              f"{ob:.5g} | {od:.5g} | {eb:.2g} / {ed:.2g} | {nb} / {nd} |")
    print(f"\nfitted exponent k in mistakes ~ T^k:  BC k = {k_bc:.3f}   DAgger k = {k_dg:.3f}")
    print(f"fitted exponent for off-lane steps:   BC k = {ko_bc:.3f}   DAgger k = {ko_dg:.3f}")

    # Monte Carlo cross-check of the exact numbers at the largest horizon (seeded rollouts)
    T, pi_bc, pi_dg = rows[-1][0], rows[-1][9], rows[-1][10]
    exp_act = expert.argmax(1)
    for name, pi, exact in (("BC", pi_bc, rows[-1][1]), ("DAgger", pi_dg, rows[-1][2])):
        trajs = sample_trajectories(mdp, pi, n=args.mc_rollouts, horizon=T, seed=args.seed)
        per = np.array([(np.asarray(t.acts) != exp_act[np.asarray(t.obs)[:-1]]).sum() for t in trajs])
        se = per.std(ddof=1) / np.sqrt(len(per))
        print(f"Monte Carlo check T={T}, {args.mc_rollouts} rollouts: {name} mistakes "
              f"{per.mean():.4g} +- {se:.2g} (exact {exact:.4g})")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    OUT.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    grid = np.geomspace(T_arr.min(), T_arr.max(), 100)
    ax.loglog(T_arr, bc_m, "o", color="C3", label="BC (exact)")
    ax.loglog(grid, np.exp(a_bc) * grid**k_bc, "-", color="C3", label=f"BC fit: T^{k_bc:.2f}")
    ax.loglog(T_arr, dg_m, "s", color="C0", label="DAgger (exact)")
    ax.loglog(grid, np.exp(a_dg) * grid**k_dg, "-", color="C0", label=f"DAgger fit: T^{k_dg:.2f}")
    ax.loglog(grid, eps * grid**2 / 2, ":", color="gray", label=r"$\epsilon T^2/2$")
    ax.loglog(grid, eps * grid, "--", color="gray", label=r"$\epsilon T$")
    ax.set_xlabel("horizon T")
    ax.set_ylabel("expected mistakes in T steps")
    ax.set_title(f"Compounding error on a lane (K={args.half_width}, eps={eps:g})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = OUT / "compounding_error.png"
    fig.savefig(path, dpi=120)
    print(f"\nplot: {path}")


if __name__ == "__main__":
    main()
