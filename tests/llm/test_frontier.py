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


def test_tiny_pipeline_end_to_end(tmp_path):
    config = frontier.Config(seeds=(0,), corpus_reviews=300, pretrain_steps=20, sft_examples=64, sft_steps=5,
                             n_train_prompts=8, n_eval_prompts=4, eval_samples=2, max_new_tokens=8,
                             dpo_betas=(0.1,), dpo_epochs=1, reward_epochs=1, ppo_betas=(0.1,), ppo_steps=2,
                             ppo_batch_size=4)
    result = frontier.run(config, log=lambda _: None)
    methods = [(r["method"], r["beta"]) for r in result.rows]
    assert methods == [("SFT", None), ("DPO", 0.1), ("PPO (RM)", 0.1), ("PPO (true)", 0.1)]
    sft_row = result.rows[0]
    assert sft_row["kl"] == 0.0  # pi_SFT is its own reference
    assert all(-1 < r["reward"] < 1 and math.isfinite(r["kl"]) for r in result.rows)
    assert all(r["kl"] != 0 for r in result.rows[1:])  # every trained policy moved (a sampled estimate: may be < 0)
    summary = frontier.summarize(result.rows)
    assert [s["n_seeds"] for s in summary] == [1, 1, 1, 1]
    frontier.plot(result.rows, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000
