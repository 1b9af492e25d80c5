"""``irlhf demo``: the expert side of Levine et al.'s objectworld, end to end, on built-in defaults, then one
short section per family of the library (imitation, adversarial and inverse soft-Q IRL, preferences, DPO).

Pipeline (step functions in ``STEPS``, run in order under one progress bar; artifacts in brackets):

  world      objectworld(n=size, seed=seed), discount 0.9 [true_reward.npy]
  expert     soft value iteration on the true reward, horizon H; exact state occupancy and expected discounted
             return, next to the optimal and random policies [occupancy.npy]
  demos      n_demos expert trajectories of H actions; empirical discounted visitation and its L1 gap to the
             exact occupancy [demos.npz, visitation.npy]
  figure     true reward with objects, exact occupancy, empirical visitation [heatmaps.png]
  irl        MaxEnt IRL (linear in the indicator features) and deep MaxEnt IRL (on the same features, and on the
             4 continuous distances) recover the reward; EVD, reward correlation, demo log-likelihood
             (``irlhf.eval.evaluate_reward``) [<learner>_reward.npy, irl_rewards.png]
  imitation  CartPole-v1, scripted expert: BC from imitation_demos episodes vs DAgger with the same budget
  gail       CartPole-v1 GAIL from GAIL_DEMOS expert episodes, gail_steps generator steps [cartpole_demos.npz,
             gail_policy.zip, gail_reward.safetensors, gail_training.png]
  iq_learn   offline IQ-Learn from the same demos, iq_updates gradient steps [iq_learn_policy.safetensors,
             iq_learn_training.png]
  preferences  Pendulum-v1 reward from preference_labels oracle-labelled segment pairs, no RL (Christiano et
             al. 2017; ``irlhf.eval.preferences``); held-out accuracy and return correlation [preferences.png,
             preference_reward.safetensors]
  alignment  DPO on a tiny GPT-2 pretrained on the synthetic review language, dpo_prompts prompts x 4 samples
             labelled by the true sentiment; held-out reward and KL before and after [dpo_curves.png,
             dpo_pairs.jsonl, dpo_model/]

The CartPole policies are scored on held-out resets next to the expert and a random policy
(``irlhf.eval.returns.score_policy``). Every run directory ``<out>/demo-<timestamp>/`` also holds config.json,
metrics.jsonl (one line per step with its metrics and seconds), summary.txt (also printed), report.html and
run.json (``irlhf.core.rundir``: the step under way, then finished, interrupted or failed). A run stopped by
Ctrl-C or an error keeps what its finished steps made, with a report and summary that say where it stopped.

Progress: one bar over the steps (count and elapsed time, no ETA: the steps' costs differ by orders of
magnitude), and inside the long steps (irl, gail, iq_learn, alignment) the learners' own bars, whose totals are
the iterations, environment steps or optimiser steps they really do.

Extending: write ``def step(demo: Demo) -> dict`` that reads what earlier steps left on ``demo``, saves
artifacts with ``demo.run``, adds a section to ``demo.report`` and lines to ``demo.summary``, and returns its
metrics (logged to metrics.jsonl); append it to ``STEPS``; new options go in ``DemoConfig`` and ``irlhf.cli``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import os
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
import torch
import torch._dynamo  # noqa: F401  torch.optim imports it on first use (~2 s once): keep it out of the step timings
from tqdm import tqdm

from irlhf import __version__
from irlhf.core.config import BaseConfig, NonNegativeInt, PositiveInt, Range, Seed
from irlhf.core.errors import IrlhfError
from irlhf.core.rundir import FINISHED, RunDir, stop_message
from irlhf.data import save_trajectories
from irlhf.data.types import Trajectory
from irlhf.envs.gym import collect_demos, evaluate, normalized_score, random_return
from irlhf.envs.tabular import TabularMDP, objectworld, sample_trajectories
from irlhf.eval import evaluate_reward
from irlhf.eval.preferences import fit_reward_to_oracle
from irlhf.eval.returns import score_policy
from irlhf.imitation import bc, dagger
from irlhf.irl import deep_maxent, gail, iq_learn, maxent
from irlhf.jobs._common import MAX_WORLD_SIZE, print_summary
from irlhf.llm import dpo
from irlhf.llm.loop import save_checkpoint
from irlhf.llm.tasks import frontier, sentiment
from irlhf.nn.policies import save_policy
from irlhf.planning import occupancy_measure, soft_value_iteration, value_iteration
from irlhf.preference import trajectory
from irlhf.report import Report
from irlhf.report.artifacts import save_tensors, state_dict_tensors
from irlhf.report.curves import dpo_curves, irl_curves
from irlhf.report.rewards import learned_vs_true, occupancy_maps, reward_maps
from irlhf.rl.experts import make_expert
from irlhf.rl.sb3 import one_thread

JOB = "demo"
MAX_SIZE = MAX_WORLD_SIZE


@dataclasses.dataclass(frozen=True)
class DemoConfig(BaseConfig):
    """Options of ``irlhf demo`` (the --help of ``irlhf demo`` says what each does): the objectworld's size
    (size * size states), horizon H (expert horizon and demo length), n_demos, discount and seed (world layout and
    every sample), then one budget per later step: deep MaxEnt iterations, imitation_demos (BC episodes = DAgger
    rounds), gail_steps, iq_updates, preference_labels, dpo_prompts and lm_pretrain_steps."""

    size: Annotated[int, Range(2, MAX_SIZE)] = 32
    horizon: PositiveInt = 8
    n_demos: PositiveInt = 64
    discount: Annotated[float, Range(0, 1, low_open=True)] = 0.9
    seed: Seed = 0
    deep_iterations: NonNegativeInt = 200
    imitation_demos: PositiveInt = 2
    gail_steps: PositiveInt = 20_480
    iq_updates: PositiveInt = 2000
    preference_labels: PositiveInt = 150
    dpo_prompts: PositiveInt = 64
    lm_pretrain_steps: PositiveInt = 300

    def command(self) -> str:
        """The command line that reproduces this configuration."""
        return (f"irlhf demo --size {self.size} --horizon {self.horizon} --n-demos {self.n_demos} "
                f"--discount {self.discount:g} --deep-iters {self.deep_iterations} "
                f"--imitation-demos {self.imitation_demos} --gail-steps {self.gail_steps} "
                f"--iq-updates {self.iq_updates} --preference-labels {self.preference_labels} "
                f"--dpo-prompts {self.dpo_prompts} --lm-pretrain-steps {self.lm_pretrain_steps} --seed {self.seed}")


@dataclasses.dataclass
class Demo:
    """What the steps share: the inputs, the run directory and report, and what earlier steps made."""

    config: DemoConfig
    run: RunDir
    report: Report
    progress: bool = False  # the long steps show their learners' progress bars
    summary: list[str] = dataclasses.field(default_factory=list)  # lines of summary.txt
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)  # every step's metrics, flat
    timings: dict[str, float] = dataclasses.field(default_factory=dict)  # seconds per step
    mdp: TabularMDP | None = None
    pi: np.ndarray | None = None  # expert policy (H, S, A)
    occupancy: np.ndarray | None = None  # exact discounted state occupancy (S,)
    trajs: list[Trajectory] | None = None
    visitation: np.ndarray | None = None  # empirical discounted state visitation (S,)
    cartpole_demos: list[Trajectory] | None = None  # the GAIL / IQ-Learn steps' expert episodes


# ----------------------------------------------------------------------------- steps


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


IMITATION_ENV = "CartPole-v1"
IMITATION_EVAL_EPISODES = 10
IMITATION_EVAL_SEED_OFFSET = 10_000  # evaluation resets never coincide with the training episodes' resets


def compare_imitation(demo: Demo) -> dict[str, Any]:
    c, env_id = demo.config, IMITATION_ENV
    n = c.imitation_demos
    eval_seed = c.seed + IMITATION_EVAL_SEED_OFFSET
    expert = make_expert(env_id, seed=c.seed)
    bc_config = dataclasses.replace(dagger.DEFAULT_BC, seed=c.seed)  # the same learner and fit for both
    # BC: n expert episodes (resets seed, seed + 1, ...), cloned once
    t0 = time.perf_counter()
    demos = collect_demos(env_id, expert, n_episodes=n, seed=c.seed)
    bc_fit = bc.train(env_id, demos, bc_config)
    bc_seconds = time.perf_counter() - t0
    # DAgger: n rounds of one episode (resets seed, seed + 1, ...); round 0 executes the expert only (plain
    # BC data, the same first episode as BC's), later rounds only the learner (beta_n = 0 for n >= 1)
    t0 = time.perf_counter()
    dagger_config = dagger.Config(rounds=n, episodes_per_round=1, schedule="linear", beta_rounds=1,
                                  bc=bc_config, seed=c.seed)
    dagger_fit = dagger.train(env_id, expert, dagger_config)
    dagger_seconds = time.perf_counter() - t0

    expert_mean, expert_std = evaluate(env_id, expert, n_episodes=IMITATION_EVAL_EPISODES, seed=eval_seed)
    random_mean = random_return(env_id, n_episodes=IMITATION_EVAL_EPISODES, seed=eval_seed)
    bc_mean, bc_std = evaluate(env_id, bc_fit.policy, n_episodes=IMITATION_EVAL_EPISODES, seed=eval_seed)
    dagger_mean, dagger_std = evaluate(env_id, dagger_fit.policy, n_episodes=IMITATION_EVAL_EPISODES, seed=eval_seed)

    def score(mean: float) -> float:
        return normalized_score(env_id, mean, expert_mean, random_mean)

    metrics = {
        "imitation_expert_episodes": n,
        "imitation_expert_return": expert_mean,
        "imitation_random_return": random_mean,
        "bc_return": bc_mean, "bc_return_std": bc_std, "bc_score": score(bc_mean),
        "bc_samples": int(sum(len(t) for t in demos)), "bc_seconds": bc_seconds,
        "dagger_return": dagger_mean, "dagger_return_std": dagger_std, "dagger_score": score(dagger_mean),
        "dagger_samples": len(dagger_fit.dataset), "dagger_seconds": dagger_seconds,
    }
    demo.report.section("Imitation: BC vs DAgger").text(
        f"Imitation learning on {env_id} with a scripted expert, from the same budget of {n} expert episode(s). "
        "Behaviour cloning (BC) trains a policy by supervised learning on the expert's (state, action) pairs, "
        "i.e. on the expert's own state distribution only: once the learner makes a mistake it drifts into "
        "states the expert never visited, where it was never trained, and errors compound (O(eps T^2)). DAgger "
        "(Ross, Gordon & Bagnell 2011) instead rolls out the learner itself and asks the expert to label the "
        "states the learner actually visits, aggregates those labels with everything collected so far, and "
        "retrains; the training distribution then matches the learner's test distribution (O(eps T))."
    ).text(
        f"BC: {n} expert episode(s) ({metrics['bc_samples']} samples). DAgger: {n} round(s) of one episode each; "
        f"round 0 executes the expert (plain BC data), later rounds execute the learner only and the expert just "
        f"labels ({metrics['dagger_samples']} samples in the aggregate). Both use the same BC learner "
        f"(hidden layers {list(bc_config.hidden_sizes)}, at most {bc_config.epochs} epochs, batch "
        f"{bc_config.batch_size}, seed {c.seed}). Returns are undiscounted, mean (std) over "
        f"{IMITATION_EVAL_EPISODES} evaluation episodes reset with seeds {eval_seed}...; normalised score = "
        "(return - random) / (expert - random): 1 = expert, 0 = random."
    ).table(
        [["expert (scripted)", f"{expert_mean:.1f} ({expert_std:.1f})", 1.0, "", ""],
         [f"BC ({n} expert episodes)", f"{bc_mean:.1f} ({bc_std:.1f})", metrics["bc_score"],
          metrics["bc_samples"], round(bc_seconds, 3)],
         [f"DAgger ({n} rounds x 1 episode)", f"{dagger_mean:.1f} ({dagger_std:.1f})", metrics["dagger_score"],
          metrics["dagger_samples"], round(dagger_seconds, 3)],
         ["uniform random", f"{random_mean:.1f}", 0.0, "", ""]],
        header=["policy", "return, mean (std)", "normalised score", "training samples", "seconds"],
    )
    demo.summary.append(f"imitation: {env_id}, {n} expert episode(s): BC return {bc_mean:.1f} "
                        f"(score {metrics['bc_score']:.2f}), DAgger {dagger_mean:.1f} "
                        f"(score {metrics['dagger_score']:.2f}); expert {expert_mean:.1f}, random {random_mean:.1f}")
    return metrics


GAIL_DEMOS = 4  # scripted-expert CartPole episodes of the GAIL and IQ-Learn steps


def _cartpole_demos(demo: Demo) -> list[Trajectory]:
    """GAIL_DEMOS scripted-expert episodes (resets seed, seed + 1, ...), collected once and saved."""
    if demo.cartpole_demos is None:
        demo.cartpole_demos = collect_demos(IMITATION_ENV, make_expert(IMITATION_ENV, seed=demo.config.seed),
                                            n_episodes=GAIL_DEMOS, seed=demo.config.seed)
        save_trajectories(demo.run.file("cartpole_demos.npz"), demo.cartpole_demos)
    return demo.cartpole_demos


def _cartpole_scores(demo: Demo, policy: Any, prefix: str) -> dict[str, Any]:
    """The policy's return (mean, std) and normalised score next to the expert's and a random policy's, on the
    imitation step's held-out resets."""
    m = score_policy(IMITATION_ENV, policy, make_expert(IMITATION_ENV, seed=demo.config.seed), IMITATION_EVAL_EPISODES,
                     demo.config.seed + IMITATION_EVAL_SEED_OFFSET)
    return {f"{prefix}_return": m["eval_return_mean"], f"{prefix}_return_std": m["eval_return_std"],
            f"{prefix}_score": m["normalized_score"], f"{prefix}_expert_return": m["expert_return_mean"],
            f"{prefix}_random_return": m["random_return_mean"]}


