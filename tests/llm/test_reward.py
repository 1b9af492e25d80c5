from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from irlhf.core.errors import ValidationError
from irlhf.data.preferences import Rankings
from irlhf.data.text import TextPairs, TextRankings
from irlhf.llm import reward
from irlhf.llm.tokenize import TokenizeOptions, collate, encode
from irlhf.preference import plackett_luce
from irlhf.preference.bradley_terry import loss as bt_loss

torch.set_num_threads(1)

PAIRS = TextPairs(("the film was", "the plot was", "i loved", "the acting was"),
                  (" great", " great and fun", " the music", " great"),
                  (" awful", " dull", " nothing", " awful; dull"))


@pytest.fixture()
def rm(model, tokenizer):
    return reward.make_reward_model(model, tokenizer, seed=1)


def quiet(**kw):
    return reward.Config(progress=False, **kw)


# -- the model -----------------------------------------------------------------------------------
def test_reward_model_copies_backbone_and_matches_hf_pooling(model, tokenizer, rm):
    for name, p in model.transformer.state_dict().items():
        assert torch.equal(rm.transformer.state_dict()[name], p)
    # unpadded batch (equal lengths): HF's pad-token pooling and ours read the same last token
    enc = [encode(tokenizer, "the film was", c) for c in (" great", " dull")]
    assert len(enc[0].input_ids) == len(enc[1].input_ids)
    batch = collate(enc, 0)
    with torch.no_grad():
        ours = reward.rewards(rm, batch)
        theirs = rm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    assert ours.dtype == torch.float32 and ours.shape == (2,)


def test_reward_reads_last_real_token_even_when_pad_is_eos(tokenizer, rm):
    rm.config.pad_token_id = tokenizer.eos_token_id  # HF's detection would skip the final EOS
    short = encode(tokenizer, "the film was", " great")
    long = encode(tokenizer, "the film was", " great and the plot was dull")
    with torch.no_grad():
        alone = reward.rewards(rm, collate([short], 0))
        padded = reward.rewards(rm, collate([short, long], tokenizer.eos_token_id))
    torch.testing.assert_close(padded[0], alone[0], rtol=0, atol=1e-5)


def test_make_reward_model_from_directory_and_config(tmp_path, model, tokenizer):
    model.save_pretrained(tmp_path / "lm")
    rm = reward.make_reward_model(tmp_path / "lm", tokenizer)
    assert rm.config.num_labels == 1 and rm.config.pad_token_id == 0
    torch.testing.assert_close(rm.transformer.wte.weight, model.transformer.wte.weight)
    assert reward.make_reward_model(model.config).config.num_labels == 1
    with pytest.raises(ValidationError, match="source="):
        reward.make_reward_model(tmp_path / "missing")
    with pytest.raises(ValidationError, match="expected a Hugging Face"):
        reward.RewardModel(torch.nn.Linear(2, 1))


# -- the loss ------------------------------------------------------------------------------------
def test_pairwise_loss_hand_computed_with_margin_and_centring():
    r_w, r_l, m = torch.tensor([1.0, -0.5]), torch.tensor([0.0, 0.5]), torch.tensor([0.5, 0.0])
    expected = torch.tensor([-math.log(1 / (1 + math.exp(-0.5))), -math.log(1 / (1 + math.exp(1.0)))])
    torch.testing.assert_close(reward.pairwise_loss(r_w, r_l, m), expected)
    centred = reward.pairwise_loss(r_w, r_l, m, center_rewards_coefficient=0.1)
    torch.testing.assert_close(centred, expected + 0.1 * torch.tensor([1.0, 0.0]))


