"""GRPO and RLOO (irlhf.llm.grpo, irlhf.llm.rloo, irlhf.llm.group_rollout): closed forms on hand-made tensors, the
policy-gradient identity at ratio 1, validation, and short seeded runs on a toy reward. The comparison with TRL's
trainers is tests/llm/test_online_vs_trl.py."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from irlhf.core.errors import ValidationError
from irlhf.llm import group_rollout, grpo, rloo

torch.set_num_threads(1)

PROMPTS = ["hello world", "the film was", "the acting", "i loved"]
LETTERS = set("abcdefghijklmnopqrstuvwxyz ")


def letters_reward(prompts, completions):
    """Toy ground truth: lowercase letters and spaces in the completion, per sampled token (8 of them)."""
    return np.array([sum(ch in LETTERS for ch in c) / 8 for c in completions])


def tiny(module, **changes):
    base = dict(steps=1, batch_size=2, num_generations=3, learning_rate=1e-3, max_new_tokens=6, progress=False,
                device="cpu")
    return module.Config(**{**base, **changes})


# ------------------------------------------------------------------------------------------ advantages


def test_group_advantages_standardise_each_group():
    scores = torch.tensor([1.0, 2.0, 3.0, 6.0, 0.0, 3.0, 5.0, 5.0, 5.0])
    adv = grpo.group_advantages(scores, 3)
    groups = adv.view(3, 3)
    assert torch.allclose(groups.mean(1), torch.zeros(3), atol=1e-6)
    # std (Bessel-corrected) 1 up to the 1e-4 in the denominator; the group of equal rewards gets 0, not NaN
    assert torch.allclose(groups[:2].std(1), torch.ones(2), atol=1e-3)
    assert torch.equal(groups[2], torch.zeros(3))
    assert torch.allclose(groups[0], torch.tensor([-1.0, 0.0, 1.0]) / (1 + 1e-4))  # std of 1, 2, 3 is 1
    # Dr. GRPO: centred only; "batch": centred per group, scaled by the batch's std
    assert torch.allclose(grpo.group_advantages(scores, 3, "none"), torch.tensor([-1, 0, 1, 3, -3, 0, 0, 0, 0.0]))
    assert torch.allclose(grpo.group_advantages(scores, 3, "batch"),
                          torch.tensor([-1, 0, 1, 3, -3, 0, 0, 0, 0.0]) / (scores.std() + 1e-4))


def test_leave_one_out_baseline_is_the_mean_of_the_others():
    rewards = torch.tensor([1.0, 4.0, -2.0, 0.5, 3.0, 3.0, 7.0, 1.0])
    k = 4
    adv = rloo.leave_one_out_advantages(rewards, k)
    want = [r - (sum(rewards[g * k:(g + 1) * k]) - r) / (k - 1)
            for g in range(2) for r in rewards[g * k:(g + 1) * k]]
    assert torch.allclose(adv, torch.tensor(want), atol=1e-6)
    assert torch.allclose(adv.view(2, k).sum(1), torch.zeros(2), atol=1e-5)  # each group's advantages sum to 0
    # equivalently k / (k - 1) times the deviation from the group mean
    assert torch.allclose(adv.view(2, k), k / (k - 1) * (rewards.view(2, k) - rewards.view(2, k).mean(1, keepdim=True)))
    normalised = rloo.leave_one_out_advantages(rewards, k, normalize=True)
    assert abs(float(normalised.mean())) < 1e-6 and math.isclose(float(normalised.std()), 1.0, rel_tol=1e-3)


# ---------------------------------------------------------------------------------------- aggregation


def test_each_loss_type_aggregates_as_defined():
    per_token = torch.tensor([[9.0, 1.0, 2.0, 3.0], [9.0, 4.0, 9.0, 9.0], [5.0, 6.0, 9.0, 9.0]])
    mask = torch.tensor([[False, True, True, True], [False, True, False, False], [True, True, False, False]])
    # completions: (1, 2, 3), (4,), (5, 6): 6 tokens over 3 sequences
    assert math.isclose(float(grpo.aggregate(per_token, mask, "grpo")), (2.0 + 4.0 + 5.5) / 3, rel_tol=1e-6)
    for name in ("dapo", "bnpo"):
        assert math.isclose(float(grpo.aggregate(per_token, mask, name)), 21.0 / 6, rel_tol=1e-6)
    assert math.isclose(float(grpo.aggregate(per_token, mask, "dr_grpo", max_completion_length=4)), 21.0 / 12,
                        rel_tol=1e-6)
    # micro-batches given the whole batch's counts add up to the whole batch's loss
    for name in ("grpo", "dapo", "dr_grpo"):
        whole = grpo.aggregate(per_token, mask, name, 4)
        parts = sum(grpo.aggregate(per_token[rows], mask[rows], name, 4, n_sequences=3, n_tokens=mask.sum())
                    for rows in (slice(0, 2), slice(2, 3)))
        assert torch.allclose(whole, parts)
    with pytest.raises(ValidationError, match="loss_type='ppo'"):
        grpo.aggregate(per_token, mask, "ppo")
    with pytest.raises(ValidationError, match="max_completion_length"):
        grpo.aggregate(per_token, mask, "dr_grpo")


def test_clipping_binds_on_the_pessimistic_side():
    ratios = torch.tensor([[1.5, 0.5, 1.5, 0.5]])
    adv = torch.tensor([1.0])
    loss, clipped = grpo.per_token_loss(torch.log(ratios), torch.zeros(1, 4), None, adv, epsilon=0.2)
    assert torch.allclose(loss, torch.tensor([[-1.2, -0.5, -1.2, -0.5]]))
    assert clipped.tolist() == [[True, False, True, False]]
    loss, clipped = grpo.per_token_loss(torch.log(ratios), torch.zeros(1, 4), None, -adv, epsilon=0.2,
                                        epsilon_high=0.6)
    assert torch.allclose(loss, torch.tensor([[1.5, 0.8, 1.5, 0.8]]))  # A < 0: the lower clip binds
    assert clipped.tolist() == [[False, True, False, True]]


# ------------------------------------------------------------------------------ KL and the gradient


def toy_logps(seed=0, b=3, t=4, v=5):
    """Per-token log-probs (b, t) of random tokens under softmax(logits), logits a leaf that requires grad."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, v, generator=g, requires_grad=True)
    tokens = torch.randint(0, v, (b, t), generator=g)
    return logits, torch.log_softmax(logits, -1).gather(-1, tokens[..., None])[..., 0]