def _save_figure(demo: Demo, name: str, figure: Any) -> str | None:
    """Save ``figure`` (None: nothing to draw) in the run directory; its file name or None."""
    if figure is None:
        return None
    demo.run.save_figure(name, figure)
    return name


def _cartpole_report(demo: Demo, m: dict[str, Any], prefix: str, title: str, label: str, text: str,
                     seconds: float, png: str | None, caption: str, head: str) -> None:
    """The report section (text, returns next to the expert and random, curves) and summary line of a CartPole
    learner's step."""
    section = demo.report.section(title).text(text).table(
        [[label, f"{m[prefix + '_return']:.1f} ({m[prefix + '_return_std']:.1f})", round(m[prefix + "_score"], 3)],
         ["expert (scripted)", f"{m[prefix + '_expert_return']:.1f}", 1.0],
         ["uniform random", f"{m[prefix + '_random_return']:.1f}", 0.0],
         ["training seconds", round(seconds, 3), ""]], header=["policy", "return, mean (std)", "normalised score"])
    if png:
        section.image(png, caption=caption)
    demo.summary.append(f"{head}: return {m[prefix + '_return']:.1f} (score {m[prefix + '_score']:.2f}); expert "
                        f"{m[prefix + '_expert_return']:.1f}, random {m[prefix + '_random_return']:.1f}")


