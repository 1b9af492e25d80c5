from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from irlhf.core.errors import ValidationError
from irlhf.llm import seq_maxent as sm
from irlhf.llm.reward import make_reward_model

torch.set_num_threads(1)

DEMOS = [{"prompt": "the film was", "completion": " great"},
         {"prompt": "hello world", "completion": ", the plot was dull."},
         {"prompt": "the acting", "completion": " was awful"},
         {"prompt": "i loved", "completion": " the music!"}]


def tiny_config(**changes) -> sm.Config:
    base = dict(steps=2, batch_size=4, k_samples=3, max_new_tokens=5, max_length=64, reward_learning_rate=1e-3,
                policy_learning_rate=1e-3, progress=False)
    return sm.Config(**{**base, **changes})


# -- the math ------------------------------------------------------------------------------------------
def test_log_partition_exact_on_full_support_with_uniform_q():
    rewards = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    log_q = torch.full_like(rewards, -math.log(5))  # each support point once, q uniform
    torch.testing.assert_close(sm.log_partition(rewards, log_q), torch.logsumexp(rewards, -1))


def test_log_partition_is_the_monte_carlo_mean_and_converges():
    rng = np.random.default_rng(0)
    r_support, q = np.array([0.5, -1.0, 2.0, 0.0]), np.array([0.1, 0.2, 0.3, 0.4])
    draws = rng.choice(4, size=200_000, p=q)
    rewards, log_q = torch.tensor(r_support[draws])[None], torch.tensor(np.log(q[draws]))[None]
    brute = np.log(np.mean(np.exp(r_support[draws]) / q[draws]))  # Z = E_q[exp R / q]
    assert float(sm.log_partition(rewards, log_q)[0]) == pytest.approx(brute, abs=1e-9)
    assert float(sm.log_partition(rewards, log_q)[0]) == pytest.approx(np.log(np.exp(r_support).sum()), abs=0.02)


def test_fused_proposal_estimate_is_unbiased_with_the_demo_in_the_set():
    """E over the K = 2 draws of Z_hat (the demonstration always in the set, weighted by the fused q_bar) equals
    Z exactly: enumerate every pair of draws from q on a 4-point support."""
    r_support = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=torch.float64)
    q = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    demo = 0
    expected = torch.zeros((), dtype=torch.float64)
    for a in range(4):
        for b in range(4):
            members = torch.tensor([[a, b, demo]])
            is_demo = members == demo
            log_qbar = sm.fused_log_proposal(torch.log(q[members]), is_demo)
            z_hat = torch.exp(sm.log_partition(r_support[members], log_qbar))[0]
            expected += q[a] * q[b] * z_hat
    torch.testing.assert_close(expected, torch.exp(r_support).sum(), rtol=1e-12, atol=0)


def test_fused_proposal_keeps_the_samples_in_play_when_q_misses_the_demo():
    """q gives the demonstration probability e^-30: weighed as a q sample it takes all the weight (ESS 1); under
    the fused proposal its weight is exp(R_E) / (K q_E + 1) and the samples keep theirs."""
    rewards = torch.zeros(1, 4, dtype=torch.float64)
    log_q = torch.tensor([[-2.0, -2.5, -1.5, -30.0]], dtype=torch.float64)  # three samples, then the demo
    is_demo = torch.tensor([[False, False, False, True]])
    assert float(sm.effective_sample_size(rewards - log_q)) == pytest.approx(1.0)
    fused = sm.effective_sample_size(rewards - sm.fused_log_proposal(log_q, is_demo))
    assert float(fused) > 2.5


def test_effective_sample_size():
    assert sm.effective_sample_size(torch.full((2, 6), 3.7)).tolist() == pytest.approx([6.0, 6.0])
    dominated = torch.tensor([[0.0, -1e4, -1e4, -1e4], [50.0, -60.0, 1.0, 2.0]])
    assert sm.effective_sample_size(dominated).tolist() == pytest.approx([1.0, 1.0])
    log_w = torch.randn(4, 7, dtype=torch.float64)
    w = log_w.exp()
    torch.testing.assert_close(sm.effective_sample_size(log_w + 500.0), w.sum(-1) ** 2 / (w ** 2).sum(-1))


def test_maxent_loss_gradient_is_demo_minus_weighted_sample_gradients():
    """Seed 003: grad log P(y_E|x) = grad R(x, y_E) - sum_k w_k grad R(x, y_k), w self-normalised weights."""
    g = torch.Generator().manual_seed(1)
    f_demo, f_samples = torch.randn(3, 4, generator=g, dtype=torch.float64), torch.randn(3, 5, 4, generator=g,
                                                                                          dtype=torch.float64)
    log_q = torch.randn(3, 5, generator=g, dtype=torch.float64)
    phi = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)  # linear reward R = f . phi
    loss = sm.maxent_loss(f_demo @ phi, sm.log_partition(f_samples @ phi, log_q)).sum()
    (grad,) = torch.autograd.grad(loss, phi)
    w = torch.softmax(f_samples @ phi.detach() - log_q, -1)
    expected = -(f_demo - (w[..., None] * f_samples).sum(1)).sum(0)
    torch.testing.assert_close(grad, expected)


def test_kl_regularised_optimum_maximises_the_objective():
    g = torch.Generator().manual_seed(2)
    ref = torch.log_softmax(torch.randn(6, generator=g, dtype=torch.float64), -1)
    rewards, beta = torch.randn(6, generator=g, dtype=torch.float64), 0.7
    log_pi = sm.kl_regularised_optimum(ref, rewards, beta)

    def objective(lp: torch.Tensor) -> float:
        return float((lp.exp() * (rewards - beta * (lp - ref))).sum())

    assert float(log_pi.exp().sum()) == pytest.approx(1.0)
    assert objective(log_pi) == pytest.approx(beta * float(torch.logsumexp(ref + rewards / beta, -1)))
    for _ in range(20):
        other = torch.log_softmax(log_pi + 0.3 * torch.randn(6, generator=g, dtype=torch.float64), -1)
        assert objective(other) < objective(log_pi)


