"""DPO: loss values by hand, gradient signs, length grouping (same numbers as one padded batch), reference log-probs,
a short run that learns, LoRA, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch

from irlhf.core.errors import ValidationError
from irlhf.data.text import TextPairs
from irlhf.llm import dpo
from irlhf.llm.logps import sequence_logps
from irlhf.llm.reward import length_groups
from irlhf.llm.tokenize import collate_pairs, encode_pairs, pad_id_of

torch.set_num_threads(1)

# h = (pi_w - ref_w) - (pi_l - ref_l) = [1, -1, 3]; with beta = 0.5, beta h = [0.5, -0.5, 1.5]
PI_W = torch.tensor([-1.0, -2.0, -0.5])
PI_L = torch.tensor([-2.0, -1.0, -3.5])
REF_W = torch.tensor([-1.5, -1.5, -1.5])
REF_L = torch.tensor([-1.5, -1.5, -1.5])
# -log sigmoid(x) = log(1 + exp(-x)): at 0.5, -0.5, 1.5
NLS = {0.5: 0.4740769841801067, -0.5: 0.9740769841801067, 1.5: 0.2014132779827524}


def tiny_pairs(n: int = 16) -> TextPairs:
    prompts = ["the film was", "the plot was", "the acting was", "the music was"]
    good = [" great", " great and i loved the music!", " great greatness", " loved"]
    bad = [" dull", " awful", " dull and awful", " dullness"]
    return TextPairs(tuple(prompts[k % 4] for k in range(n)), tuple(good[(k // 4) % 4] for k in range(n)),
                     tuple(bad[(k // 4) % 4] for k in range(n)))


def config(**changes) -> dpo.Config:
    base = dict(learning_rate=1e-3, batch_size=8, epochs=1, max_length=32, log_every=1, progress=False,
                device="cpu", beta=0.5)
    base.update(changes)
    return dpo.Config(**base)


# -- loss ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("loss_type, eps, expected", [
    ("sigmoid", 0.0, [NLS[0.5], NLS[-0.5], NLS[1.5]]),
    # conservative DPO: (1 - eps) (-log sig(bh)) + eps (-log sig(-bh)); -log sig(-x) = x + (-log sig(x))
    ("sigmoid", 0.2, [0.8 * NLS[0.5] + 0.2 * NLS[-0.5], 0.8 * NLS[-0.5] + 0.2 * NLS[0.5],
                      0.8 * NLS[1.5] + 0.2 * (1.5 + NLS[1.5])]),
    ("robust", 0.0, [NLS[0.5], NLS[-0.5], NLS[1.5]]),
    ("robust", 0.2, [(0.8 * NLS[0.5] - 0.2 * NLS[-0.5]) / 0.6, (0.8 * NLS[-0.5] - 0.2 * NLS[0.5]) / 0.6,
                     (0.8 * NLS[1.5] - 0.2 * (1.5 + NLS[1.5])) / 0.6]),
    ("hinge", 0.0, [0.5, 1.5, 0.0]),
    ("ipo", 0.0, [0.0, 4.0, 4.0]),  # (h - 1/(2 beta))^2 = (h - 1)^2
])
def test_loss_golden_values(loss_type, eps, expected):
    losses, chosen_rewards, rejected_rewards = dpo.loss(PI_W, PI_L, REF_W, REF_L, beta=0.5, loss_type=loss_type,
                                                        label_smoothing=eps)
    torch.testing.assert_close(losses, torch.tensor(expected), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(chosen_rewards, torch.tensor([0.25, -0.25, 0.5]))
    torch.testing.assert_close(rejected_rewards, torch.tensor([-0.25, 0.25, -1.0]))


def test_hand_numbers_agree_with_closed_form():
    for x, value in NLS.items():
        assert value == pytest.approx(math.log1p(math.exp(-x)), abs=1e-12)


def test_reference_free_drops_reference_terms():
    losses, chosen_rewards, _ = dpo.loss(PI_W, PI_L, REF_W + 7.0, REF_L - 3.0, beta=0.5, reference_free=True)
    # h = pi_w - pi_l = [1, -1, 3]: the same numbers as with the equal references above
    torch.testing.assert_close(losses, torch.tensor([NLS[0.5], NLS[-0.5], NLS[1.5]]))
    torch.testing.assert_close(chosen_rewards, 0.5 * PI_W)


@pytest.mark.parametrize("loss_type", dpo.LOSS_TYPES)
def test_gradient_raises_chosen_lowers_rejected(loss_type):
    pi_w, pi_l = PI_W.clone().requires_grad_(), PI_L.clone().requires_grad_()
    losses, chosen_rewards, _ = dpo.loss(pi_w, pi_l, REF_W, REF_L, beta=0.5, loss_type=loss_type,
                                         label_smoothing=0.1 if loss_type in ("sigmoid", "robust") else 0.0)
    losses[:2].sum().backward()  # rows where h = 1 and -1 (the hinge is active, ipo's target 1 is not exceeded)
    assert not chosen_rewards.requires_grad
    # descent direction -grad: up for log pi(y_w), down for log pi(y_l) (ipo row 0 sits at its optimum)
    rows = [1] if loss_type == "ipo" else [0, 1]
    assert (pi_w.grad[rows] < 0).all() and (pi_l.grad[rows] > 0).all()
    torch.testing.assert_close(pi_w.grad, -pi_l.grad)


def test_loss_rejects_bad_input():
    with pytest.raises(ValidationError, match="loss_type='dpo'"):
        dpo.loss(PI_W, PI_L, REF_W, REF_L, loss_type="dpo")
    with pytest.raises(ValidationError, match="beta=0"):
        dpo.loss(PI_W, PI_L, REF_W, REF_L, beta=0)
    with pytest.raises(ValidationError, match="label_smoothing=0.5"):
        dpo.loss(PI_W, PI_L, REF_W, REF_L, label_smoothing=0.5)
    with pytest.raises(ValidationError, match="ref_rejected_logps"):
        dpo.loss(PI_W, PI_L, REF_W, REF_L[:2])
    # values are not checked (no device sync in the hot loss): a NaN log-prob gives that pair a NaN loss, and
    # train stops on it (test_train_stops_on_a_non_finite_loss)
    losses, _, _ = dpo.loss(PI_W, torch.tensor([0.0, float("nan"), 0.0]), REF_W, REF_L)
    assert torch.isnan(losses[1]) and torch.isfinite(losses[[0, 2]]).all()


def test_config_rejects_bad_values():
    with pytest.raises(ValidationError, match="loss_type='kto'"):
        dpo.Config(loss_type="kto")
    with pytest.raises(ValidationError, match="beta=-0.1"):
        dpo.Config(beta=-0.1)
    with pytest.raises(ValidationError, match="beta=0"):
        dpo.Config(beta=0)
    with pytest.raises(ValidationError, match="label_smoothing=0.6"):
        dpo.Config(label_smoothing=0.6)
    with pytest.raises(ValidationError, match="label_smoothing=-0.1"):
        dpo.Config(label_smoothing=-0.1)
    with pytest.raises(ValidationError, match="label_smoothing=0.1.*hinge"):
        dpo.Config(label_smoothing=0.1, loss_type="hinge")
    with pytest.raises(ValidationError, match="batch_size=0"):
        dpo.Config(batch_size=0)
    assert dpo.Config.from_dict(dpo.Config(beta=0.3).to_dict()).beta == 0.3


# -- length groups: less padding, the same numbers --------------------------------------------------------------
def uneven_pairs() -> TextPairs:
    """Rows of very different lengths (3 to ~90 tokens), chosen and rejected of a pair too."""
    return TextPairs(("the film was", "the plot was " * 6, "i", "the music was"),
                     (" great", " great and i loved the music!" * 4, " loved", " great greatness" * 5),
                     (" dull and awful" * 6, " dull", " awful", " dullness"))


def test_grouped_logps_equal_one_padded_batch(tokenizer, make_model):
    model = make_model(len(tokenizer))
    chosen, rejected, _ = encode_pairs(tokenizer, uneven_pairs(), config(max_length=128).tokenize_options)
    lengths = [len(e.input_ids) for e in chosen + rejected]
    assert max(lengths) > 8 * min(lengths) and len(length_groups(lengths)) > 1  # the grouping does split them
    with torch.no_grad():
        plain = sequence_logps(model, collate_pairs(chosen, rejected, pad_id_of(tokenizer)))
        grouped = dpo.grouped_logps(dpo.GroupedLogps(model), chosen + rejected, pad_id_of(tokenizer))
    torch.testing.assert_close(grouped, plain, rtol=1e-5, atol=1e-5)


def test_grouped_step_has_the_loss_and_gradients_of_one_padded_batch(tokenizer, make_model):
    chosen, rejected, _ = encode_pairs(tokenizer, uneven_pairs(), config(max_length=128).tokenize_options)
    n, pad = len(chosen), pad_id_of(tokenizer)
    ref = make_model(len(tokenizer), seed=1)  # a reference != the policy: the loss is not log 2, gradients not 0
    with torch.no_grad():
        ref_logps = sequence_logps(ref, collate_pairs(chosen, rejected, pad))

    def step(grouped: bool):
        model = make_model(len(tokenizer)).train()
        if grouped:
            logps = dpo.grouped_logps(dpo.GroupedLogps(model), chosen + rejected, pad)
        else:
            logps = sequence_logps(model, collate_pairs(chosen, rejected, pad))
        losses, _, _ = dpo.loss(logps[:n], logps[n:], ref_logps[:n], ref_logps[n:], beta=0.5)
        losses.mean().backward()
        return losses.detach(), {k: p.grad for k, p in model.named_parameters()}

    (plain_losses, plain_grads), (grouped_losses, grouped_grads) = step(False), step(True)
    assert abs(float(plain_losses.mean()) - math.log(2)) > 1e-3
    torch.testing.assert_close(grouped_losses, plain_losses, rtol=1e-5, atol=1e-5)
    assert plain_grads.keys() == grouped_grads.keys()
    for key, grad in plain_grads.items():
        torch.testing.assert_close(grouped_grads[key], grad, rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.usefixtures("torch_warns_every_time")
def test_train_step_matches_one_padded_batch(tokenizer, make_model):
    data = uneven_pairs()
    chosen, rejected, _ = encode_pairs(tokenizer, data, config(max_length=128).tokenize_options)
    n, batch = len(chosen), collate_pairs(chosen, rejected, pad_id_of(tokenizer))
    ref = make_model(len(tokenizer), seed=1)
    result = dpo.train(make_model(len(tokenizer)), tokenizer, data, config(max_length=128, batch_size=n, max_steps=1),
                       ref_model=ref)
    with torch.no_grad():
        ref_logps = sequence_logps(ref, batch)
    torch.testing.assert_close(result.ref_chosen_logps, ref_logps[:n], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(result.ref_rejected_logps, ref_logps[n:], rtol=1e-5, atol=1e-5)
    model = make_model(len(tokenizer)).train()
    logps = sequence_logps(model, batch)
    losses, _, _ = dpo.loss(logps[:n], logps[n:], ref_logps[:n], ref_logps[n:], beta=0.5)
    losses.mean().backward()
    grad_norm = float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]))
    first = result.history[0]
    assert first["loss"] == pytest.approx(losses.mean().item(), rel=1e-5)
    assert first["grad_norm"] == pytest.approx(grad_norm, rel=1e-5)
    assert first["logps/chosen"] == pytest.approx(logps[:n].mean().item(), rel=1e-5)


# -- training ------------------------------------------------------------------------------------------------
def test_first_step_with_reference_equal_to_policy(tokenizer, make_model):
    result = dpo.train(make_model(len(tokenizer)), tokenizer, tiny_pairs(8), config(max_steps=1))
    first = result.history[0]
    assert first["step"] == 1
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-6)
    for name in ("rewards/chosen", "rewards/rejected", "rewards/margins"):
        assert first[name] == pytest.approx(0.0, abs=1e-6)
    assert first["rewards/accuracies"] <= 0.5  # margins are ~0 (float noise) on every row
    assert first["logps/chosen"] < 0 and first["logps/rejected"] < 0
    assert set(dpo.METRICS) <= set(first) and {"epoch", "grad_norm", "learning_rate"} <= set(first)


def test_reference_logps_match_model_and_are_cached(tokenizer, make_model, monkeypatch):
    from irlhf.llm import pairwise

    model = make_model(len(tokenizer))
    ref = make_model(len(tokenizer), seed=1)
    calls = []
    score = pairwise.sequence_logps

    def counted(m, batch, **kw):  # (the reference?, rows 2k and 2k + 1 start alike: a pair side by side)
        ids = batch["input_ids"]
        calls.append((m is ref, bool(torch.equal(ids[0::2, :3], ids[1::2, :3]))))
        return score(m, batch, **kw)

    monkeypatch.setattr(pairwise, "sequence_logps", counted)
    data = tiny_pairs(16)
    result = dpo.train(model, tokenizer, data, config(epochs=3), ref_model=ref)
    # 16 pairs / batch 8 = 2 reference passes, each over 8 pairs with a pair's rows adjacent; none in the 6 steps
    is_ref = [is_ref for is_ref, _ in calls]
    assert result.steps == 6 and is_ref[:2] == [True, True] and not any(is_ref[2:]) and len(is_ref) >= 8
    assert all(adjacent for _, adjacent in calls[:2])
    chosen, rejected, _ = encode_pairs(tokenizer, data, config().tokenize_options)
    expected = sequence_logps(ref, collate_pairs(chosen, rejected, pad_id_of(tokenizer)))
    torch.testing.assert_close(result.ref_chosen_logps, expected[:16], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(result.ref_rejected_logps, expected[16:], rtol=1e-5, atol=1e-5)


def test_short_run_learns_the_preferences(tokenizer, make_model, tmp_path):
    data = tiny_pairs(16)
    result = dpo.train(make_model(len(tokenizer)), tokenizer, data, config(epochs=4, save_steps=4),
                       output_dir=tmp_path, eval_data=data)
    history = [row for row in result.history if "loss" in row]
    assert [row["step"] for row in history] == list(range(1, 9))
    assert history[-1]["rewards/margins"] > history[0]["rewards/margins"] + 0.5
    assert history[-1]["loss"] < history[0]["loss"] - 0.2
    final = result.history[-1]
    assert final["eval/rewards/accuracies"] == 1.0 and final["eval/rewards/margins"] > 1.0
    assert final["eval/loss"] < math.log(2)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == result.history
    assert (tmp_path / "final" / "model.safetensors").exists() and (tmp_path / "step-4").is_dir()


def test_runs_are_reproducible(tokenizer, make_model):
    runs = [dpo.train(make_model(len(tokenizer)), tokenizer, tiny_pairs(8), config(max_steps=2)).history
            for _ in range(2)]
    assert runs[0] == runs[1]


@pytest.mark.parametrize("loss_type", ["robust", "hinge", "ipo"])
def test_other_losses_train(tokenizer, make_model, loss_type):
    result = dpo.train(make_model(len(tokenizer)), tokenizer, tiny_pairs(8), config(loss_type=loss_type, epochs=3))
    assert result.history[-1]["rewards/margins"] > result.history[0]["rewards/margins"]


def test_lora_trains_adapters_and_uses_base_as_reference(tokenizer, make_model):
    peft = pytest.importorskip("peft")
    base = make_model(len(tokenizer))
    data = tiny_pairs(8)
    chosen, rejected, _ = encode_pairs(tokenizer, data, config().tokenize_options)
    batch = collate_pairs(chosen, rejected, pad_id_of(tokenizer))
    with torch.no_grad():
        base_logps = sequence_logps(base, batch)
    model = peft.get_peft_model(base, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"],
                                                      lora_dropout=0.0, fan_in_fan_out=True,
                                                      init_lora_weights=False))  # adapters != 0 from the start
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    with torch.no_grad():
        adapted = sequence_logps(model, batch)
    assert not torch.allclose(adapted, base_logps)  # so a matching reference must come from disabled adapters
    result = dpo.train(model, tokenizer, data, config(max_steps=2))
    torch.testing.assert_close(result.ref_chosen_logps, base_logps[:8], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(result.ref_rejected_logps, base_logps[8:], rtol=1e-5, atol=1e-5)
    changed = {k for k, v in result.model.named_parameters() if not torch.equal(v, before[k])}
    assert changed and all("lora_" in k for k in changed)


def test_reference_free_trains(tokenizer, make_model):
    result = dpo.train(make_model(len(tokenizer)), tokenizer, tiny_pairs(8), config(reference_free=True))
    assert (result.ref_chosen_logps == 0).all()
    first = result.history[0]  # rewards are beta * log pi, not 0
    assert first["rewards/chosen"] == pytest.approx(0.5 * first["logps/chosen"], rel=1e-5)


def test_train_rejects_bad_data(tokenizer, model):
    with pytest.raises(ValidationError, match="no rows"):
        dpo.train(model, tokenizer, TextPairs((), (), ()), config())
    with pytest.raises(ValidationError, match="data: .*expected irlhf.data.text.TextPairs"):
        dpo.train(model, tokenizer, [{"prompt": "a", "chosen": "b", "rejected": "c"}], config())
    with pytest.raises(ValidationError, match="dropped"):
        dpo.train(model, tokenizer, TextPairs(("the film was " * 20,), (" great",), (" dull",)),
                  config(max_length=4))
    with pytest.raises(ValidationError, match="config"):
        dpo.train(model, tokenizer, tiny_pairs(2), {"beta": 0.1})


@pytest.mark.usefixtures("torch_warns_every_time")
def test_train_stops_on_a_non_finite_loss(tokenizer, make_model):
    model = make_model(len(tokenizer))
    with torch.no_grad():
        model.transformer.ln_f.weight.fill_(float("nan"))  # every log-prob, hence the loss, is NaN
    with pytest.raises(ValidationError, match="step 0: the loss is nan; lower the learning rate"):
        dpo.train(model, tokenizer, tiny_pairs(8), config(max_steps=1, reference_free=True))



def test_dropout_is_off_by_default_so_step_zero_is_log_2(tokenizer):
    """A policy with dropout 0.1, equal to its reference: loss log 2 at step 0 only when dropout is disabled."""
    from transformers import GPT2Config, GPT2LMHeadModel

    def dropout_model():
        torch.manual_seed(0)
        return GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                                          resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1))

    first = dpo.train(dropout_model(), tokenizer, tiny_pairs(8), config(max_steps=1)).history[0]
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-6)
    noisy = dpo.train(dropout_model(), tokenizer, tiny_pairs(8), config(max_steps=1, disable_dropout=False))
    assert abs(noisy.history[0]["loss"] - math.log(2)) > 1e-3