def adversarial_irl(demo: Demo) -> dict[str, Any]:
    """GAIL on CartPole-v1 from GAIL_DEMOS expert episodes; return vs expert vs random."""
    c, env_id = demo.config, IMITATION_ENV
    demos = _cartpole_demos(demo)
    config = gail.Config(total_timesteps=c.gail_steps, seed=c.seed, progress=demo.progress)
    t0 = time.perf_counter()
    with one_thread():
        result = gail.train(env_id, demos, config)
    seconds = time.perf_counter() - t0
    result.model.save(str(demo.run.file("gail_policy.zip")))
    save_tensors(demo.run.file("gail_reward.safetensors"),
                 {**state_dict_tensors(result.discriminator), **state_dict_tensors(result.features, "features.")})
    png = _save_figure(demo, "gail_training.png", irl_curves("gail", result.history))
    metrics = _cartpole_scores(demo, result.policy, "gail")
    last = result.history[-1] if result.history else {}
    metrics.update(gail_demos=len(demos), gail_timesteps=c.gail_steps, gail_rounds=len(result.history),
                   gail_disc_loss=last.get("disc_loss"), gail_seconds=seconds)
    _cartpole_report(demo, metrics, "gail", "Adversarial IRL: GAIL", f"GAIL ({c.gail_steps} steps)",
        f"GAIL (Ho & Ermon 2016) on {env_id} from {len(demos)} scripted-expert episodes "
        f"({sum(len(t) for t in demos)} transitions, cartpole_demos.npz): a discriminator D(s, a) learns to tell "
        "expert state-actions from the generator's, and a PPO generator is trained by RL on the reward "
        f"-log(1 - D) for {c.gail_steps} environment steps ({len(result.history)} discriminator rounds); episode "
        "ends go through an absorbing state so that the learned reward does not favour short or long episodes "
        "(irlhf.irl.gail, defaults). Unlike BC, the learner acts in the environment (but never sees its reward). "
        f"Returns of the deterministic policy over {IMITATION_EVAL_EPISODES} held-out resets, as in the "
        "imitation step; normalised score = (return - random) / (expert - random).", seconds, png,
        "GAIL per discriminator round: discriminator loss, accuracy on expert and policy data, and the generator's "
        "mean episode return (true reward).", f"gail: {env_id}, {len(demos)} expert episodes, {c.gail_steps} steps")
    return metrics


