"""Online DPO: the pair each prompt's samples make, the loss (DPO's, on those pairs), and a short run."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

from irlhf.core.errors import ValidationError
from irlhf.llm import dpo, online_dpo

PROMPTS = ["hello world", "the film was", "the acting", "i loved"]


def letters_reward(prompts, completions):
    """Toy ground truth: lowercase letters and spaces in the completion."""
    return np.array([sum(ch in "abcdefghijklmnopqrstuvwxyz " for ch in c) / 8 for c in completions])


def quiet(**changes):
    base = dict(steps=2, batch_size=2, learning_rate=1e-3, max_new_tokens=6, progress=False, device="cpu")
    return online_dpo.Config(**{**base, **changes})


def test_pair_signs_best_and_worst_of_each_group():
    scores = torch.tensor([0.3, 0.9, 0.1, 0.5, 0.5, 0.5, 2.0, -1.0, 2.0])
    signs = online_dpo.pair_signs(scores, 3)
    assert signs.tolist() == [0, 1, -1, 0, 0, 0, 1, -1, 0]  # a group of equal scores: no pair; equal bests: the first
    first = online_dpo.pair_signs(scores, 3, ties="first")
    assert first.tolist() == [0, 1, -1, 1, -1, 0, 1, -1, 0]
    assert online_dpo.pair_signs(torch.tensor([1.0, 1.0, 2.0, 0.0]), 2, "first").tolist() == [1, -1, 1, -1]


def test_loss_is_dpo_on_the_pairs_and_zero_for_ties():
    torch.manual_seed(0)
    logps, ref = torch.randn(6, 5), torch.randn(6, 5)
    mask = torch.ones(6, 5, dtype=torch.bool)
    mask[:, :2] = False  # prompt positions
    signs = torch.tensor([1.0, -1.0, 0.0, 0.0, -1.0, 1.0])  # prompt 2 tied
    got = online_dpo.loss(logps, ref, signs, mask, beta=0.5)
    seq, seq_ref = (logps * mask).sum(-1), (ref * mask).sum(-1)
    losses, _, _ = dpo.loss(seq[[0, 5]], seq[[1, 4]], seq_ref[[0, 5]], seq_ref[[1, 4]], beta=0.5)
    assert float(got) == pytest.approx(float(losses.sum()) / 3, abs=1e-6)  # mean over all 3 prompts
    # policy = reference: each pair's loss is log 2
    assert float(online_dpo.loss(ref, ref, signs, mask, beta=0.5)) == pytest.approx(2 * math.log(2) / 3, abs=1e-6)
    everything_tied = online_dpo.loss(logps.requires_grad_(), ref, torch.zeros(6), mask, beta=0.5)
    assert float(everything_tied.detach()) == 0.0 and everything_tied.requires_grad


def test_config_and_input_validation():
    for bad, message in ((dict(num_iterations=2), "num_iterations=2"), (dict(micro_batch_size=3), "micro_batch"),
                         (dict(beta=0.0), "beta"), (dict(num_generations=1), "num_generations"),
                         (dict(ties="random"), "ties"), (dict(loss_type="hinge", label_smoothing=0.1), "label_smoothing")):
        with pytest.raises(ValidationError, match=message):
            quiet(**bad)
    with pytest.raises(ValidationError, match="pair_signs"):
        online_dpo.pair_signs(torch.zeros(5), 2)


def test_short_run_writes_its_directory_and_prefers_the_rewarded_samples(tokenizer, make_model, tmp_path):
    model = make_model(len(tokenizer))
    result = online_dpo.train(copy.deepcopy(model), tokenizer, PROMPTS, letters_reward,
                              quiet(steps=3, beta=0.5, num_generations=4, learning_rate=2e-3, log_every=1),
                              output_dir=tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and (tmp_path / "final").is_dir()
    first = rows[0]
    assert {"loss", "objective/scores", "objective/kl", "tie_fraction", "score_margin", "grad_norm"} <= set(first)
    # step 1: the policy is its reference, so each pair's loss is log 2 and the prompts with ties add 0
    assert first["loss"] == pytest.approx(math.log(2) * (1 - first["tie_fraction"]), abs=1e-5)
    assert first["score_margin"] > 0
    moved = any(not torch.equal(a, b) for a, b in zip(model.parameters(), result.model.parameters()))
    assert moved
