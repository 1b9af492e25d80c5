from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from irlhf.core.errors import ValidationError
from irlhf.llm import iq_learn, sft
from irlhf.llm.logps import completion_logps
from irlhf.llm.tokenize import TokenizeOptions, collate, encode

torch.set_num_threads(1)

ROWS = [{"prompt": "the film was", "completion": " great"},
        {"prompt": "the acting was", "completion": " awful; i loved the music"},
        {"prompt": "hello", "completion": " world"}]


def quiet(**kw):
    return iq_learn.Config(progress=False, **kw)


def encoded_batch(tokenizer, rows=ROWS, **options):
    items = [encode(tokenizer, r["prompt"], r["completion"], TokenizeOptions(**options)) for r in rows]
    return items, collate(items, 0)


def offline_loss(model, tokenizer, batch, config):
    n = int(iq_learn._scored(batch).sum())
    return iq_learn._batch_loss(model, batch, len(batch["input_ids"]), config, tokenizer.eos_token_id,
                                (n, n, 0, len(batch["input_ids"])))


def grads(model, loss):
    model.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_offline_iq_without_divergence_is_alpha_times_mle(make_model, tokenizer, alpha):
    """gamma = 1, divergence "none", value term over expert states: L_IQ = -alpha E[log pi(a | s)]."""
    model = make_model(len(tokenizer))
    _, batch = encoded_batch(tokenizer)
    config = quiet(alpha=alpha, gamma=1.0, divergence="none")
    loss, shares = offline_loss(model, tokenizer, batch, config)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logp = completion_logps(logits, batch["input_ids"], batch["completion_mask"], temperature=alpha)
    mle = -alpha * logp.sum() / iq_learn._scored(batch).sum()
    assert float(loss.detach()) == pytest.approx(float(mle.detach()), abs=1e-6)
    assert float(shares[4]) == pytest.approx(float(mle.detach()) / alpha, abs=1e-6)  # the logged mle_loss
    for a, b in zip(grads(model, loss), grads(model, mle)):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    if alpha == 1.0:  # the same as SFT's loss, and as sft.train's first logged loss
        with torch.no_grad():
            nll, scored, _ = sft.token_losses(model, batch)
        assert float(loss.detach()) == pytest.approx(float(nll.sum() / scored.sum()), abs=1e-6)
        iq = iq_learn.train(make_model(len(tokenizer)), tokenizer, ROWS, quiet(divergence="none", batch_size=3,
                                                                                 max_steps=1))
        s = sft.train(make_model(len(tokenizer)), tokenizer, ROWS, sft.Config(progress=False, batch_size=3,
                                                                              max_steps=1))
        assert iq.history[0]["loss"] == pytest.approx(s.history[0]["loss"], abs=1e-6)


def test_token_rewards_terminal_and_truncated_by_hand(make_model, tokenizer):
    """r = Q(s_t, a_t) - gamma V(s_{t+1}); V = 0 after EOS; a cut completion bootstraps from its last logits."""
    model = make_model(len(tokenizer))
    alpha, gamma, eos = 0.5, 0.9, tokenizer.eos_token_id
    done = encode(tokenizer, "the film was", " great")  # ends in EOS
    cut = encode(tokenizer, "the acting was", " awful; i loved the music", TokenizeOptions(max_length=8))
    assert done.input_ids[-1] == eos and cut.input_ids[-1] != eos and len(cut.input_ids) == 8
    batch = collate([done, cut], 0)
    with torch.no_grad():
        r = iq_learn.token_rewards(model, batch, alpha, gamma, eos_token_id=eos)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.double()
    expected = torch.zeros_like(r, dtype=torch.float64)
    for row, e in enumerate([done, cut]):
        v = alpha * torch.logsumexp(logits[row] / alpha, -1)  # V(s_{p+1}) from the logits at position p
        for t in range(e.n_prompt, len(e.input_ids)):
            a = e.input_ids[t]
            v_next = 0.0 if a == eos else float(v[t])
            expected[row, t] = float(logits[row, t - 1, a]) - gamma * v_next
    torch.testing.assert_close(r.double(), expected, atol=1e-5, rtol=0)
    # the two boundary cases explicitly: the EOS token's reward is its Q; the cut one subtracts V(last logits)
    last = len(cut.input_ids) - 1
    assert float(r[0, len(done.input_ids) - 1]) == pytest.approx(float(logits[0, len(done.input_ids) - 2, eos]),
                                                                 abs=1e-5)
    v_last = alpha * float(torch.logsumexp(logits[1, last] / alpha, -1))
    assert float(r[1, last]) == pytest.approx(float(logits[1, last - 1, cut.input_ids[last]]) - gamma * v_last,
                                              abs=1e-5)
    assert (r[~batch["completion_mask"]] == 0).all()