def inverse_soft_q(demo: Demo) -> dict[str, Any]:
    """Offline IQ-Learn on CartPole-v1 from the GAIL step's expert episodes; return vs expert vs random."""
    c, env_id = demo.config, IMITATION_ENV
    demos = _cartpole_demos(demo)
    config = iq_learn.Config(updates=c.iq_updates, seed=c.seed, progress=demo.progress)
    t0 = time.perf_counter()
    with one_thread():
        result = iq_learn.train(env_id, demos, config)
    seconds = time.perf_counter() - t0
    save_policy(demo.run.file("iq_learn_policy.safetensors"), result.policy)
    png = _save_figure(demo, "iq_learn_training.png", irl_curves("iq-learn", result.history))
    metrics = _cartpole_scores(demo, result.policy, "iq_learn")
    last = result.history[-1] if result.history else {}
    metrics.update(iq_learn_demos=len(demos), iq_learn_updates=c.iq_updates, iq_learn_loss=last.get("loss"),
                   iq_learn_expert_accuracy=last.get("expert_accuracy"), iq_learn_seconds=seconds)
    _cartpole_report(demo, metrics, "iq_learn", "Inverse soft-Q: IQ-Learn", f"IQ-Learn ({c.iq_updates} updates)",
        f"Offline IQ-Learn (Garg et al. 2021) on the same {len(demos)} expert episodes: a single network Q(s, a) "
        "is both the policy (softmax of Q / alpha) and the reward r = Q(s, a) - gamma V(s'); the inverse soft-Q "
        "objective with the chi^2 divergence is minimised on expert transitions only "
        f"({c.iq_updates} Adam steps, batch {config.batch_size}, alpha {config.alpha:g}; no environment steps, "
        "no adversary, no RL inner loop). Evaluation as for GAIL.", seconds, png,
        "IQ-Learn per logged update: loss and the greedy policy's accuracy on the expert's actions.",
        f"iq_learn: {env_id}, offline, {len(demos)} expert episodes, {c.iq_updates} updates")
    return metrics


