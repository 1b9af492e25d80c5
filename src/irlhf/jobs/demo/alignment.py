"""The alignment step of ``irlhf demo``: DPO on a tiny language model and synthetic sentiment preferences.

The held-out prompt count ``DPO_EVAL_PROMPTS`` is read from this module at call time (patch it here)."""

from __future__ import annotations

import copy
from typing import Any

import torch

from irlhf.jobs.demo._shared import Demo
from irlhf.llm import dpo
from irlhf.llm.loop import save_checkpoint
from irlhf.llm.tasks import frontier, sentiment
from irlhf.report.curves import dpo_curves

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