def test_sequence_reward_is_the_sum_of_token_rewards_and_telescopes(make_model, tokenizer):
    model = make_model(len(tokenizer))
    prompts, completions = [r["prompt"] for r in ROWS], [r["completion"] for r in ROWS]
    config = quiet(alpha=0.7, gamma=0.95)
    scores = iq_learn.sequence_rewards(model, tokenizer, prompts, completions, config, batch_size=2)
    items, batch = encoded_batch(tokenizer)
    with torch.no_grad():
        r = iq_learn.token_rewards(model, batch, 0.7, 0.95, eos_token_id=tokenizer.eos_token_id)
    assert scores.shape == (3,) and scores.dtype == np.float64
    np.testing.assert_allclose(scores, r.sum(-1).numpy(), atol=1e-5)
    # gamma = 1, terminal: sum_t r_t = alpha log pi(y | x) + V(s_0)
    scores = iq_learn.sequence_rewards(model, tokenizer, prompts, completions, quiet(alpha=0.7))
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logp = completion_logps(logits, batch["input_ids"], batch["completion_mask"], temperature=0.7).sum(-1)
        v0 = torch.stack([0.7 * torch.logsumexp(logits[k, e.n_prompt - 1] / 0.7, -1) for k, e in enumerate(items)])
    np.testing.assert_allclose(scores, (0.7 * logp + v0).numpy(), atol=1e-4)
    with pytest.raises(ValidationError, match="completions\\[1\\]"):
        iq_learn.sequence_rewards(model, tokenizer, ["a", "the film was the acting was"], [" b", " c"],
                                  quiet(max_length=2))
    # a policy that stopped at once: "" and " " are scored as EOS alone, like the EOS text itself
    blank = iq_learn.sequence_rewards(model, tokenizer, ["the film was"] * 3, ["", " ", tokenizer.eos_token])
    assert blank[0] == blank[1] == blank[2] and np.isfinite(blank).all()


def test_logged_terms_chi2_is_mean_squared_reward(make_model, tokenizer):
    model = make_model(len(tokenizer))
    _, batch = encoded_batch(tokenizer)
    with torch.no_grad():
        r = iq_learn.token_rewards(model, batch, 1.0, 1.0, eos_token_id=tokenizer.eos_token_id)
    scored = iq_learn._scored(batch)
    n = int(scored.sum())
    row = iq_learn.train(model, tokenizer, ROWS, quiet(batch_size=3, max_steps=1, chi_alpha=0.25,
                                                       mle_weight=0.5)).history[0]
    assert row["chi2_loss"] == pytest.approx(float((r[scored] ** 2).sum()) / n / (4 * 0.25), rel=1e-5)
    assert row["reward"] == pytest.approx(float(r.sum()) / n, rel=1e-5) and row["softq_loss"] == -row["reward"]
    assert row["sequence_reward"] == pytest.approx(float(r.sum()) / 3, rel=1e-5)
    parts = row["softq_loss"] + row["value_loss"] + row["chi2_loss"] + 0.5 * row["mle_loss"]
    assert row["loss"] == pytest.approx(parts, rel=1e-5) and row["expert_tokens"] == n
    assert 0 <= row["token_accuracy"] <= 1 and "policy_reward" not in row


def test_shards_with_global_counts_give_the_whole_batch_gradient(make_model, tokenizer):
    """What N processes compute (each its rows, the global denominators, times world) sums to one process's."""
    model = make_model(len(tokenizer))
    _, batch = encoded_batch(tokenizer)
    config = quiet(online=True, regularize_mixed=True, mle_weight=0.3)
    n_tok = iq_learn._scored(batch).sum(-1)
    n_expert, n_policy = int(n_tok[:2].sum()), int(n_tok[2])  # rows 0, 1 demonstrations, row 2 a "sample"
    counts = (n_expert, n_expert + n_policy, n_policy, 2)
    whole = grads(model, iq_learn._batch_loss(model, batch, 2, config, tokenizer.eos_token_id, counts)[0])
    first = {k: v[:1] for k, v in batch.items()}
    second = {k: v[1:] for k, v in batch.items()}
    g1 = grads(model, iq_learn._batch_loss(model, first, 1, config, tokenizer.eos_token_id, counts)[0])
    g2 = grads(model, iq_learn._batch_loss(model, second, 1, config, tokenizer.eos_token_id, counts)[0])
    for w, a, b in zip(whole, g1, g2):
        torch.testing.assert_close(a + b, w, atol=1e-6, rtol=1e-5)