PREFERENCE_ENV = "Pendulum-v1"  # dense, state-dependent reward (CartPole's is 1 per live step: see the step)
PREFERENCE_NOISE = (0.0, 0.3, 0.6, 1.0)  # behaviour policies: the expert's action replaced by a random one w.p. eps
PREFERENCE_STEPS = 400  # steps rolled out per behaviour policy (Pendulum: 2 episodes of 200), for each split
PREFERENCE_SEGMENT = 25  # steps per segment
PREFERENCE_HELDOUT = 300  # held-out segment pairs
PREFERENCE_EVAL_SEED_OFFSET = 10_000  # held-out episodes reset with other seeds than the training ones
PREFERENCE_PLOT_STEPS = 2000  # held-out steps drawn in the per-step panel (the correlation uses them all)


def learn_from_preferences(demo: Demo) -> dict[str, Any]:
    """A Pendulum reward from oracle-labelled segment pairs alone (``irlhf.eval.preferences``), tested held out."""
    c, env_id, length, n, n_test = (demo.config, PREFERENCE_ENV, PREFERENCE_SEGMENT, demo.config.preference_labels,
                                    PREFERENCE_HELDOUT)
    rng = np.random.default_rng(c.seed)
    result = fit_reward_to_oracle(env_id, make_expert(env_id, seed=c.seed), n, seed=c.seed, rng=rng,
                                  noise=PREFERENCE_NOISE, steps=PREFERENCE_STEPS, segment_length=length,
                                  n_heldout=n_test, heldout_seed_offset=PREFERENCE_EVAL_SEED_OFFSET)
    config, m = result.config, result.metrics
    trajectory.save_reward_model(demo.run.file("preference_reward.safetensors"), result.model)
    shown = rng.permutation(len(result.true_rewards))[:PREFERENCE_PLOT_STEPS]
    demo.run.save_figure("preferences.png", learned_vs_true(result.true_returns, result.learned_returns,
                                                            result.true_rewards, result.learned_rewards, shown))
    metrics = {"preference_env": env_id, "preference_labels": n, "preference_heldout_pairs": n_test}
    metrics.update({f"preference_{k}": m[k] for k in (
        "train_ties", "train_loss", "train_accuracy", "heldout_loss", "heldout_accuracy", "untrained_heldout_accuracy",
        "return_correlation", "reward_correlation", "fit_seconds")})
    noise = ", ".join(f"{eps:g}" for eps in PREFERENCE_NOISE)
    demo.report.section("Reward from preferences").text(
        f"Learning a reward from pairwise preferences alone (Christiano et al. 2017), without RL: {env_id} "
        f"episodes ({PREFERENCE_STEPS} steps from each of {len(PREFERENCE_NOISE)} behaviour policies, the scripted "
        f"expert whose action is replaced by a uniformly random one with probability {noise}) are cut into "
        f"{length}-step segments; a synthetic oracle compares {n} random pairs and prefers the segment with the "
        f"higher true return. An ensemble of {config.ensemble_size} reward networks r(s, a) (hidden layers "
        f"{list(config.reward_hidden_sizes)}, each on its own bootstrap resample, {config.reward_epochs} epochs) "
        "is fitted so that P(a > b) = sigma(R(a) - R(b)) on segment sums matches the labels (Bradley-Terry "
        "cross-entropy). It is then tested on "
        f"{n_test} pairs cut from other episodes (other reset seeds): accuracy against the oracle, and the "
        "correlation of learned with true returns. Pendulum rather than CartPole: CartPole pays 1 per step "
        "until the pole falls, so a segment's return only counts its live steps and any positive constant "
        "reward would rank every pair correctly."
    ).table(
        [["held-out pairwise accuracy", m["heldout_accuracy"]],
         ["held-out accuracy of the untrained ensemble (for scale)", m["untrained_heldout_accuracy"]],
         ["training accuracy", m["train_accuracy"]],
         ["held-out Bradley-Terry loss (training)", f"{m['heldout_loss']:.4f} ({m['train_loss']:.4f})"],
         ["correlation, learned vs true segment return (held-out)", m["return_correlation"]],
         ["correlation, learned vs true per-step reward (held-out)", m["reward_correlation"]],
         ["labels (ties)", f"{n} ({metrics['preference_train_ties']:.0%})"],
         ["fit seconds", round(m["fit_seconds"], 3)]],
        header=["quantity", "value"],
    ).image(
        "preferences.png",
        caption="Held-out data. Left: each segment's learned return (sum of the ensemble-mean reward) against "
        "its true return. Right: the learned per-step reward against the true one (a random sample of steps). Rewards "
        "from preferences are identified only up to shift and scale: look at the ordering, not the values.",
    )
    demo.summary.append(f"preferences: {env_id}, {n} oracle labels: held-out accuracy {m['heldout_accuracy']:.3f} "
                        f"(untrained {m['untrained_heldout_accuracy']:.3f}), return correlation "
                        f"{m['return_correlation']:.3f}, per-step reward correlation {m['reward_correlation']:.3f}")
    return metrics



