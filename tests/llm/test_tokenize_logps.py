from __future__ import annotations

import math

import pytest
import torch

from irlhf.core.errors import ValidationError
from irlhf.data.text import TextPairs
from irlhf.llm.logps import completion_logps, gather_logps, sequence_logps
from irlhf.llm.tokenize import TokenizeOptions, collate, collate_pairs, encode, encode_pairs, pad_id_of

NO_SPECIALS = TokenizeOptions(add_bos=False, add_eos=False)


def test_encode_clean_boundary(tokenizer):
    enc = encode(tokenizer, "great", "ness", NO_SPECIALS)
    assert list(enc.input_ids) == tokenizer("greatness", add_special_tokens=False)["input_ids"]
    assert list(enc.input_ids[:enc.n_prompt]) == tokenizer("great", add_special_tokens=False)["input_ids"]


def test_encode_merged_boundary_token_counts_as_completion(tokenizer):
    # "hello wor" + "ld": the joint text tokenises to [hello, " world"]; " world" holds completion text
    enc = encode(tokenizer, "hello wor", "ld", NO_SPECIALS)
    joint = tokenizer("hello world", add_special_tokens=False)["input_ids"]
    assert list(enc.input_ids) == joint and enc.n_prompt == 1
    assert tokenizer.decode(enc.completion_ids) == " world"


def test_eos_and_bos_added_once(tokenizer, make_tokenizer):
    eos = tokenizer.eos_token_id
    enc = encode(tokenizer, "the film", " was great", TokenizeOptions(add_bos=True))
    assert enc.input_ids[0] == tokenizer.bos_token_id and enc.input_ids[-1] == eos
    assert enc.input_ids.count(eos) == 1 and enc.input_ids.count(tokenizer.bos_token_id) == 1
    # a completion that already ends with EOS, and a prompt that already starts with BOS, get no second one
    again = encode(tokenizer, "<s>the film", " was great</s>", TokenizeOptions(add_bos=True))
    assert again == enc
    # "auto": GPT-2-like tokenizer adds no BOS; a Llama-like one does
    assert encode(tokenizer, "the film", " was great").input_ids[0] != tokenizer.bos_token_id
    llama_like = make_tokenizer(bos=True)
    ids = encode(llama_like, "the film", " was great").input_ids
    assert ids[0] == llama_like.bos_token_id and ids.count(llama_like.bos_token_id) == 1


def test_chat_template_prompt_and_no_double_bos(make_tokenizer):
    tok = make_tokenizer(bos=True, chat=True)
    messages = [{"role": "user", "content": "was the film good?"}]
    enc = encode(tok, messages, " yes")
    text = tok.decode(enc.input_ids)
    assert text.startswith("<s><user>was the film good?<assistant>") and text.count("<s>") == 1
    assert tok.decode(enc.completion_ids) == " yes</s>"
    with pytest.raises(ValidationError, match="no chat template"):
        encode(make_tokenizer(), messages, " yes")


def test_truncation_keeps_prompt_end_and_drops_empty_completions(tokenizer):
    prompt, completion = "the acting was awful and the plot was dull", " i loved the music"
    full = encode(tokenizer, prompt, completion)
    cut = encode(tokenizer, prompt, completion, TokenizeOptions(max_prompt_length=3, max_length=5))
    assert cut.n_prompt == 3 and len(cut.input_ids) == 5
    assert cut.input_ids[:3] == full.input_ids[full.n_prompt - 3:full.n_prompt]
    assert cut.completion_ids == full.completion_ids[:2]
    assert encode(tokenizer, prompt, completion, TokenizeOptions(max_length=full.n_prompt)) is None
    pairs = TextPairs(("a", prompt), (" b", " c"), (" d", " e"))
    chosen, rejected, kept = encode_pairs(tokenizer, pairs, TokenizeOptions(max_length=4))
    assert kept == [0] and len(chosen) == len(rejected) == 1
    with pytest.raises(ValidationError, match="all 1 pairs dropped"):
        encode_pairs(tokenizer, pairs[1:], TokenizeOptions(max_length=4))
    assert encode(tokenizer, "abc", "   ", NO_SPECIALS) is not None  # whitespace is a token for byte-level BPE
    with pytest.raises(ValidationError, match="completion"):
        encode(tokenizer, "abc", "")


def test_options_validation():
    for bad in (dict(max_length=1), dict(max_length=0), dict(max_prompt_length=-2), dict(add_bos="yes"),
                dict(add_eos=None)):
        with pytest.raises(ValidationError):
            TokenizeOptions(**bad)


def test_collate_masks(tokenizer):
    a = encode(tokenizer, "the film", " was great")
    b = encode(tokenizer, "the", " plot was dull and the acting awful")
    batch = collate_pairs([a], [b], pad_id_of(tokenizer))
    assert batch["input_ids"].shape == (2, max(len(a.input_ids), len(b.input_ids)))
    assert batch["attention_mask"][0].sum() == len(a.input_ids)
    assert batch["completion_mask"][0].sum() == len(a.completion_ids)
    assert not batch["completion_mask"][0, :a.n_prompt].any()
    with pytest.raises(ValidationError):
        collate([], 0)