def test_online_mixes_policy_samples(make_model, tokenizer, tmp_path):
    config = quiet(online=True, policy_fraction=0.5, max_new_tokens=4, batch_size=4, epochs=2, log_every=1,
                   learning_rate=1e-3)
    result = iq_learn.train(make_model(len(tokenizer)), tokenizer, ROWS + ROWS[:1], config, output_dir=tmp_path)
    first = result.history[0]
    assert 2 <= first["policy_tokens"] <= 2 * 4  # ceil(0.5 * 4) samples of 1..4 tokens
    assert first["num_tokens"] == first["expert_tokens"] + first["policy_tokens"]
    assert math.isfinite(first["policy_reward"]) and math.isfinite(first["value_loss"])
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2] and (tmp_path / "final").is_dir()
    again = iq_learn.train(make_model(len(tokenizer)), tokenizer, ROWS + ROWS[:1], config)
    assert again.history == result.history  # the samples are seeded


def test_training_reduces_the_loss_and_is_seeded(make_model, tokenizer):
    config = quiet(batch_size=3, epochs=12, learning_rate=3e-3, lr_schedule="constant", log_every=1)
    a = iq_learn.train(make_model(len(tokenizer)), tokenizer, ROWS, config, eval_data=ROWS)
    assert a.history[-1]["loss"] < 0.8 * a.history[0]["loss"]
    assert a.history[-1]["eval/loss"] < a.history[0]["loss"]  # the trained model, on the same demonstrations
    assert "eval/loss" not in a.history[0] and a.history[-1]["eval/token_accuracy"] >= a.history[0]["token_accuracy"]
    b = iq_learn.train(make_model(len(tokenizer)), tokenizer, ROWS, config, eval_data=ROWS)
    assert a.history == b.history
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)


def test_bad_input_raises_one_line_errors(make_model, tokenizer, tmp_path):
    model = make_model(len(tokenizer))
    with pytest.raises(ValidationError, match="completion\\[0\\]: empty string"):
        iq_learn.train(model, tokenizer, [{"prompt": "a", "completion": ""}], quiet())
    with pytest.raises(ValidationError, match="row 0: keys \\['prompt'\\]"):
        iq_learn.train(model, tokenizer, [{"prompt": "the film was"}], quiet())
    with pytest.raises(ValidationError, match="all 2 demonstrations dropped.*max_length=2"):
        iq_learn.train(model, tokenizer, ROWS[:2], quiet(max_length=2))
    with pytest.raises(ValidationError, match="chi_alpha=0"):
        quiet(chi_alpha=0)
    with pytest.raises(ValidationError, match="divergence='kl'"):
        quiet(divergence="kl")
    with pytest.raises(ValidationError, match="regularize_mixed=True with online=False"):
        quiet(regularize_mixed=True)
    with pytest.raises(ValidationError, match="online=True: demonstration 0 has an empty prompt"):
        iq_learn.train(model, tokenizer, [{"text": "hello world"}], quiet(online=True))
    long = [{"prompt": "hello", "completion": " world"}, {"prompt": "the film was the film was", "completion": " x"}]
    result = iq_learn.train(model, tokenizer, long + ROWS[1:2], quiet(max_length=8, max_steps=1))
    assert result.n_dropped == 1 and result.n_truncated == 1  # one prompt too long; one completion cut (no EOS)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(ValidationError, match="step 0: the loss is nan"):
        iq_learn.train(model, tokenizer, ROWS, quiet(), output_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "final").exists()


def test_lora_trains_only_adapters(make_model, tokenizer):
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(make_model(len(tokenizer)), peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True, lora_dropout=0.0))
    before = {k: v.clone() for k, v in model.named_parameters()}
    result = iq_learn.train(model, tokenizer, ROWS, quiet(online=True, max_new_tokens=3, batch_size=3, epochs=2,
                                                          learning_rate=1e-2))
    changed = {k for k, v in result.model.named_parameters() if not torch.equal(v, before[k])}
    assert changed and all("lora_" in k for k in changed) and any("lora_B" in k for k in changed)
