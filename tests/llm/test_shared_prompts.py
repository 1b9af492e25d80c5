"""Rows that repeat a prompt share its pass (irlhf.llm.logps.shared_prompts): the same log-probs and gradients as
the full pass, for absolute (GPT-2) and rotary (Llama) positions, with padding on both sides of the boundary."""

from __future__ import annotations

import pytest
import torch

from irlhf.llm import logps
from irlhf.llm.logps import SharedPrompts, sequence_logps, shared_prompts
from irlhf.llm.rollout import token_logps
from irlhf.llm.tokenize import collate, encode, pad_id_of


def tiny_llama(vocab_size: int, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM  # why: slow, optional (llm extra)

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return LlamaForCausalLM(config)


PAIRS = [("the film was", " great and i loved it"), ("the film was", " dull"),
         ("acting", " was fine"), ("acting", " was awful and slow and long"),
         ("the film was", " very good"), ("a long story about a director and an actor", " sad")]


@pytest.fixture
def grouped_batch(tokenizer):
    """Six rows over three prompts, prompts and completions of different lengths (padding on both sides)."""
    return collate([encode(tokenizer, p, c) for p, c in PAIRS], pad_id_of(tokenizer))


def test_split_finds_the_distinct_prompts_and_the_completions(tokenizer, grouped_batch):
    split = shared_prompts(grouped_batch["input_ids"], grouped_batch["attention_mask"],
                           grouped_batch["completion_mask"], min_fraction=0.0)
    assert isinstance(split, SharedPrompts)
    assert split.row_prompt.tolist() == [0, 0, 1, 1, 0, 2]
    assert split.prompt_ids.shape[0] == 3 and bool(split.prompt_mask[:, -1].all())  # left-padded
    for row, (prompt, completion) in enumerate(PAIRS):
        encoded = encode(tokenizer, prompt, completion)
        assert int(split.prompt_lengths[row]) == encoded.n_prompt
        n = int(split.completion_mask[row].sum())
        assert split.completion_ids[row, :n].tolist() == list(encoded.input_ids[encoded.n_prompt:])


def test_no_split_without_repeats_below_the_saving_or_when_prompts_are_scored(tokenizer, grouped_batch):
    ids, mask, completion = (grouped_batch[k] for k in ("input_ids", "attention_mask", "completion_mask"))
    distinct = collate([encode(tokenizer, f"prompt {i}", " x") for i in range(3)], pad_id_of(tokenizer))
    assert shared_prompts(distinct["input_ids"], distinct["attention_mask"], distinct["completion_mask"], 0.0) is None
    assert shared_prompts(ids, mask, completion, min_fraction=0.99) is None
    assert shared_prompts(ids, mask, mask, min_fraction=0.0) is None  # the whole sequence scored: no boundary
    holes = completion.clone()
    holes[0, int(holes[0].nonzero()[1])] = False  # not one contiguous completion
    assert shared_prompts(ids, mask, holes, min_fraction=0.0) is None


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_shared_pass_equals_full_pass_with_gradients(tokenizer, make_model, grouped_batch, monkeypatch, family):
    model = (make_model(len(tokenizer), seed=2) if family == "gpt2" else tiny_llama(len(tokenizer))).train()
    ids, mask, completion = (grouped_batch[k] for k in ("input_ids", "attention_mask", "completion_mask"))
    results = {}
    for name, fraction in (("shared", 0.0), ("full", 2.0)):  # 2.0: never share
        monkeypatch.setattr(logps, "MIN_SHARED_FRACTION", fraction)
        model.zero_grad()
        per_token = token_logps(model, ids, mask, completion, temperature=0.7, chunk_size=5)
        weights = torch.linspace(0.5, 1.5, per_token.numel()).view_as(per_token)  # every position's gradient counts
        (per_token * weights).sum().backward()
        results[name] = per_token.detach(), [p.grad.clone() for p in model.parameters()]
    torch.testing.assert_close(results["shared"][0], results["full"][0], rtol=1e-5, atol=1e-5)
    assert bool((results["shared"][0] != 0).sum() == completion[:, 1:].sum() + completion[:, 0].sum())
    for shared_grad, full_grad in zip(results["shared"][1], results["full"][1]):
        torch.testing.assert_close(shared_grad, full_grad, rtol=1e-4, atol=1e-6)


def test_pairs_share_their_prompt_in_sequence_logps(tokenizer, make_model, monkeypatch):
    """A DPO batch (chosen rows, then rejected rows of the same prompts) takes the shared pass by default."""
    model = make_model(len(tokenizer), seed=4)
    prompt = "a long story about a director and an actor and the camera and the music"
    items = [encode(tokenizer, prompt, " was great"), encode(tokenizer, prompt, " was dull")]
    batch = collate(items, pad_id_of(tokenizer))
    calls = []
    original = logps._shared_prompt_states
    monkeypatch.setattr(logps, "_shared_prompt_states", lambda *a: calls.append(1) or original(*a))
    with torch.no_grad():
        shared = sequence_logps(model, batch)
        monkeypatch.setattr(logps, "MIN_SHARED_FRACTION", 2.0)
        full = sequence_logps(model, batch)
    assert calls == [1]
    torch.testing.assert_close(shared, full, rtol=1e-5, atol=1e-5)