def test_k3_term_is_zero_when_policy_is_the_reference():
    logits, logps = toy_logps()
    mask = torch.ones_like(logps, dtype=torch.bool)
    value, _ = grpo.loss(logps, logps.detach(), logps.detach(), torch.zeros(3), mask, beta=0.5)
    value.backward()
    assert float(value.detach()) == 0.0 and float(logits.grad.abs().max()) < 1e-7
    # away from the reference it is positive and its gradient is beta (1 - pi_ref / pi) per token
    logits, logps = toy_logps()
    ref = logps.detach() - 0.3
    value, _ = grpo.loss(logps, logps.detach(), ref, torch.zeros(3), mask, loss_type="dapo", beta=0.5)
    assert float(value.detach()) > 0
    grad = torch.autograd.grad(value, logps, retain_graph=True)[0]
    assert torch.allclose(grad, 0.5 * (1 - torch.exp(ref - logps.detach())) / 12, atol=1e-7)
    # with the ratio weighting (DeepSeek-V3.2) the per-token gradient is beta (log pi - log pi_ref)
    value, _ = grpo.loss(logps, logps.detach(), ref, torch.zeros(3), mask, loss_type="dapo", beta=0.5,
                         use_bias_correction_kl=True)
    grad = torch.autograd.grad(value, logps)[0]
    assert torch.allclose(grad, 0.5 * (logps.detach() - ref) / 12, atol=1e-7)


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo"])
def test_grpo_gradient_at_ratio_one_is_reinforce(loss_type):
    logits, logps = toy_logps(1)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False], [True, True, True, True]])
    adv = torch.tensor([0.7, -1.2, 0.4])
    value, clipfrac = grpo.loss(logps, logps.detach(), None, adv, mask, loss_type, max_completion_length=4)
    (ours,) = torch.autograd.grad(value, logits, retain_graph=True)
    weights = {"grpo": 1 / (3 * mask.sum(-1, keepdim=True)), "dapo": 1 / mask.sum(), "dr_grpo": 1 / (3 * 4)}[loss_type]
    reinforce = -(adv[:, None] * weights * torch.where(mask, logps, 0.0)).sum()
    (want,) = torch.autograd.grad(reinforce, logits)
    assert torch.allclose(ours, want, atol=1e-7) and float(clipfrac) == 0.0