def test_plackett_luce_loss_matches_log_likelihood_and_bradley_terry():
    theta = np.array([0.3, -1.2, 0.8, 0.1])
    rankings = [[2, 0, 1, 3], [1, 3, 0]]
    scores = torch.tensor([[theta[i] for i in r] + [0.0] * (4 - len(r)) for r in rankings], dtype=torch.float64)
    mask = torch.tensor([[True] * len(r) + [False] * (4 - len(r)) for r in rankings])
    total = plackett_luce.loss(scores, mask, reduction="sum")
    assert float(total) == pytest.approx(-plackett_luce.log_likelihood(theta, Rankings(rankings, 4)), abs=1e-12)
    # the first row by hand
    s = theta[[2, 0, 1, 3]]
    by_hand = -sum(s[k] - math.log(np.exp(s[k:]).sum()) for k in range(4))
    assert float(plackett_luce.loss(scores, mask, reduction="none")[0]) == pytest.approx(by_hand, abs=1e-12)
    # K = 2 is Bradley-Terry; gradients stay finite with masked entries
    two = torch.tensor([[0.7, -0.2], [0.1, 0.4]], requires_grad=True)
    torch.testing.assert_close(plackett_luce.loss(two), bt_loss(two[:, 0], two[:, 1], torch.ones(2)))
    masked = scores.clone().requires_grad_(True)
    plackett_luce.loss(masked, mask).backward()
    assert torch.isfinite(masked.grad).all() and masked.grad[1, 3] == 0


def test_plackett_luce_loss_bad_input():
    with pytest.raises(ValidationError, match="scores"):
        plackett_luce.loss(torch.zeros(3))
    with pytest.raises(ValidationError, match="mask\\[0\\]"):
        plackett_luce.loss(torch.zeros(1, 3), torch.tensor([[True, False, False]]))
    with pytest.raises(ValidationError, match="NaN"):
        plackett_luce.loss(torch.tensor([[0.0, float("nan")]]))


# -- training ------------------------------------------------------------------------------------
def test_first_step_loss_is_the_bradley_terry_mean(tokenizer, rm):
    r = reward.as_reward_fn(rm, tokenizer)
    r_w, r_l = r(PAIRS.prompt, PAIRS.chosen), r(PAIRS.prompt, PAIRS.rejected)
    expected = np.mean(np.log1p(np.exp(-(r_w - r_l))))
    result = reward.train(rm, tokenizer, PAIRS, quiet(batch_size=4, max_steps=1))
    assert result.history[0]["loss"] == pytest.approx(expected, abs=1e-5)
    assert result.history[0]["accuracy"] == pytest.approx(np.mean(r_w > r_l))
    assert result.history[0]["rewards/margins"] == pytest.approx(np.mean(r_w - r_l), abs=1e-5)


def test_margin_rows_shift_the_loss(tokenizer, model):
    with_margin = TextPairs(PAIRS.prompt, PAIRS.chosen, PAIRS.rejected, margin=np.full(4, 2.0))
    base = reward.train(reward.make_reward_model(model, tokenizer), tokenizer, PAIRS, quiet(batch_size=4, max_steps=1))
    shifted = reward.train(reward.make_reward_model(model, tokenizer), tokenizer, with_margin,
                           quiet(batch_size=4, max_steps=1))
    ignored = reward.train(reward.make_reward_model(model, tokenizer), tokenizer, with_margin,
                           quiet(batch_size=4, max_steps=1, use_margin=False))
    assert shifted.history[0]["loss"] > base.history[0]["loss"] + 0.5
    assert ignored.history[0]["loss"] == pytest.approx(base.history[0]["loss"], abs=1e-6)


def test_training_separates_chosen_from_rejected(tmp_path, tokenizer, rm):
    result = reward.train(rm, tokenizer, PAIRS, quiet(batch_size=4, epochs=30, learning_rate=3e-3,
                                                      lr_schedule="constant", log_every=5, save_steps=15),
                          output_dir=tmp_path, eval_data=PAIRS)
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]
    assert result.history[-1]["eval/accuracy"] == 1.0
    assert reward.evaluate(result.model, tokenizer, PAIRS)["accuracy"] == 1.0
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["step"] == 1 and (tmp_path / "final" / "model.safetensors").exists()
    assert (tmp_path / "step-15" / "config.json").exists()


def test_rankings_train_with_plackett_luce(tokenizer, rm):
    data = TextRankings(("the film was", "i loved"), ((" awful", " great", " dull"), (" nothing", " the music")),
                        ((1, 2, 0), (1, 0)))
    r = reward.as_reward_fn(rm, tokenizer)
    s0 = torch.tensor(r(["the film was"] * 3, [" great", " dull", " awful"]))
    s1 = torch.tensor(r(["i loved"] * 2, [" the music", " nothing"]))
    scores = torch.stack([s0, torch.cat([s1, torch.zeros(1, dtype=torch.float64)])])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    expected = float(plackett_luce.loss(scores, mask))
    result = reward.train(rm, tokenizer, data, quiet(batch_size=2, max_steps=1))
    assert result.history[0]["loss"] == pytest.approx(expected, abs=1e-5)