def test_sequence_logps_matches_manual_sum(tokenizer, model):
    items = [encode(tokenizer, "the film", " was great"), encode(tokenizer, "the", " plot was dull")]
    batch = collate(items, pad_id_of(tokenizer))
    logps = sequence_logps(model, batch)
    with torch.no_grad():
        for row, e in enumerate(items):  # unpadded, one sequence at a time, plain log_softmax in float64
            logits = model(torch.tensor([e.input_ids])).logits[0].double()
            lp = torch.log_softmax(logits, -1)
            manual = sum(lp[t - 1, e.input_ids[t]] for t in range(e.n_prompt, len(e.input_ids)))
            assert math.isclose(float(logps[row]), float(manual), rel_tol=1e-5)


@pytest.mark.parametrize("head_path", [True, False])
def test_whole_sums_prompt_and_completion_from_one_pass(tokenizer, model, monkeypatch, head_path):
    """whole=True: column 0 is the completion sum, column 1 the sum over every token after the first, on the LM-head
    path and on the full-logits path alike."""
    from irlhf.llm import logps as logps_module
    from irlhf.llm.tokenize import Encoded

    if not head_path:
        monkeypatch.setattr(logps_module, "backbone_and_head", lambda model: None)
    items = [encode(tokenizer, "the film", " was great"), encode(tokenizer, "the", " plot was dull")]
    pad = pad_id_of(tokenizer)
    with torch.no_grad():
        both = logps_module.sequence_logps(model, collate(items, pad), whole=True)
        answer = logps_module.sequence_logps(model, collate(items, pad))
        whole = logps_module.sequence_logps(model, collate([Encoded(e.input_ids, 1) for e in items], pad))
    assert both.shape == (2, 2)
    torch.testing.assert_close(both[:, 0], answer, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(both[:, 1], whole, rtol=1e-6, atol=1e-6)
    assert both[0, 1] < both[0, 0] and both[1, 1] == both[1, 0]  # "the film": 1 scored prompt token; "the": none


def test_padding_and_prompt_do_not_change_logps(tokenizer, model):
    a = encode(tokenizer, "the film", " was great")
    long = encode(tokenizer, "the", " plot was dull and the acting was awful and i hated it")
    alone = sequence_logps(model, collate([a], 0))
    padded = sequence_logps(model, collate([a, long], 0))
    torch.testing.assert_close(padded[0], alone[0], rtol=1e-5, atol=1e-5)


def test_gather_logps_chunks_temperature_and_bf16():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(37, 11, generator=g)
    labels = torch.randint(0, 11, (37,), generator=g)
    ref = torch.log_softmax(logits / 0.7, -1)[torch.arange(37), labels]
    torch.testing.assert_close(gather_logps(logits, labels, 0.7, chunk_size=5), ref)
    low = logits.bfloat16().requires_grad_()
    out = gather_logps(low, labels, chunk_size=4)
    assert out.dtype == torch.float32
    out.sum().backward()  # recomputed chunks give the same gradient as the direct fp32 computation
    direct = low.detach().float().requires_grad_()
    torch.log_softmax(direct, -1)[torch.arange(37), labels].sum().backward()
    torch.testing.assert_close(low.grad.float(), direct.grad, rtol=1e-2, atol=1e-2)
    with pytest.raises(ValidationError):
        gather_logps(logits, labels[:3])
    with pytest.raises(ValidationError):
        gather_logps(logits, labels, temperature=0.0)


def test_completion_logps_shapes(tokenizer, model):
    batch = collate([encode(tokenizer, "the film", " was great")], 0)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"]).logits
    per_token = completion_logps(logits, batch["input_ids"], batch["completion_mask"])
    assert per_token.shape == batch["input_ids"].shape
    assert (per_token[~batch["completion_mask"]] == 0).all() and (per_token[batch["completion_mask"]] < 0).all()
    with pytest.raises(ValidationError):
        completion_logps(logits[0], batch["input_ids"], batch["completion_mask"])
    with pytest.raises(ValidationError, match="lacks"):
        sequence_logps(model, {"input_ids": batch["input_ids"]})


def test_bf16_model_logps_close_to_fp32(tokenizer, make_model):
    items = [encode(tokenizer, "the film", " was great and the plot was dull")]
    batch = collate(items, 0)
    full = sequence_logps(make_model(len(tokenizer), seed=3), batch)
    half = sequence_logps(make_model(len(tokenizer), seed=3, dtype=torch.bfloat16), batch)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, full, rtol=0.05, atol=0.5)


def test_head_at_completion_positions_equals_full_logits_with_gradients(tokenizer, make_model):
    from irlhf.llm.logps import backbone_and_head, completion_logps, forward_logits

    model = make_model(len(tokenizer), seed=5).train()
    assert backbone_and_head(model) is not None
    items = [encode(tokenizer, "the film", " was great and i loved it"), encode(tokenizer, "the acting was", " dull")]
    batch = collate(items, pad_id_of(tokenizer))
    fast = sequence_logps(model, batch, chunk_size=3)  # several chunks
    fast.sum().backward()
    fast_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    full = completion_logps(forward_logits(model, batch), batch["input_ids"], batch["completion_mask"]).sum(-1)
    full.sum().backward()
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-5)
    for a, p in zip(fast_grads, model.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-4, atol=1e-6)


def test_models_with_transformed_logits_use_their_own_forward(tokenizer, make_model):
    from irlhf.llm.logps import backbone_and_head

    model = make_model(len(tokenizer))
    model.config.final_logit_softcapping = 30.0  # e.g. Gemma 2: logits are not lm_head(hidden)
    assert backbone_and_head(model) is None
    batch = collate([encode(tokenizer, "the film", " was great")], 0)
    assert sequence_logps(model, batch).shape == (1,)
    model.config.final_logit_softcapping = None
