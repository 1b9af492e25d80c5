"""The preferences step of ``irlhf demo``: a Pendulum-v1 reward fitted to oracle-labelled segment pairs, no RL."""

from __future__ import annotations

from typing import Any

import numpy as np

from irlhf.eval.preferences import fit_reward_to_oracle
from irlhf.jobs.demo._shared import Demo
from irlhf.preference import trajectory
from irlhf.report.rewards import learned_vs_true
from irlhf.rl.experts import make_expert

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
