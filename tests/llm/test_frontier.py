from __future__ import annotations

import math

import pytest

from irlhf.core.errors import ValidationError
from irlhf.llm.tasks import frontier, sentiment


def test_label_pairs_orders_by_true_score_and_drops_ties():
    pairs = frontier.label_pairs(["the film was"], [["great .", "awful .", "great .", "fine"]])
    # scores: great > 0, awful < 0, "fine" 0 (not in the lexicon); the two "great ." tie and are dropped
    assert len(pairs) == 5
    for c, r in zip(pairs.chosen, pairs.rejected):
        assert c.startswith(" ") and r.startswith(" ")
        assert sentiment.sentiment_score([c])[0] > sentiment.sentiment_score([r])[0]
    with pytest.raises(ValidationError, match="tied"):
        frontier.label_pairs(["p"], [["fine", "fine"]])


def test_sft_examples_split_before_the_first_sentiment_word():
    for row in frontier.sft_examples(50, seed=3):
        words = row["prompt"].split(" ")
        assert 1 <= len(words) <= 6 and row["completion"].startswith(" ")
        assert not any(w in sentiment.POSITIVE or w in sentiment.NEGATIVE for w in words[1:])


def test_config_validation():
    for bad in (dict(seeds=()), dict(dpo_betas=(0.0,)), dict(samples_per_prompt=1), dict(ppo_lr=-1.0),
                dict(progress="yes")):
        with pytest.raises(ValidationError):
            frontier.Config(**bad)


TINY = dict(seeds=(0,), corpus_reviews=300, pretrain_steps=20, sft_examples=64, sft_steps=5, n_train_prompts=8,
            n_eval_prompts=4, eval_samples=2, max_new_tokens=8, dpo_betas=(0.1,), dpo_epochs=1, reward_epochs=1,
            ppo_betas=(0.1,), ppo_steps=2, ppo_batch_size=4, variant_betas=(0.5,), orpo_lambdas=(0.1,),
            kto_betas=(0.1,), rl_betas=(0.1,), online_dpo_betas=(0.1,), group_size=2)
EVERY_METHOD = [("SFT", None), ("DPO", 0.1), ("IPO", 0.5), ("DPO (hinge)", 0.5), ("cDPO", 0.5), ("SimPO", 2.0),
                ("ORPO", 0.1), ("KTO", 0.1), ("online DPO (RM)", 0.1), ("PPO (RM)", 0.1), ("PPO (true)", 0.1),
                ("RLOO (RM)", 0.1), ("RLOO (true)", 0.1), ("GRPO (RM)", 0.1), ("GRPO (true)", 0.1)]


def check_pipeline(config, expected, tmp_path):
    seen = []
    result = frontier.run(config, log=lambda _: None,
                          extra_metrics=lambda policy, tok, prompts, texts: seen.append(len(texts)) or {"n": 1.0})
    assert [(r["method"], r["beta"]) for r in result.rows] == expected
    assert seen == [8] * len(expected) and all(r["n"] == 1.0 for r in result.rows)  # 4 prompts x 2 samples each
    sft_row = result.rows[0]
    assert sft_row["kl"] == 0.0  # pi_SFT is its own reference
    assert all(-1 < r["reward"] < 1 and math.isfinite(r["kl"]) and math.isfinite(r["proxy_reward"])
               for r in result.rows)
    assert all(r["kl"] != 0 for r in result.rows[1:])  # every trained policy moved (a sampled estimate: may be < 0)
    summary = frontier.summarize(result.rows)
    assert [s["n_seeds"] for s in summary] == [1] * len(expected) and math.isnan(summary[0]["reward_ci"])
    frontier.plot(result.rows, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000


def test_tiny_pipeline_end_to_end(tmp_path):
    """One offline, one online and one online-DPO method on a tiny budget: rows, proxy reward, summary, plot."""
    config = frontier.Config(**TINY, methods=("KTO", "online DPO (RM)", "GRPO (true)"))
    check_pipeline(config, [("SFT", None), ("KTO", 0.1), ("online DPO (RM)", 0.1), ("GRPO (true)", 0.1)], tmp_path)


@pytest.mark.slow
def test_every_method_of_the_frontier_runs(tmp_path):
    """All 14 methods, one beta each (about half a minute)."""
    check_pipeline(frontier.Config(**TINY), EVERY_METHOD, tmp_path)


def test_summary_interval_is_the_t_interval_over_seeds():
    rows = [{"method": "DPO", "beta": 0.1, "seed": s, "reward": r, "kl": 1.0} for s, r in enumerate((0.1, 0.2, 0.6))]
    (summary,) = frontier.summarize(rows)
    # mean 0.3, sample std 0.26458, t_{0.975, 2} = 4.30265: half-width 4.30265 * 0.26458 / sqrt(3)
    assert summary["reward"] == pytest.approx(0.3) and summary["reward_ci"] == pytest.approx(0.657241, abs=1e-5)
    assert summary["kl_ci"] == 0.0 and summary["n_seeds"] == 3
