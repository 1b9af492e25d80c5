"""Completion sampling (irlhf.llm.rollout.sample_completions and its KV-cache decode loop _sample_tokens): seeded
and deterministic, the exact distribution softmax(logits / T) for left-padded prompts of different lengths (the
log-probs the loop drew from equal token_logps's recomputation on the right-padded result), EOS handling, finished
rows and repeated prompts not costing forward passes, the model.generate fallback, a peft model."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from irlhf.llm import rollout

torch.set_num_threads(1)

PROMPTS = ["hello world, the film was great", "i", "the acting was awful; i loved", "the"]


def options(max_new_tokens: int = 8, temperature: float = 0.7) -> SimpleNamespace:
    return SimpleNamespace(temperature=temperature, max_new_tokens=max_new_tokens, missing_eos_penalty=None)


def eos_prone(model, eos_id: int, bias: float = 3.5):
    """``model`` with an LM head bias making EOS likely (about 1 in 10 a token), so completions end at mixed
    lengths; the head stays a Linear (token_logps splits it from the backbone)."""
    model = copy.deepcopy(model)
    head = nn.Linear(model.lm_head.in_features, model.lm_head.out_features, bias=True)
    head.weight = model.lm_head.weight
    with torch.no_grad():
        head.bias.zero_()
        head.bias[eos_id] = bias
    model.lm_head = head
    return model


def rows_of(tokenizer, prompts, repeats: int = 3):
    ids = rollout.encode_prompts(tokenizer, prompts)
    return [p for p in ids for _ in range(repeats)]  # a prompt's samples are adjacent rows, as in GroupBatch


def test_same_seed_same_samples_and_global_rng_untouched(model, tokenizer):
    rows = rows_of(tokenizer, PROMPTS)
    model = eos_prone(model, tokenizer.eos_token_id)
    state = torch.get_rng_state()
    a = rollout.sample_completions(model, tokenizer, rows, options(), seed=3)
    b = rollout.sample_completions(model, tokenizer, rows, options(), seed=3)
    c = rollout.sample_completions(model, tokenizer, rows, options(), seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.input_ids, b.input_ids) and a.completions == b.completions
    assert a.completions != c.completions
    # the rows of one prompt are different samples (the shared prefill is not a shared sample)
    assert len({tuple(r.tolist()) for r in a.input_ids[:3]}) == 3


def test_drawn_logps_equal_recomputed_logps_for_padded_prompts(model, tokenizer):
    """Each token is drawn from softmax(logits / T) of the prompt alone, whatever the left padding: the log-probs
    the loop drew with equal token_logps of the right-padded samples (no padding before the prompt)."""
    eos = tokenizer.eos_token_id
    model = eos_prone(model, eos)
    rows, temperature = rows_of(tokenizer, PROMPTS), 0.7
    with torch.random.fork_rng():
        torch.manual_seed(11)
        tokens, drawn = rollout._sample_tokens(model, rows, temperature, 10, eos, 0, with_logps=True)
    samples = rollout.sample_completions(model, tokenizer, rows, options(10, temperature), seed=11)
    recomputed = rollout.token_logps(model, samples.input_ids, samples.attention_mask, samples.completion_mask,
                                     temperature)
    lengths = samples.completion_mask.sum(-1)
    assert 1 <= int(lengths.min()) < int(lengths.max())  # mixed lengths: some rows left the batch early
    for row, ids in enumerate(rows):
        k = int(lengths[row])
        assert torch.equal(samples.input_ids[row, len(ids):len(ids) + k], tokens[row, :k])
        assert torch.allclose(recomputed[row, len(ids):len(ids) + k], drawn[row, :k], atol=1e-5, rtol=0)
        assert torch.all(drawn[row, k:] == 0)


def test_completion_ends_at_first_eos_within_max_new_tokens(model, tokenizer):
    eos = tokenizer.eos_token_id
    rows = rows_of(tokenizer, PROMPTS)
    samples = rollout.sample_completions(eos_prone(model, eos, bias=1.5), tokenizer, rows, options(6), seed=0)
    lengths = samples.completion_mask.sum(-1)
    assert int(lengths.max()) <= 6 and bool(samples.has_eos.any()) and not bool(samples.has_eos.all())
    for row, ids in enumerate(rows):
        k, p = int(lengths[row]), len(ids)
        completion = samples.input_ids[row, p:p + k].tolist()
        assert samples.input_ids[row, :p].tolist() == ids
        assert samples.attention_mask[row].tolist() == [1] * (p + k) + [0] * (samples.input_ids.shape[1] - p - k)
        assert bool(samples.has_eos[row]) == (eos in completion)
        if samples.has_eos[row]:
            assert completion.index(eos) == k - 1  # cut after the first EOS, which the mask includes
            assert samples.completions[row] == rollout.completion_text(tokenizer, ids, completion[:-1])
        else:
            assert k == 6
            assert samples.completions[row] == rollout.completion_text(tokenizer, ids, completion)
    # a model that always says EOS first: one-token completions
    forced = eos_prone(model, eos, bias=100.0)
    samples = rollout.sample_completions(forced, tokenizer, rows, options(6), seed=0)
    assert samples.has_eos.all()
    assert torch.equal(samples.completion_mask.sum(-1), torch.ones(len(rows), dtype=torch.long))
    assert samples.completions == [""] * len(rows)


def test_finished_rows_and_repeated_prompts_cost_no_forward_rows(model, tokenizer):
    eos = tokenizer.eos_token_id
    model = eos_prone(model, eos, bias=4.5)
    sizes = []
    model.register_forward_hook(lambda module, args, kwargs, output: sizes.append(kwargs["input_ids"].shape),
                                with_kwargs=True)
    rows = rows_of(tokenizer, PROMPTS, repeats=4)
    samples = rollout.sample_completions(model, tokenizer, rows, options(12), seed=2)
    assert sizes[0][0] == len(PROMPTS)  # each distinct prompt prefilled once
    batch = [shape[0] for shape in sizes[1:]]
    assert batch == sorted(batch, reverse=True) and batch[-1] < len(rows)
    # step t runs exactly the rows whose completion is longer than t + 1 tokens
    lengths = samples.completion_mask.sum(-1)
    assert batch == [int((lengths > t + 1).sum()) for t in range(len(batch))]


def test_models_the_loop_cannot_drive_go_through_generate(model, tokenizer, monkeypatch):
    assert rollout._decode_arguments(SimpleNamespace(config=SimpleNamespace(is_encoder_decoder=True))) is None
    assert rollout._decode_arguments(model) is not None
    eos = tokenizer.eos_token_id
    model = eos_prone(model, eos)
    rows = rows_of(tokenizer, PROMPTS, repeats=2)
    monkeypatch.setattr(rollout, "_decode_arguments", lambda model: None)
    calls = []
    generate = model.generate
    model.generate = lambda *args, **kwargs: calls.append(1) or generate(*args, **kwargs)
    a = rollout.sample_completions(model, tokenizer, rows, options(6), seed=1)
    b = rollout.sample_completions(model, tokenizer, rows, options(6), seed=1)
    assert calls == [1, 1] and torch.equal(a.input_ids, b.input_ids)
    lengths = a.completion_mask.sum(-1)
    assert int(lengths.max()) <= 6
    for row, ids in enumerate(rows):
        completion = a.input_ids[row, len(ids):len(ids) + int(lengths[row])].tolist()
        assert bool(a.has_eos[row]) == (eos in completion) and (eos not in completion[:-1])


def test_peft_model_samples_from_its_adapted_distribution(model, tokenizer):
    peft = pytest.importorskip("peft")
    eos = tokenizer.eos_token_id
    base = eos_prone(model, eos)
    lora = peft.get_peft_model(base, peft.LoraConfig(r=2, target_modules=["c_attn"], fan_in_fan_out=True,
                                                      init_lora_weights=False))
    rows = rows_of(tokenizer, PROMPTS[:2], repeats=2)
    with torch.random.fork_rng():
        torch.manual_seed(5)
        tokens, drawn = rollout._sample_tokens(lora, rows, 1.0, 6, eos, 0, with_logps=True)
    samples = rollout.sample_completions(lora, tokenizer, rows, options(6, 1.0), seed=5)
    recomputed = rollout.token_logps(lora, samples.input_ids, samples.attention_mask, samples.completion_mask, 1.0)
    for row, ids in enumerate(rows):
        k = int(samples.completion_mask[row].sum())
        assert torch.equal(samples.input_ids[row, len(ids):len(ids) + k], tokens[row, :k])
        assert torch.allclose(recomputed[row, len(ids):len(ids) + k], drawn[row, :k], atol=1e-5, rtol=0)


def test_preallocated_cache_decodes_as_the_dynamic_cache(model, tokenizer, monkeypatch):
    eos = tokenizer.eos_token_id
    model = eos_prone(model, eos)
    rows = rows_of(tokenizer, PROMPTS)
    used = []
    preallocated = rollout._preallocated
    monkeypatch.setattr(rollout, "_preallocated", lambda *args: used.append(preallocated(*args)) or used[-1])
    runs = []
    for preallocate in (True, False):
        with torch.random.fork_rng():
            torch.manual_seed(7)
            runs.append(rollout._sample_tokens(model, rows, 0.7, 10, eos, 0, with_logps=True, preallocate=preallocate))
    assert len(used) == 1 and used[0] is not None  # GPT-2's DynamicCache took the preallocated buffers
    assert torch.equal(runs[0][0], runs[1][0])
    assert torch.allclose(runs[0][1], runs[1][1], atol=1e-6, rtol=0)


def test_buffer_layer_grows_selects_and_crops():
    keys, values = torch.randn(3, 2, 4, 5), torch.randn(3, 2, 4, 5)
    layer = rollout._buffer_layer_class().filled(keys, values, torch.tensor([0, 0, 2]), capacity=5)
    assert layer.get_seq_length() == 4 and torch.equal(layer.keys, keys[[0, 0, 2]])
    new_keys, new_values = torch.randn(3, 2, 3, 5), torch.randn(3, 2, 3, 5)
    k, v = layer.update(new_keys, new_values)  # past the capacity: grows
    assert torch.equal(k, torch.cat([keys[[0, 0, 2]], new_keys], 2)) and torch.equal(v[:, :, 4:], new_values)
    layer.batch_select_indices(torch.tensor([2]))
    layer.crop(-2)
    assert layer.get_seq_length() == 5
    assert torch.equal(layer.values, torch.cat([values[[2]], new_values[[2]]], 2)[:, :, :5])


def test_ready_4d_mask_decodes_as_the_2d_mask(model, tokenizer, monkeypatch):
    """Decoding hands an sdpa transformers model its (n, 1, 1, kv) bool mask ready-made; same tokens and log-probs
    as letting the model build it from the 2-D mask (left-padded prompts of different lengths)."""
    eos = tokenizer.eos_token_id
    model = eos_prone(model, eos)
    assert rollout._takes_ready_mask(model)
    assert not rollout._takes_ready_mask(nn.Linear(2, 2))
    eager = copy.deepcopy(model)
    eager.config._attn_implementation = "eager"
    assert not rollout._takes_ready_mask(eager)
    rows = rows_of(tokenizer, PROMPTS)
    runs = []
    for ready in (True, False):
        monkeypatch.setattr(rollout, "_takes_ready_mask", lambda model, ready=ready: ready)
        with torch.random.fork_rng():
            torch.manual_seed(11)
            runs.append(rollout._sample_tokens(model, rows, 0.7, 10, eos, 0, with_logps=True))
    assert torch.equal(runs[0][0], runs[1][0])
    assert torch.allclose(runs[0][1], runs[1][1], atol=1e-5, rtol=0)