DPO_EVAL_PROMPTS = 32  # held-out prompts of the alignment step, 4 samples each
DPO_SAMPLES = 4  # completions per prompt: all 6 pairs labelled


def align_language_model(demo: Demo) -> dict[str, Any]:
    """DPO on the synthetic sentiment task: pretrain, sample, label pairs by the true reward, DPO, evaluate."""
    c, seed = demo.config, demo.config.seed
    torch.manual_seed(seed)
    tokenizer = sentiment.build_tokenizer()
    model = sentiment.make_model(tokenizer, seed=seed)
    pre = sentiment.pretrain(model, tokenizer, sentiment.make_corpus(3000, seed=10_000 + seed),
                             sentiment.PretrainConfig(steps=c.lm_pretrain_steps, seed=seed, progress=demo.progress))
    prompts = sentiment.make_prompts(c.dpo_prompts, seed=30_000 + seed)
    held_out = sentiment.make_prompts(DPO_EVAL_PROMPTS, seed=40_000 + seed)
    pairs = frontier.label_pairs(prompts, sentiment.generate(model, tokenizer, prompts, DPO_SAMPLES, seed=seed))
    before = frontier.evaluate(model, model, tokenizer, held_out, DPO_SAMPLES, 24, seed=50_000 + seed)
    config = dpo.Config(beta=0.1, learning_rate=3e-4, epochs=3, batch_size=64, max_length=64, seed=seed,
                        log_every=1, progress=demo.progress)
    result = dpo.train(copy.deepcopy(model), tokenizer, pairs, config, ref_model=model)
    after = frontier.evaluate(result.model, model, tokenizer, held_out, DPO_SAMPLES, 24, seed=50_000 + seed)
    save_checkpoint(result.model, tokenizer, demo.run.file("dpo_model"))
    pairs.save(demo.run.file("dpo_pairs.jsonl"))

    rows = [r for r in result.history if "loss" in r and "step" in r]
    demo.run.save_figure("dpo_curves.png", dpo_curves(result.history))

    metrics = {"dpo_pretrain_loss": pre["loss"], "dpo_pairs": len(pairs), "dpo_steps": len(rows),
               "dpo_final_loss": rows[-1]["loss"], "dpo_final_accuracy": rows[-1]["rewards/accuracies"],
               "dpo_reward_before": before["reward"], "dpo_reward_after": after["reward"],
               "dpo_kl_after": after["kl"], "dpo_reward_sem": after["reward_sem"]}
    demo.report.section("Language-model alignment: DPO").text(
        f"A tiny GPT-2 ({sum(p.numel() for p in model.parameters()):,} parameters) pretrained for "
        f"{c.lm_pretrain_steps} steps on a generated review language (final loss {pre['loss']:.3f}) is the "
        f"reference pi_ref. It writes {DPO_SAMPLES} completions for each of {c.dpo_prompts} review openings; the "
        f"ground-truth lexicon sentiment score ranks them, giving {len(pairs)} (chosen, rejected) pairs (ties "
        "dropped). DPO (Rafailov et al. 2023; beta 0.1, 3 epochs) trains the policy on those pairs alone, with no "
        f"reward model and no sampling during training. Evaluation: {DPO_SAMPLES} samples for each of "
        f"{DPO_EVAL_PROMPTS} held-out openings; KL(pi || pi_ref) in nats per completion.").table(
        [["mean ground-truth reward, pi_ref", f"{before['reward']:+.3f} +- {before['reward_sem']:.3f}"],
         ["mean ground-truth reward, DPO policy", f"{after['reward']:+.3f} +- {after['reward_sem']:.3f}"],
         ["KL(pi || pi_ref) of the DPO policy", f"{after['kl']:.2f} +- {after['kl_sem']:.2f}"],
         ["final training loss / implicit-reward accuracy", f"{rows[-1]['loss']:.3f} / "
                                                            f"{rows[-1]['rewards/accuracies']:.3f}"]],
        header=["quantity", "value"]).image("dpo_curves.png", caption="DPO training curves (per step)")
    demo.summary.append(f"alignment: DPO on {len(pairs)} pairs: held-out sentiment {before['reward']:+.3f} -> "
                        f"{after['reward']:+.3f} at KL {after['kl']:.2f} nats")
    return metrics


