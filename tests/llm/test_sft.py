from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from irlhf.core.errors import ValidationError
from irlhf.llm import sft
from irlhf.llm.logps import completion_logps
from irlhf.llm.tokenize import Encoded, collate, encode

torch.set_num_threads(1)

ROWS = [{"prompt": "the film was", "completion": " great"},
        {"prompt": "the acting was", "completion": " awful; i loved the music"},
        {"prompt": "hello", "completion": " world"}]


def quiet(**kw):
    return sft.Config(progress=False, **kw)


def fresh(make_model, tokenizer, seed=0):
    return make_model(len(tokenizer), seed=seed)


def test_load_sft_data_forms_and_bad_input(tmp_path):
    data = sft.load_sft_data(ROWS)
    assert data.prompt[0] == "the film was" and data.completion[2] == " world" and len(data) == 3
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in ("a b", "c d")))
    text = sft.load_sft_data(path)
    assert text.prompt == ("", "") and text.completion == ("a b", "c d")
    chat = sft.load_sft_data([{"prompt": [{"role": "user", "content": "hi"}], "completion": " yo"}])
    assert chat.prompt[0][0]["role"] == "user"
    with pytest.raises(ValidationError, match="row 1"):
        sft.load_sft_data([{"text": "a"}, {"prompt": "b", "completion": "c"}])
    with pytest.raises(ValidationError, match="completion\\[0\\]"):
        sft.load_sft_data([{"prompt": "a", "completion": ""}])
    with pytest.raises(ValidationError, match="no rows"):
        sft.load_sft_data([])
    with pytest.raises(ValidationError, match="prompt\\[0\\]"):
        sft.load_sft_data([{"prompt": 3, "completion": "c"}])


def test_loss_is_the_mean_nll_over_completion_tokens(make_model, tokenizer):
    model = fresh(make_model, tokenizer)
    enc = [encode(tokenizer, r["prompt"], r["completion"]) for r in ROWS[:2]]
    batch = collate(enc, 0)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logp = torch.log_softmax(logits.double(), -1)
    by_hand, n = 0.0, 0
    for row, e in enumerate(enc):
        for t in range(e.n_prompt, len(e.input_ids)):
            by_hand -= float(logp[row, t - 1, e.input_ids[t]])
            n += 1
    expected = by_hand / n
    # the same through the shared log-prob code
    lp = completion_logps(logits, batch["input_ids"], batch["completion_mask"])
    assert float(-lp.sum() / batch["completion_mask"].sum()) == pytest.approx(expected, abs=1e-5)
    result = sft.train(model, tokenizer, ROWS[:2], quiet(batch_size=2, max_steps=1))
    assert result.history[0]["loss"] == pytest.approx(expected, abs=1e-5)
    assert result.history[0]["num_tokens"] == n


def test_prompt_tokens_are_masked(make_model, tokenizer):
    model = fresh(make_model, tokenizer)
    enc = encode(tokenizer, "the film was", " great")
    batch = collate([enc], 0)
    nll, scored, _ = sft.token_losses(model, batch)
    assert scored.sum() == len(enc.input_ids) - enc.n_prompt and (nll[~scored] == 0).all()
    # the loss's gradient w.r.t. the logits that predict prompt tokens is zero (only completion is scored)
    logits = model(input_ids=batch["input_ids"]).logits.detach().requires_grad_(True)
    fixed = lambda **kw: SimpleNamespace(logits=logits)  # noqa: E731  a "model" returning these logits
    sft.token_losses(fixed, batch)[0].sum().backward()
    assert (logits.grad[0, :enc.n_prompt - 1] == 0).all() and (logits.grad[0, enc.n_prompt - 1:-1] != 0).any(-1).all()
    assert (logits.grad[0, -1] == 0).all()  # the last position predicts nothing


def test_short_run_lowers_the_loss(tmp_path, make_model, tokenizer):
    model = fresh(make_model, tokenizer)
    result = sft.train(model, tokenizer, ROWS * 4, quiet(batch_size=4, epochs=8, learning_rate=3e-3,
                                                         lr_schedule="constant", log_every=4, save_steps=12),
                       output_dir=tmp_path, eval_data=ROWS)
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]
    assert result.history[-1]["mean_token_accuracy"] > result.history[0]["mean_token_accuracy"]
    assert result.history[-1]["eval/loss"] < result.history[0]["loss"]
    assert {"loss", "num_tokens", "mean_token_accuracy", "learning_rate", "grad_norm"} <= set(result.history[0])
    assert (tmp_path / "final" / "model.safetensors").exists() and (tmp_path / "step-12").is_dir()
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == len(result.history)


def test_text_rows_score_all_but_the_first_token(make_model, tokenizer):
    model = fresh(make_model, tokenizer)
    enc = encode(tokenizer, "", "hello world")
    assert enc.n_prompt == 0
    _, scored, _ = sft.token_losses(model, collate([enc], 0))
    assert int(scored.sum()) == len(enc.input_ids) - 1


def test_packing_layout():
    items = [Encoded((10, 11, 12, 2), 2), Encoded((20, 21, 2), 1), Encoded((30, 31, 32, 33, 2), 0)]
    batch = sft.pack(items, 5, pad_id=0)
    assert batch["input_ids"].tolist() == [[10, 11, 12, 2, 20], [21, 2, 30, 31, 32], [33, 2, 0, 0, 0]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 0], [0, 1, 0, 1, 2], [0, 1, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    # completion tokens only; an example's first token is never scored
    assert batch["completion_mask"].int().tolist() == [[0, 0, 1, 1, 0], [1, 1, 0, 1, 1], [1, 1, 0, 0, 0]]


def test_packed_training_runs(make_model, tokenizer):
    model = fresh(make_model, tokenizer)
    result = sft.train(model, tokenizer, ROWS * 2, quiet(batch_size=2, max_steps=2, max_length=16, packing=True))
    assert len(result.history) == 2 and result.history[0]["num_tokens"] > 0


def test_lora_trains_only_adapters(make_model, tokenizer):
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(fresh(make_model, tokenizer), peft.LoraConfig(r=4, target_modules=["c_attn"]))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    sft.train(model, tokenizer, ROWS, quiet(batch_size=3, max_steps=2, learning_rate=1e-2))
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n for n in changed)


def test_bad_config_and_truncation(make_model, tokenizer):
    with pytest.raises(ValidationError, match="learning_rate=-1"):
        sft.Config(learning_rate=-1)
    with pytest.raises(ValidationError, match="packing=True with max_length=None"):
        sft.Config(packing=True, max_length=None)
    with pytest.raises(ValidationError, match="max_length=1"):
        sft.Config(max_length=1)
    with pytest.raises(ValidationError, match="all 2 examples dropped"):
        sft.train(fresh(make_model, tokenizer), tokenizer, ROWS[:2], quiet(max_length=2, max_prompt_length=2))