def test_rloo_gradient_at_ratio_one_is_reinforce():
    logits, logps = toy_logps(2)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False], [True, True, True, True]])
    adv = torch.tensor([0.7, -1.2, 0.4])
    value, clipfrac = rloo.loss(logps, logps.detach(), None, adv, mask)
    assert math.isclose(float(value.detach()), -float(adv.mean()), rel_tol=1e-6)  # rho = 1: -mean A
    (ours,) = torch.autograd.grad(value, logits, retain_graph=True)
    (want,) = torch.autograd.grad(-(adv * torch.where(mask, logps, 0.0).sum(-1)).mean(), logits)
    assert torch.allclose(ours, want, atol=1e-7) and float(clipfrac) == 0.0
    # the sequence ratio is clipped: rho = e^0.3 > 1.2 with A > 0 gives -1.2 A and no gradient
    value, clipfrac = rloo.loss(logps, logps.detach() - 0.1, None, torch.ones(3), torch.ones(3, 4).bool())
    assert math.isclose(float(value.detach()), -1.2, rel_tol=1e-6) and float(clipfrac) == 1.0


def test_sampled_groups_and_their_log_probs(tokenizer, make_model):
    from irlhf.llm.rollout import encode_prompts, policy_forward

    model = make_model(len(tokenizer))
    config = tiny(grpo, temperature=0.7)
    batch = group_rollout.sample_groups(model, tokenizer, PROMPTS[:2], encode_prompts(tokenizer, PROMPTS[:2]),
                                        letters_reward, config, num_generations=3, seed=4, ref_model=model)
    assert batch.prompts == [PROMPTS[0]] * 3 + [PROMPTS[1]] * 3 and len(batch.completions) == 6
    assert torch.allclose(batch.scores, torch.tensor(letters_reward(None, batch.completions), dtype=torch.float32))
    # the LM head at completion positions only gives the full forward's log-probs (at the temperature)
    want = policy_forward(model, batch.input_ids, batch.attention_mask, batch.completion_mask, 0.7)[0]
    assert torch.allclose(batch.logps, want, atol=1e-5) and torch.allclose(batch.ref_logps, want, atol=1e-5)
    again = group_rollout.sample_groups(model, tokenizer, PROMPTS[:2], encode_prompts(tokenizer, PROMPTS[:2]),
                                        letters_reward, config, num_generations=3, seed=4, policy_logps=False,
                                        reference=False)
    assert torch.equal(again.input_ids, batch.input_ids) and again.logps is None and again.ref_logps is None
    with pytest.raises(ValidationError, match="reference=True needs a ref_model"):
        group_rollout.sample_groups(model, tokenizer, PROMPTS[:1], encode_prompts(tokenizer, PROMPTS[:1]),
                                    letters_reward, config, num_generations=2)


# -------------------------------------------------------------------------------------- validation


def test_bad_config_and_input(tokenizer, make_model):
    with pytest.raises(ValidationError, match=r"num_generations=1: expected an int >= 2 \(a group of one"):
        grpo.Config(num_generations=1)
    with pytest.raises(ValidationError, match="num_generations=1"):
        rloo.Config(num_generations=1)
    with pytest.raises(ValidationError, match="loss_type='ppo'"):
        grpo.Config(loss_type="ppo")
    with pytest.raises(ValidationError, match="scale_rewards='std'"):
        grpo.Config(scale_rewards="std")
    with pytest.raises(ValidationError, match="kl_penalty='both'"):
        rloo.Config(kl_penalty="both")
    with pytest.raises(ValidationError, match="epsilon=1.5: expected < 1"):
        grpo.Config(epsilon=1.5)
    with pytest.raises(ValidationError, match="beta=-1"):
        rloo.Config(beta=-1)
    with pytest.raises(ValidationError, match="num_generations=2"):
        grpo.group_advantages(torch.zeros(5), 2)
    model = make_model(len(tokenizer))
    with pytest.raises(ValidationError, match=r"reward_fn returned shape \(5,\); expected \(6,\)"):
        grpo.train(model, tokenizer, PROMPTS, lambda p, c: np.zeros(5), tiny(grpo))
    with pytest.raises(ValidationError, match="reward_fn returned non-finite"):
        rloo.train(model, tokenizer, PROMPTS, lambda p, c: np.full(len(c), np.nan), tiny(rloo))
    with pytest.raises(ValidationError, match="reward_fn: 'x'"):
        grpo.train(model, tokenizer, PROMPTS, "x", tiny(grpo))
    with pytest.raises(ValidationError, match="prompts"):
        rloo.train(model, tokenizer, [], letters_reward, tiny(rloo))