# Steps in order; append (name, function) to add a section to the same run, metrics and report.
STEPS: list[tuple[str, Callable[[Demo], dict[str, Any] | None]]] = [
    ("world", build_world), ("expert", solve_expert), ("demos", sample_demos), ("figure", plot_maps),
    ("irl", recover_rewards), ("imitation", compare_imitation), ("gail", adversarial_irl),
    ("iq_learn", inverse_soft_q), ("preferences", learn_from_preferences), ("alignment", align_language_model),
]


# ----------------------------------------------------------------------------- driver


STEP_BAR = "{desc}: {n_fmt}/{total_fmt} {unit}s [{elapsed}{postfix}]"  # no ETA: the steps' costs differ 1000x


def run_demo(config: DemoConfig, out: str | os.PathLike[str] = "runs", *, progress: bool = True) -> Demo:
    """Run every step of ``STEPS`` in a fresh run directory under ``out``; returns the filled ``Demo``.

    The run's run.json names the step under way; on Ctrl-C or an error the run is marked interrupted or failed,
    its report and summary of the finished steps are written (saying where it stopped), and the exception
    propagates."""
    run = RunDir.create(JOB, out)
    run.write_config(config)
    demo = Demo(config=config, run=run, report=Report(f"irlhf demo: objectworld {config.size}x{config.size}"),
                progress=progress)
    demo.report.section("Run").text(
        f"irlhf {__version__}, run directory {run.path.name}. Reproduce with the command below."
    ).code(config.command()).table(sorted(config.to_dict().items()), header=["option", "value"])
    demo.summary.append(f"irlhf demo -> {run.path}")
    try:
        _run_steps(demo)
    except BaseException as exc:
        _keep_unfinished(demo, exc)
        raise
    demo.report.write(run)
    run.write_text("summary.txt", "\n".join(demo.summary) + "\n")
    run.close(FINISHED)
    return demo


