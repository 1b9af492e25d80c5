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
  routes     Ziebart's route-preference MaxEnt IRL on a generated city: a synthetic commuter's routes, held-out
             route prediction against the shortest-time route [routes_map.png]
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
  lm_irl     inverse RL for that LM from its best sample per prompt: IQ-Learn on tokens and sequence MaxEnt IRL;
             held-out true reward, KL, and each learned reward's Spearman correlation with the true one
             [iq_learn_lm/, maxent_policy/, maxent_reward_model/]

The CartPole policies are scored on held-out resets next to the expert and a random policy
(``irlhf.eval.returns.score_policy``). Every run directory ``<out>/demo-<timestamp>/`` also holds config.json,
metrics.jsonl (one line per step with its metrics and seconds), summary.txt (also printed), report.html and
run.json (``irlhf.core.rundir``: the step under way, then finished, interrupted or failed). A run stopped by
Ctrl-C or an error keeps what its finished steps made, with a report and summary that say where it stopped.

Progress: one bar over the steps (count and elapsed time, no ETA: the steps' costs differ by orders of
magnitude), and inside the long steps (irl, gail, iq_learn, alignment, lm_irl) the learners' own bars, whose totals are
the iterations, environment steps or optimiser steps they really do.

Extending: write ``def step(demo: Demo) -> dict`` that reads what earlier steps left on ``demo``, saves
artifacts with ``demo.run``, adds a section to ``demo.report`` and lines to ``demo.summary``, and returns its
metrics (logged to metrics.jsonl); append it to ``STEPS``; new options go in ``DemoConfig`` and ``irlhf.cli``.

Layout: ``_shared`` (``DemoConfig``, ``Demo``), the steps by theme in ``tabular`` (world to IRL), ``roads`` (route
preferences), ``control`` (CartPole imitation, GAIL, IQ-Learn), ``preferences`` and ``alignment`` (DPO, inverse RL for
the LM); this module holds ``STEPS`` and the driver, and re-exports the step modules' public names.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import torch._dynamo  # noqa: F401  torch.optim imports it on first use (~2 s once): keep it out of the step timings
from tqdm import tqdm

from irlhf import __version__
from irlhf.core.errors import IrlhfError
from irlhf.core.rundir import FINISHED, RunDir, stop_message
from irlhf.jobs._common import print_summary
from irlhf.jobs.demo._shared import JOB, MAX_SIZE, Demo, DemoConfig
from irlhf.jobs.demo.alignment import DPO_EVAL_PROMPTS, DPO_SAMPLES, align_language_model, imitate_language_model
from irlhf.jobs.demo.control import (GAIL_DEMOS, IMITATION_ENV, IMITATION_EVAL_EPISODES, IMITATION_EVAL_SEED_OFFSET,
                                     adversarial_irl, compare_imitation, inverse_soft_q)
from irlhf.jobs.demo.preferences import (PREFERENCE_ENV, PREFERENCE_EVAL_SEED_OFFSET, PREFERENCE_HELDOUT,
                                         PREFERENCE_NOISE, PREFERENCE_PLOT_STEPS, PREFERENCE_SEGMENT,
                                         PREFERENCE_STEPS, learn_from_preferences)
from irlhf.jobs.demo.roads import ROUTE_CITY, ROUTE_TEST, ROUTE_TRAIN, predict_routes
from irlhf.jobs.demo.tabular import (IRL_LEARNERS, build_world, plot_maps, recover_rewards, sample_demos,
                                     solve_expert)
from irlhf.report import Report

__all__ = [
    "DPO_EVAL_PROMPTS", "DPO_SAMPLES", "GAIL_DEMOS", "IMITATION_ENV", "IMITATION_EVAL_EPISODES",
    "IMITATION_EVAL_SEED_OFFSET", "IRL_LEARNERS", "JOB", "MAX_SIZE", "PREFERENCE_ENV", "PREFERENCE_EVAL_SEED_OFFSET",
    "PREFERENCE_HELDOUT", "PREFERENCE_NOISE", "PREFERENCE_PLOT_STEPS", "PREFERENCE_SEGMENT", "PREFERENCE_STEPS",
    "ROUTE_CITY", "ROUTE_TEST", "ROUTE_TRAIN", "STEPS", "STEP_BAR", "Demo", "DemoConfig", "adversarial_irl", "align_language_model", "build_world",
    "compare_imitation", "imitate_language_model", "inverse_soft_q", "learn_from_preferences", "plot_maps", "predict_routes", "recover_rewards", "run",
    "run_demo", "sample_demos", "solve_expert",
]

# Steps in order; append (name, function) to add a section to the same run, metrics and report.
STEPS: list[tuple[str, Callable[[Demo], dict[str, Any] | None]]] = [
    ("world", build_world), ("expert", solve_expert), ("demos", sample_demos), ("figure", plot_maps),
    ("irl", recover_rewards), ("routes", predict_routes), ("imitation", compare_imitation), ("gail", adversarial_irl),
    ("iq_learn", inverse_soft_q), ("preferences", learn_from_preferences), ("alignment", align_language_model),
    ("lm_irl", imitate_language_model),
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
