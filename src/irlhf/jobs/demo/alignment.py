"""The language-model steps of ``irlhf demo``: DPO on a tiny language model and synthetic sentiment preferences,
then inverse RL (IQ-Learn on tokens, sequence MaxEnt IRL) from demonstrations of the same model's best samples.

The held-out prompt count ``DPO_EVAL_PROMPTS`` is read from this module at call time (patch it here)."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np
import torch

from irlhf.jobs.demo._shared import Demo
from irlhf.llm import dpo, iq_learn, seq_maxent
from irlhf.llm.reward import as_reward_fn
from irlhf.llm.loop import save_checkpoint
from irlhf.llm.tasks import frontier, sentiment
from irlhf.report.curves import dpo_curves

DPO_EVAL_PROMPTS = 32  # held-out prompts of the alignment step, 4 samples each
DPO_SAMPLES = 4  # completions per prompt: all 6 pairs labelled
MAXENT_STEPS = 30  # reward steps of sequence MaxEnt IRL in the lm_irl step


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
    samples = sentiment.generate(model, tokenizer, prompts, DPO_SAMPLES, seed=seed)
    pairs = frontier.label_pairs(prompts, samples)
    demo.language = {"model": model, "tokenizer": tokenizer, "prompts": prompts, "samples": samples,
                     "held_out": held_out}
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


def imitate_language_model(demo: Demo) -> dict[str, Any]:
    """Inverse RL for the alignment step's LM: its best sample of each prompt (by the true sentiment) is the
    expert's demonstration; IQ-Learn (offline) and sequence MaxEnt IRL learn from those alone."""
    lm, c = demo.language, demo.config
    model, tokenizer, held_out = lm["model"], lm["tokenizer"], lm["held_out"]
    demos = [{"prompt": p, "completion": " " + texts[int(np.argmax(frontier.true_reward([p] * len(texts), texts)))]}
             for p, texts in zip(lm["prompts"], lm["samples"])]
    iq = iq_learn.train(copy.deepcopy(model), tokenizer, demos, iq_learn.Config(
        learning_rate=1e-3, chi_alpha=10.0, epochs=3, batch_size=16, max_length=64, seed=c.seed,
        progress=demo.progress))
    with warnings.catch_warnings(record=True) as caught:  # a collapse of the importance weights goes in the report
        warnings.simplefilter("always", UserWarning)
        maxent = seq_maxent.train(copy.deepcopy(model), tokenizer, demos, seq_maxent.Config(
            steps=MAXENT_STEPS, batch_size=16, k_samples=4, reward_learning_rate=3e-4, policy_learning_rate=1e-4,
            max_new_tokens=24, max_length=64, seed=c.seed, progress=demo.progress), ref_model=model)
    collapse = [str(w.message) for w in caught if "importance weights collapsed" in str(w.message)]
    save_checkpoint(iq.model, tokenizer, demo.run.file("iq_learn_lm"))
    save_checkpoint(maxent.model, tokenizer, demo.run.file("maxent_policy"))
    save_checkpoint(maxent.reward_model, tokenizer, demo.run.file("maxent_reward_model"))

    from scipy.stats import spearmanr  # why: scipy is slow to import; only this step's metric needs it

    held_samples = sentiment.generate(model, tokenizer, held_out, DPO_SAMPLES, seed=60_000 + c.seed)
    held_prompts = [p for p, texts in zip(held_out, held_samples) for _ in texts]
    held_texts = [" " + t if t else "" for texts in held_samples for t in texts]  # "": stopped at once
    truth = frontier.true_reward(held_prompts, held_texts)
    learned = {"iq_learn": iq_learn.sequence_rewards(iq.model, tokenizer, held_prompts, held_texts),
               "maxent": as_reward_fn(maxent.reward_model, tokenizer)(held_prompts, held_texts)}
    metrics: dict[str, Any] = {"lm_irl_demos": len(demos)}
    table = []
    for name, policy in (("iq_learn", iq.model), ("maxent", maxent.model)):
        after = frontier.evaluate(policy.eval(), model, tokenizer, held_out, DPO_SAMPLES, 24, seed=50_000 + c.seed)
        rho = float(spearmanr(learned[name], truth).statistic)
        metrics.update({f"{name}_lm_reward": after["reward"], f"{name}_lm_kl": after["kl"],
                        f"{name}_lm_reward_spearman": rho})
        table.append([{"iq_learn": "IQ-Learn (offline)", "maxent": "sequence MaxEnt IRL + RLOO"}[name],
                      f"{after['reward']:+.3f} +- {after['reward_sem']:.3f}", f"{after['kl']:.2f}", f"{rho:+.2f}"])
    metrics["maxent_lm_ess_fraction"] = float(np.mean([row["ess_fraction"] for row in maxent.history]))
    metrics["maxent_lm_ess_collapsed"] = bool(collapse)
    demo.report.section("Inverse RL for the language model").text(
        f"The expert: the best (by the true sentiment) of the {DPO_SAMPLES} samples the pretrained model wrote for "
        f"each of the {len(demos)} prompts. IQ-Learn reads the model's logits as soft Q-values and fits them to "
        "these demonstrations (chi^2 weight 1/40, 3 epochs); sequence MaxEnt IRL fits a reward model R(x, y) "
        f"with an importance-sampled partition function ({MAXENT_STEPS} steps, 4 samples per prompt, mean ESS "
        f"{metrics['maxent_lm_ess_fraction']:.2f} of the 5) and moves the policy towards it. Neither sees the "
        "true reward; the last column correlates each learned reward with it on held-out samples "
        "(docs/irl_for_llms.md)." + (f" The importance weights collapsed: {collapse[0]}." if collapse else "")).table(table, header=["learner", "held-out true reward", "KL to pi_ref",
                                                         "Spearman(learned, true)"])
    demo.summary.append(f"lm_irl: {len(demos)} demos: true reward IQ-Learn {metrics['iq_learn_lm_reward']:+.3f}, "
                        f"MaxEnt {metrics['maxent_lm_reward']:+.3f}; learned-vs-true Spearman "
                        f"{metrics['iq_learn_lm_reward_spearman']:+.2f} / {metrics['maxent_lm_reward_spearman']:+.2f}"
                        + (f"; MaxEnt's importance weights collapsed (mean ESS {metrics['maxent_lm_ess_fraction']:.2f}"
                           " of the set)" if collapse else ""))
    return metrics