# ---------------------------------------------------------------------------------------- training


@pytest.mark.parametrize("module", [grpo, rloo])
def test_training_raises_the_toy_reward(tokenizer, make_model, module):
    # seeds 0-4 (lr 2e-2, 12 steps): the last 4 steps' mean score is 0.6-3.5 above the first 4's (from about 0.5)
    config = tiny(module, steps=12, batch_size=4, num_generations=4, learning_rate=2e-2, max_new_tokens=8)
    result = module.train(make_model(len(tokenizer)), tokenizer, PROMPTS, letters_reward, config)
    scores = [row["objective/scores"] for row in result.history]
    assert len(scores) == 12 and np.mean(scores[-4:]) > np.mean(scores[:4]) + 0.3
    row = result.history[-1]
    for name in ("objective/scores", "objective/kl", "loss", "grad_norm", "clipfrac", "reward_std",
                 "frac_reward_zero_std", "completion_length", "eos_fraction"):
        assert math.isfinite(row[name]), name
    assert row["objective/kl"] > 0 and row["clipfrac"] == 0.0  # one pass: rho = 1, nothing clipped
    if module is rloo:
        assert math.isclose(row["objective/rlhf_reward"], row["objective/scores"] - 0.05 * row["objective/kl"],
                            abs_tol=1e-5)


def test_run_dir_eval_rows_and_no_reference_with_beta_zero(tokenizer, make_model, tmp_path, monkeypatch):
    calls = []
    reference = group_rollout.reference_logps
    monkeypatch.setattr(group_rollout, "reference_logps", lambda *a, **k: calls.append(1) or reference(*a, **k))
    config = tiny(grpo, steps=2, beta=0.0, save_steps=1, log_every=2, num_iterations=2, loss_type="dr_grpo")
    result = grpo.train(make_model(len(tokenizer)), tokenizer, PROMPTS, letters_reward, config, output_dir=tmp_path,
                        eval_prompts=PROMPTS[:2])
    assert not calls  # beta = 0: no reference forward pass (nor a reference model)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == result.history and [row["step"] for row in lines] == [2, 2]
    assert "objective/kl" not in lines[0] and "eval/kl" not in lines[1]
    assert set(lines[1]) == {"step", "eval/scores", "eval/completion_length", "eval/eos_fraction"}
    for name in ("step-1", "step-2", "final"):
        assert (tmp_path / name / "model.safetensors").exists()


def test_micro_batches_give_the_whole_batch_update(tokenizer, make_model):
    results = {}
    for micro in (None, 4):
        config = tiny(rloo, batch_size=3, num_generations=3, micro_batch_size=micro, num_iterations=2,
                      kl_penalty="loss")
        results[micro] = rloo.train(make_model(len(tokenizer)), tokenizer, PROMPTS, letters_reward, config)
    whole, parts = results[None], results[4]
    for name in ("loss", "grad_norm", "objective/kl"):
        assert math.isclose(whole.history[0][name], parts.history[0][name], rel_tol=1e-4, abs_tol=1e-7), name
    for a, b in zip(whole.model.parameters(), parts.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_lora_reference_is_the_base_model(tokenizer, make_model):
    peft = pytest.importorskip("peft")
    base = make_model(len(tokenizer))
    model = peft.get_peft_model(base, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"],
                                                      fan_in_fan_out=True))
    before = {k: v.clone() for k, v in model.named_parameters()}
    result = grpo.train(model, tokenizer, PROMPTS, letters_reward, tiny(grpo, steps=2, learning_rate=1e-2))
    # lora_B starts at 0: the policy equals the adapters-off base at the first step, KL exactly 0
    assert result.history[0]["objective/kl"] == 0.0 and result.history[1]["objective/kl"] != 0.0
    changed = {k for k, v in result.model.named_parameters() if not torch.equal(v, before[k])}
    assert changed and all("lora_" in k for k in changed)


def test_prompts_that_leave_no_room_for_the_completion_are_refused(tokenizer, make_model):
    model = make_model(len(tokenizer))
    positions = model.config.n_positions
    with pytest.raises(ValidationError, match=f"max_new_tokens={positions}: the longest of the prompts has "):
        grpo.train(model, tokenizer, ["the film was"], lambda p, c: np.zeros(len(c)),
                   grpo.Config(steps=1, batch_size=1, num_generations=2, max_new_tokens=positions, progress=False))