def test_lora_trains_only_adapters(tokenizer, rm):
    peft = pytest.importorskip("peft")
    lora = peft.get_peft_model(rm, peft.LoraConfig(r=4, target_modules=["c_attn"], task_type="SEQ_CLS"))
    before = {n: p.detach().clone() for n, p in lora.named_parameters()}
    reward.train(lora, tokenizer, PAIRS, quiet(batch_size=4, max_steps=2, learning_rate=1e-2))
    changed = {n for n, p in lora.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n or "modules_to_save" in n for n in changed)


def test_as_reward_fn_batches_and_returns_float64(tokenizer, rm):
    prompts, completions = ["the film was"] * 5, [" great", " dull", " awful", " great and fun", " ok"]
    full = reward.as_reward_fn(rm, tokenizer)(prompts, completions)
    batched = reward.as_reward_fn(rm, tokenizer, batch_size=2)(prompts, completions)
    assert full.dtype == np.float64 and full.shape == (5,)
    np.testing.assert_allclose(batched, full, atol=1e-5)
    with pytest.raises(ValidationError, match="equal lengths"):
        reward.as_reward_fn(rm, tokenizer)(prompts, completions[:2])


def test_as_reward_fn_refuses_a_tokenizer_the_model_was_not_trained_with(tokenizer, make_model):
    small = reward.make_reward_model(make_model(len(tokenizer) - 10), tokenizer)  # embedding of 10 rows fewer
    with pytest.raises(ValidationError, match=f"tokenizer: {len(tokenizer)} tokens, but the reward model's embedding "
                                              f"has {len(tokenizer) - 10} rows"):
        reward.as_reward_fn(small, tokenizer)


def test_bad_input(tokenizer, rm):
    with pytest.raises(ValidationError, match="batch_size=0"):
        reward.Config(batch_size=0)
    with pytest.raises(ValidationError, match="lr_schedule='cosine'"):
        reward.Config(lr_schedule="cosine")
    with pytest.raises(ValidationError, match="center_rewards_coefficient=nan"):
        reward.Config(center_rewards_coefficient=float("nan"))
    with pytest.raises(ValidationError, match="data"):
        reward.train(rm, tokenizer, [{"prompt": "a"}], quiet())
    with pytest.raises(ValidationError, match="all 4 pairs dropped"):
        reward.train(rm, tokenizer, PAIRS, quiet(max_length=2, max_prompt_length=2, add_eos=False))
    with pytest.raises(ValidationError, match="attention_mask"):
        reward.rewards(rm, {"input_ids": torch.zeros(1, 2, dtype=torch.long),
                            "attention_mask": torch.zeros(1, 2, dtype=torch.long)})
    with pytest.raises(ValidationError, match="unknown field"):
        reward.Config.from_dict({"lerning_rate": 1.0})
    assert reward.Config().tokenize_options() == TokenizeOptions(512, None, "auto", True)


def test_length_grouped_rewards_equal_one_padded_batch(tokenizer, rm):
    texts = [" great", " great and the plot was dull and the acting was awful", " ok", " the music", " dull!"]
    items = [encode(tokenizer, "the film was", t) for t in texts]
    groups = reward.length_groups([len(e.input_ids) for e in items], overhead=0.0)
    assert len(groups) > 1 and sorted(np.concatenate(groups).tolist()) == list(range(5))
    with torch.no_grad():
        grouped = reward.encoded_rewards(rm, items, 0, torch.device("cpu"))
        single = reward.rewards(rm, collate(items, 0))
    torch.testing.assert_close(grouped, single, rtol=0, atol=1e-5)
    assert [len(g) for g in reward.length_groups([5, 5, 5, 5])] == [4]  # nothing to gain: one batch


def test_reward_fn_scores_an_empty_completion_as_prompt_then_eos(tokenizer, model):
    from irlhf.llm import reward as R

    rm = R.make_reward_model(model, tokenizer, seed=0)
    fn = R.as_reward_fn(rm, tokenizer)
    empty, eos_only = fn(["the film"], [""]), fn(["the film"], [tokenizer.eos_token])
    assert empty.shape == (1,) and empty[0] == eos_only[0]