def _run_steps(demo: Demo) -> None:
    """Each step of ``STEPS`` under the step bar, logging its metrics and seconds; then the timing section."""
    start = time.perf_counter()
    with tqdm(STEPS, desc=JOB, unit="step", disable=not demo.progress, file=sys.stderr, leave=False,
              bar_format=STEP_BAR) as bar:  # closed (cleared) also on Ctrl-C, before the CLI says where it stopped
        for name, step in bar:
            bar.set_postfix_str(name)
            demo.run.begin_step(name)
            t0 = time.perf_counter()
            metrics = step(demo) or {}
            seconds = time.perf_counter() - t0
            demo.metrics.update(metrics)
            demo.timings[name] = seconds
            demo.run.log(step=name, seconds=seconds, **metrics)
    total = time.perf_counter() - start
    demo.run.log(step="total", seconds=total)
    demo.report.section("Timing").table(
        [[name, round(s, 3)] for name, s in demo.timings.items()] + [["total", round(total, 3)]],
        header=["step", "seconds"],
    )
    demo.summary.append(f"time: {total:.2f} s ({', '.join(f'{k} {v:.2f}' for k, v in demo.timings.items())})")
    demo.summary.append(f"report: {demo.run.file('report.html')}")


def _keep_unfinished(demo: Demo, exc: BaseException) -> None:
    """Mark the run interrupted or failed, then write the report and summary of the steps that finished."""
    demo.run.close_after(exc)
    demo.summary.append(f"stopped: {stop_message(demo.run)}")
    with contextlib.suppress(IrlhfError, OSError):  # best effort: the stop itself must propagate, not this
        demo.report.write(demo.run)
        demo.run.write_text("summary.txt", "\n".join(demo.summary) + "\n")


def run(args: argparse.Namespace) -> int:
    # validate everything before creating the run directory: bad options leave nothing behind
    config = DemoConfig(size=args.size, horizon=args.horizon, n_demos=args.n_demos, discount=args.discount,
                        seed=args.seed, deep_iterations=args.deep_iters, imitation_demos=args.imitation_demos,
                        gail_steps=args.gail_steps, iq_updates=args.iq_updates,
                        preference_labels=args.preference_labels, dpo_prompts=args.dpo_prompts,
                        lm_pretrain_steps=args.lm_pretrain_steps)
    return print_summary(run_demo(config, args.out, progress=not args.no_progress).summary)
