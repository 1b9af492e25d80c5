"""The objectworld steps of ``irlhf demo``: the world, its soft-optimal expert and exact occupancy, sampled
demonstrations, the maps, and reward recovery by MaxEnt and deep MaxEnt IRL."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from irlhf.data import save_trajectories
from irlhf.envs.tabular import objectworld, sample_trajectories
from irlhf.eval import evaluate_reward
from irlhf.irl import deep_maxent, maxent
from irlhf.jobs.demo._shared import Demo
from irlhf.planning import occupancy_measure, soft_value_iteration, value_iteration
from irlhf.report.rewards import occupancy_maps, reward_maps


def build_world(demo: Demo) -> dict[str, Any]:
    c = demo.config
    mdp = objectworld(n=c.size, discount=c.discount, seed=c.seed)
    demo.mdp = mdp
    demo.run.save_array("true_reward.npy", mdp.true_reward)
    r = mdp.true_reward
    outer = np.asarray(mdp.meta["outer_colors"])
    counts = {f"objects_outer_{k}": int((outer == k).sum()) for k in range(mdp.meta["n_colors"])}
    metrics = {"n_states": mdp.n_states, "n_actions": mdp.n_actions, "n_features": mdp.n_features,
               "n_objects": len(outer), **counts,
               "cells_reward_pos": int((r > 0).sum()), "cells_reward_neg": int((r < 0).sum())}
    demo.report.section("Objectworld").text(
        f"A {c.size} x {c.size} objectworld (Levine, Popovic & Koltun 2011): each cell holds an object with "
        f"probability 0.05, with random outer and inner colours. The true reward is +5 closer than 3 cells to an "
        f"outer-colour-0 object and closer than 2 to an outer-colour-1 object, -10 closer than 3 to colour 0 "
        f"only, and 0 elsewhere (Euclidean distances). Actions (stay, up, down, left, right) succeed with probability 0.7; "
        f"the start state is uniform; discount {c.discount:g}."
    ).table(
        [["states", mdp.n_states], ["actions", mdp.n_actions], ["features (discrete)", mdp.n_features],
         ["objects", len(outer)], *[[f"objects with outer colour {k}", v] for k, v in enumerate(counts.values())],
         ["cells with reward +5", metrics["cells_reward_pos"]], ["cells with reward -10", metrics["cells_reward_neg"]]],
        header=["quantity", "value"],
    )
    demo.summary.append(f"world: {c.size}x{c.size} objectworld, {len(outer)} objects, "
                        f"{metrics['cells_reward_pos']} cells +5, {metrics['cells_reward_neg']} cells -10")
    return metrics


def solve_expert(demo: Demo) -> dict[str, Any]:
    c, mdp, r = demo.config, demo.mdp, demo.mdp.true_reward
    H = c.horizon
    _, _, pi = soft_value_iteration(mdp, r, horizon=H)
    demo.pi = pi
    demo.occupancy = occupancy_measure(mdp, pi, horizon=H)
    demo.run.save_array("occupancy.npy", demo.occupancy)
    V_opt, _, _ = value_iteration(mdp, r, horizon=H)
    uniform = np.full((mdp.n_states, mdp.n_actions), 1.0 / mdp.n_actions)
    metrics = {
        "expert_return": float(demo.occupancy @ r),  # state reward: E[sum_t discount^t r(s_t)] = <rho, r>
        "optimal_return": float(mdp.initial @ V_opt[0]),
        "random_return": float(occupancy_measure(mdp, uniform, horizon=H) @ r),
        "occupancy_mass": float(demo.occupancy.sum()),
    }
    demo.report.section("Expert").text(
        f"The expert is the soft-optimal (maximum-entropy) policy of the true reward over a horizon of {H} steps, "
        f"found by soft value iteration: Q_t = r + discount * P V_(t+1), V_t = log sum_a exp Q_t, "
        f"pi_t = exp(Q_t - V_t). Its exact discounted state occupancy rho(s) = sum_(t<{H}) discount^t Pr(s_t = s) "
        f"comes from the forward recursion, and its expected discounted return is <rho, r>. For scale: the "
        f"deterministic optimal policy (hard value iteration) and the uniformly random policy."
    ).table(
        [["soft-optimal expert", metrics["expert_return"]], ["optimal (hard VI)", metrics["optimal_return"]],
         ["uniform random", metrics["random_return"]]],
        header=[f"policy (horizon {H})", "expected discounted return"],
    )
    demo.summary.append(f"expert: expected return {metrics['expert_return']:.4f} "
                        f"(optimal {metrics['optimal_return']:.4f}, random {metrics['random_return']:.4f})")
    return metrics


def sample_demos(demo: Demo) -> dict[str, Any]:
    c, mdp = demo.config, demo.mdp
    trajs = sample_trajectories(mdp, demo.pi, n=c.n_demos, horizon=c.horizon, seed=c.seed)
    demo.trajs = trajs
    save_trajectories(demo.run.file("demos.npz"), trajs)
    # empirical counterpart of the occupancy: mean over demos of sum_t discount^t [s_t = s], t < H
    weights = mdp.discount ** np.arange(c.horizon)
    states = np.stack([t.obs[:-1] for t in trajs])  # (N, H)
    visitation = np.bincount(states.ravel(), weights=np.tile(weights, len(trajs)), minlength=mdp.n_states) / len(trajs)
    demo.visitation = visitation
    demo.run.save_array("visitation.npy", visitation)
    returns = np.stack([t.rews for t in trajs]) @ weights
    l1 = float(np.abs(visitation - demo.occupancy).sum())
    metrics = {
        "demo_return_mean": float(returns.mean()),
        "demo_return_std": float(returns.std()),
        "demo_return_sem": float(returns.std() / np.sqrt(len(returns))),
        "occupancy_l1_gap": l1,
        "occupancy_l1_gap_relative": l1 / float(demo.occupancy.sum()),
        "states_visited": int(np.count_nonzero(visitation)),
    }
    demo.report.section("Demonstrations").text(
        f"{c.n_demos} demonstrations of {c.horizon} actions each, sampled from the expert (seed {c.seed}) and "
        f"saved to demos.npz. Their empirical discounted visitation (1/N) sum_i sum_t discount^t [s_it = s] "
        f"estimates the exact occupancy; the L1 gap shrinks like 1/sqrt(N). This gap is the noise floor that "
        f"any IRL method matching visitation statistics works against."
    ).table(
        [["mean discounted return of the demos", metrics["demo_return_mean"]],
         ["std of the demos' returns", metrics["demo_return_std"]],
         ["standard error of the mean return", metrics["demo_return_sem"]],
         ["exact expected return", demo.metrics["expert_return"]],
         ["L1 gap, empirical vs exact occupancy", l1],
         ["L1 gap / occupancy mass", metrics["occupancy_l1_gap_relative"]],
         ["distinct states visited", f"{metrics['states_visited']} of {mdp.n_states}"]],
        header=["quantity", "value"],
    )
    demo.summary.append(f"demos: {c.n_demos} x {c.horizon} steps, mean return {metrics['demo_return_mean']:.4f} "
                        f"(std {metrics['demo_return_std']:.4f}, s.e. {metrics['demo_return_sem']:.4f}); "
                        f"occupancy L1 gap {l1:.4f} "
                        f"({metrics['occupancy_l1_gap_relative']:.1%} of its mass)")
    return metrics


def plot_maps(demo: Demo) -> dict[str, Any]:
    demo.run.save_figure("heatmaps.png", occupancy_maps(demo.mdp, demo.occupancy, demo.visitation,
                                                       demo.config.n_demos))
    demo.report.section("Maps").image(
        "heatmaps.png",
        caption="Left: true reward (blue +5, red -10) with objects marked by outer colour. Middle: the expert's "
        "exact discounted state occupancy. Right: empirical discounted visitation of the demonstrations "
        "(same colour scale, clipped at the exact map's maximum).",
    )
    return {}


# learners of the IRL step: (metric prefix, label, module name, which features)
IRL_LEARNERS = (
    ("maxent", "MaxEnt (linear), indicator features", "maxent", "indicators"),
    ("deep_maxent", "deep MaxEnt, indicator features", "deep_maxent", "indicators"),
    ("deep_maxent_distances", "deep MaxEnt, distance features", "deep_maxent", "distances"),
)


def recover_rewards(demo: Demo) -> dict[str, Any]:
    c, mdp = demo.config, demo.mdp
    deep = deep_maxent.Config(iterations=c.deep_iterations, seed=c.seed, progress=demo.progress)
    # the same layout and reward (same seed), with the 4 continuous nearest-object distances as features
    distances = objectworld(n=c.size, discount=c.discount, continuous=True, seed=c.seed).features
    metrics: dict[str, Any] = {}
    rows, panels = [], []
    for key, label, module_name, features in IRL_LEARNERS:
        module = {"maxent": maxent, "deep_maxent": deep_maxent}[module_name]
        config = deep if module_name == "deep_maxent" else module.Config(progress=demo.progress)
        t0 = time.perf_counter()
        result = module.train(mdp, demo.trajs, config, features=distances if features == "distances" else None)
        seconds = time.perf_counter() - t0
        demo.run.save_array(f"{key}_reward.npy", result.reward)
        m = evaluate_reward(mdp, result.reward, demo.trajs, c.horizon)
        metrics.update({f"{key}_evd": m["evd"], f"{key}_reward_correlation": m["reward_correlation"],
                        f"{key}_demo_log_likelihood": m["demo_log_likelihood"], f"{key}_seconds": seconds})
        metrics.setdefault("irl_evd_constant_reward", m["evd_constant_reward"])
        metrics.setdefault("irl_expert_demo_log_likelihood", m["expert_demo_log_likelihood"])
        rows.append([label, m["evd"], m["reward_correlation"], m["demo_log_likelihood"], round(seconds, 3)])
        panels.append((f"{label}\nEVD {m['evd']:.3g}", result.reward))
    rows.append(["constant reward (for scale)", metrics["irl_evd_constant_reward"], 0.0, "", ""])
    rows.append(["true reward (the expert)", 0.0, 1.0, metrics["irl_expert_demo_log_likelihood"], ""])
    demo.run.save_figure("irl_rewards.png", reward_maps(mdp, panels))
    n_features = mdp.n_features
    demo.report.section("Inverse RL").text(
        f"Recovering the reward from the {c.n_demos} demonstrations alone (the learners see the dynamics, the "
        f"features and the demos, not the reward). MaxEnt IRL (Ziebart et al. 2008) fits a reward linear in the "
        f"{n_features} indicator features 'distance to the nearest object of colour k < d' by L-BFGS on its "
        f"dual, whose gradient is the gap between the demos' and the learner's feature expectations. Deep MaxEnt "
        f"IRL (Wulfmeier et al. 2015) makes the reward a neural network (hidden layers {list(deep.hidden_sizes)}, "
        f"{deep.activation}) of the features and back-propagates the state-visitation gap rho_E - rho_pi through "
        f"it ({deep.iterations} {deep.optimizer} steps, weight decay {deep.weight_decay:g}, penalty "
        f"{deep.reward_l2:g} on the squared rewards); it is run on the same indicator features and on the 4 raw "
        f"continuous distances, of which the true reward is a non-linear function."
    ).text(
        "EVD (expected value difference): the true-reward value of the optimal policy minus that of the policy "
        f"optimal for the learned reward, over {c.horizon} steps from a uniform start; 0 is perfect. Log-likelihood: "
        "mean over demos of sum_t log pi(a_t | s_t) under the soft-optimal policy of each reward."
    ).table(rows, header=["reward", "EVD", "correlation with true reward", "demo log-likelihood", "seconds"]).image(
        "irl_rewards.png",
        caption="Left: the true reward. Then each learned reward minus its mean (rewards are identified only "
        "up to shift and scale), with its EVD. Objects marked by outer colour.",
    )
    evds = "; ".join(f"{label} {metrics[f'{key}_evd']:.3f}" for key, label, _, _ in IRL_LEARNERS)
    demo.summary.append(f"irl: EVD {evds}; constant reward {metrics['irl_evd_constant_reward']:.3f} (0 is optimal)")
    return metrics