def test_rloo_advantages_sum_to_zero_and_match_a_hand_loop():
    s = torch.randn(3, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    a = sm.rloo_advantages(s)
    hand = [[s[b, k] - (s[b].sum() - s[b, k]) / 3 for k in range(4)] for b in range(3)]
    torch.testing.assert_close(a, torch.tensor(hand, dtype=torch.float64))
    torch.testing.assert_close(a.sum(-1), torch.zeros(3, dtype=torch.float64))


# -- training --------------------------------------------------------------------------------------------
def test_train_writes_both_models_and_logs_ess(tokenizer, model, tmp_path):
    long_demo = {"prompt": "hello", "completion": " the film was great" * 20}  # longer than max_length: dropped
    config = tiny_config(steps=3)
    result = sm.train(model, tokenizer, DEMOS + [long_demo], config, output_dir=tmp_path)
    assert result.n_dropped == 1
    for part in ("policy", "reward_model"):
        assert (tmp_path / "final" / part / "model.safetensors").is_file()
    assert result.reward_model.config.num_labels == 1
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows == result.history and [r["step"] for r in rows] == [1, 2, 3]
    for row in rows:
        assert all(math.isfinite(v) for v in row.values())
        assert 1.0 - 1e-4 <= row["ess"] <= config.k_samples + 1 + 1e-4
        assert row["ess_fraction"] == pytest.approx(row["ess"] / (config.k_samples + 1))
        assert {"reward/loss", "reward/demo", "log_z", "policy/loss", "policy/kl", "completion_length"} <= set(row)
    assert rows[0]["policy/kl"] == pytest.approx(0.0, abs=1e-4)  # pi == pi_ref before the first policy step


def test_lora_policy_trains_only_its_adapters_against_the_base_model(tokenizer, make_model):
    """A peft policy: pi_ref is the base model (adapters disabled), only the adapters move; R_phi is given."""
    peft = pytest.importorskip("peft")
    policy = peft.get_peft_model(make_model(len(tokenizer)), peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True, lora_dropout=0.0))
    before = {k: v.detach().clone() for k, v in policy.named_parameters()}
    reward_model = make_reward_model(make_model(len(tokenizer), seed=1), tokenizer, seed=0)
    result = sm.train(policy, tokenizer, DEMOS, tiny_config(steps=2), reward_model=reward_model)
    changed = {k for k, v in result.model.named_parameters() if not torch.equal(v, before[k])}
    assert changed and all("lora_" in k for k in changed)
    assert result.history[0]["policy/kl"] == pytest.approx(0.0, abs=1e-4)  # base == adapted before any update
    with pytest.raises(ValidationError, match="reward_model"):
        sm.train(policy, tokenizer, DEMOS, tiny_config(steps=1))  # no R_phi to start from a LoRA wrapper


def test_reward_steps_between_policy_steps(tokenizer, model):
    history = sm.train(model, tokenizer, DEMOS, tiny_config(steps=4, reward_steps=2)).history
    assert ["policy/loss" in row for row in history] == [False, True, False, True]


def test_same_seed_same_run(tokenizer, make_model):
    runs = [sm.train(make_model(len(tokenizer)), tokenizer, DEMOS, tiny_config()) for _ in range(2)]
    assert runs[0].history == runs[1].history
    for a, b in zip(runs[0].model.parameters(), runs[1].model.parameters()):
        assert torch.equal(a, b)


def test_collapse_warning_fires_once_and_is_logged(tokenizer, model):
    rm = make_reward_model(model, tokenizer)
    with torch.no_grad():
        rm.score.weight.mul_(1e4)  # huge reward differences: one sample takes all the weight
    with pytest.warns(UserWarning, match=r"step 1: importance weights collapsed") as caught:
        history = sm.train(model, tokenizer, DEMOS, tiny_config(), reward_model=rm).history
    assert sum("collapsed" in str(w.message) for w in caught) == 1
    assert history[0]["ess_collapsed"] > 0.5 and history[0]["ess"] < 1.5


def test_non_finite_log_weights_raise(tokenizer, model):
    rm = make_reward_model(model, tokenizer)
    with torch.no_grad():
        rm.score.weight.fill_(float("nan"))
    with pytest.raises(ValidationError, match="step 1: non-finite importance log-weights"):
        sm.train(model, tokenizer, DEMOS, tiny_config(), reward_model=rm)


@pytest.mark.parametrize("data, changes, message", [
    ([{"prompt": "hello", "completion": ""}], {}, "empty string"),
    ([{"prompt": "hello"}], {}, "expected prompt and completion"),
    ([{"text": "the film was great"}], {}, "empty prompt"),
    ([{"prompt": "hello", "completion": " the film was great" * 20}], {}, "all 1 demonstrations dropped"),
    ([{"prompt": "the film was great and the plot was dull", "completion": " yes"}], {"max_length": 4},
     "expected fewer than max_length=4"),
    (DEMOS, {"max_new_tokens": 200}, "model's context of 128"),
])
def test_bad_inputs_raise(tokenizer, model, data, changes, message):
    with pytest.raises(ValidationError, match=message):
        sm.train(model, tokenizer, data, tiny_config(**changes))


def test_config_rejects_one_sample():
    with pytest.raises(ValidationError, match="k_samples"):
        sm.Config(k_samples=1)
