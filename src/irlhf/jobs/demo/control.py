"""The CartPole-v1 steps of ``irlhf demo``: BC vs DAgger, adversarial IRL (GAIL) and offline inverse soft-Q
(IQ-Learn), each scored on held-out resets next to the scripted expert and a random policy."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from irlhf.data import save_trajectories
from irlhf.data.types import Trajectory
from irlhf.envs.gym import collect_demos, evaluate, normalized_score, random_return
from irlhf.eval.returns import score_policy
from irlhf.imitation import bc, dagger
from irlhf.irl import gail, iq_learn
from irlhf.jobs.demo._shared import Demo
from irlhf.nn.policies import save_policy
from irlhf.report.artifacts import save_tensors, state_dict_tensors
from irlhf.report.curves import irl_curves
from irlhf.rl.experts import make_expert
from irlhf.rl.sb3 import one_thread


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
