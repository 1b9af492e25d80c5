"""Tests of the synthetic controlled-sentiment task: language, scorer, tokenizer, tiny GPT, pretraining, sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from irlhf.core.errors import ValidationError
from irlhf.llm.tasks import sentiment as task

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tokenizer(word_tokenizer):
    return word_tokenizer


@pytest.fixture(scope="module")
def pretrained(tokenizer):
    """A tiny model after 30 steps on 300 reviews, with its pretraining log."""
    model = task.make_model(tokenizer, seed=0)
    log = task.pretrain(model, tokenizer, task.make_corpus(300, seed=1), task.PretrainConfig(steps=30, seed=0))
    return model, log


# ----------------------------------------------------------------------------------------------- scorer

@pytest.mark.parametrize("text, expected", [
    ("the film was great .", 0.4588314677411235),  # x = 2.0: 2 / sqrt(4 + 15)
    ("i hated this movie .", -0.5267415375673765),  # x = -2.4
    ("this movie was a masterpiece and a joy .", 0.7905694150420948),  # x = 3.0 + 2.0
    ("the acting was great , but the plot was awful .", -0.12803687993289598),  # x = 2.0 - 2.5
    ("the acting was good , but the plot was dull .", 0.0),  # x = 1.5 - 1.5
])
def test_sentiment_score_golden_values(text, expected):
    assert task.sentiment_score([text])[0] == pytest.approx(expected, abs=1e-12)


def test_sentiment_score_ignores_unknown_words_and_case_and_scores_empty_text_zero():
    scores = task.sentiment_score(["", "zorblax quux !", "The film was GREAT zorblax .", "the film was great ."])
    assert scores.dtype == np.float64 and scores.shape == (4,)
    np.testing.assert_allclose(scores, [0.0, 0.0, 0.4588314677411235, 0.4588314677411235], atol=1e-12)
    assert task.sentiment_score([]).shape == (0,)


def test_sentiment_score_stays_inside_minus_one_one():
    extreme = " ".join(["masterpiece"] * 200)
    scores = task.sentiment_score([extreme, extreme.replace("masterpiece", "atrocious")])
    assert 0.99 < scores[0] < 1.0 and -1.0 < scores[1] < -0.99


def test_sentiment_score_rejects_non_strings():
    with pytest.raises(ValidationError):
        task.sentiment_score(["fine", 3])
    with pytest.raises(ValidationError):
        task.sentiment_score("the film was great .")  # one string, not a list of texts


# ----------------------------------------------------------------------------------------------- language

def test_lexicons_are_disjoint_positive_and_inside_the_vocabulary():
    assert not set(task.POSITIVE) & set(task.NEGATIVE)
    assert all(0.5 <= weight <= 3.0 for weight in [*task.POSITIVE.values(), *task.NEGATIVE.values()])
    assert len(task.VOCABULARY) == len(set(task.VOCABULARY))
    assert set(task.POSITIVE) | set(task.NEGATIVE) <= set(task.VOCABULARY)


def test_corpus_is_deterministic_by_seed_and_uses_only_vocabulary_words():
    corpus = task.make_corpus(200, seed=3)
    assert corpus == task.make_corpus(200, seed=3)
    assert corpus != task.make_corpus(200, seed=4)
    vocabulary = set(task.VOCABULARY)
    for review in corpus:
        words = review.split(" ")
        assert set(words) <= vocabulary
        assert task.MIN_REVIEW_WORDS <= len(words) <= task.MAX_REVIEW_WORDS
        assert review == review.lower() and review.endswith(" .")


def test_latent_sentiment_orders_the_mean_score():
    reviews, latent = task.make_labelled_corpus(600, seed=0)
    scores = task.sentiment_score(reviews)
    assert set(latent.tolist()) == {-1, 0, 1}
    assert scores[latent == 1].mean() > 0.3 > scores[latent == 0].mean() > -0.3 > scores[latent == -1].mean()


def test_prompts_are_short_sentiment_free_and_deterministic():
    prompts = task.make_prompts(100, seed=5)
    assert prompts == task.make_prompts(100, seed=5) and prompts != task.make_prompts(100, seed=6)
    sentiment_words = set(task.POSITIVE) | set(task.NEGATIVE)
    for prompt in prompts:
        words = prompt.split(" ")
        assert 2 <= len(words) <= 6 and set(words) <= set(task.VOCABULARY)
        assert not set(words) & sentiment_words
    np.testing.assert_array_equal(task.sentiment_score(prompts), 0.0)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_corpus_and_prompts_reject_bad_counts(bad):
    with pytest.raises(ValidationError):
        task.make_corpus(bad)
    with pytest.raises(ValidationError):
        task.make_prompts(bad)


# ----------------------------------------------------------------------------------------------- tokenizer

def test_tokenizer_special_ids_and_round_trip(tokenizer):
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2, 3)
    assert len(tokenizer) == len(task.VOCABULARY) + 4 and tokenizer.padding_side == "right"
    for review in task.make_corpus(50, seed=2):
        ids = tokenizer(review, add_special_tokens=False)["input_ids"]
        assert len(ids) == len(review.split(" "))  # one token per word, no BOS/EOS added
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == review
    assert tokenizer("the zorblax was great")["input_ids"][0] == tokenizer.bos_token_id  # BOS prepended, once
    assert tokenizer("the zorblax was great")["input_ids"][2] == tokenizer.unk_token_id
    assert tokenizer.decode([*tokenizer("the film")["input_ids"], 2, 0], skip_special_tokens=True) == "the film"


def test_tokenizer_save_and_load_round_trip(tokenizer, tmp_path):
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "i watched it at home last night . the film was really great ."
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert loaded.decode(loaded(text)["input_ids"], skip_special_tokens=True) == text
    assert (loaded.pad_token_id, loaded.bos_token_id, loaded.eos_token_id, loaded.unk_token_id) == (0, 1, 2, 3)
    assert loaded.get_vocab() == tokenizer.get_vocab()


# ----------------------------------------------------------------------------------------------- model

def test_make_model_is_seeded_and_leaves_global_rng_alone(tokenizer):
    state = torch.random.get_rng_state()
    first, same, other = (task.make_model(tokenizer, seed=s) for s in (7, 7, 8))
    assert torch.equal(state, torch.random.get_rng_state())
    for a, b, c in zip(first.parameters(), same.parameters(), other.parameters()):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, c) for a, c in zip(first.parameters(), other.parameters()))
    config = first.config
    assert (config.n_layer, config.n_embd, config.n_head, config.n_positions) == (2, 64, 4, 64)
    assert (config.pad_token_id, config.bos_token_id, config.eos_token_id) == (0, 1, 2)
    logits = first(input_ids=torch.tensor([[1, 5, 6, 7]])).logits
    assert logits.shape == (1, 4, len(tokenizer))


def test_tiny_gpt_config_rejects_bad_values():
    with pytest.raises(ValidationError):
        task.tiny_gpt_config(100, n_embd=30, n_head=4)
    with pytest.raises(ValidationError):
        task.tiny_gpt_config(0)


# ----------------------------------------------------------------------------------------------- pretraining

def test_pretrain_lowers_the_loss(pretrained):
    _, log = pretrained
    losses = log["losses"]
    assert len(losses) == 30 and all(np.isfinite(losses))
    assert losses[-1] < 0.8 * losses[0]
    assert log["loss"] == pytest.approx(np.mean(losses[-10:]))


@pytest.mark.parametrize("field, value", [("steps", 0), ("batch_size", 0), ("lr", 0.0), ("max_length", 1),
                                          ("seed", -1), ("progress", 1)])
def test_pretrain_config_rejects_bad_values(field, value):
    with pytest.raises(ValidationError):
        task.PretrainConfig(**{field: value})


# ----------------------------------------------------------------------------------------------- sampling

def test_generate_is_seeded_and_shaped(pretrained, tokenizer):
    model, _ = pretrained
    prompts = ["the film was", "i really", "it is about a"]
    samples = task.generate(model, tokenizer, prompts, n_per_prompt=3, max_new_tokens=12, seed=4)
    assert [len(row) for row in samples] == [3, 3, 3]
    assert samples == task.generate(model, tokenizer, prompts, n_per_prompt=3, max_new_tokens=12, seed=4)
    assert samples != task.generate(model, tokenizer, prompts, n_per_prompt=3, max_new_tokens=12, seed=5)
    for row in samples:
        for text in row:
            assert isinstance(text, str) and "<" not in text and len(text.split()) <= 12


def test_batched_greedy_equals_unbatched_greedy(pretrained, tokenizer):
    model, _ = pretrained
    prompts = ["the plot of this film was", "i", "it runs for about"]  # different lengths: left padding
    batched = task.generate(model, tokenizer, prompts, n_per_prompt=2, max_new_tokens=10, temperature=0.0)
    alone = [task.generate(model, tokenizer, [p], n_per_prompt=1, max_new_tokens=10, temperature=0.0)[0][0]
             for p in prompts]
    assert [row[0] for row in batched] == alone
    assert all(row[0] == row[1] for row in batched)  # greedy ignores the seed


def test_generate_rejects_bad_input(pretrained, tokenizer):
    model, _ = pretrained
    with pytest.raises(ValidationError):
        task.generate(model, tokenizer, ["the film"], n_per_prompt=0)
    with pytest.raises(ValidationError):
        task.generate(model, tokenizer, ["the film"], n_per_prompt=1, temperature=-1.0)
    with pytest.raises(ValidationError):
        task.generate(model, tokenizer, ["the film"], n_per_prompt=1, max_new_tokens=64)  # beyond 64 positions


def test_cached_greedy_equals_full_recomputation(pretrained, tokenizer):
    model, _ = pretrained
    prompt = "i watched it at home last night . the plot was"
    ids = tokenizer(prompt)["input_ids"]
    prompt_length = len(ids)
    with torch.no_grad():
        for _ in range(12):  # greedy decoding that reruns the whole sequence at every step, no KV cache
            token = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
            if token == tokenizer.eos_token_id:
                break
            ids.append(token)
    expected = tokenizer.decode(ids[prompt_length:], skip_special_tokens=True)
    assert task.generate(model, tokenizer, [prompt], 1, max_new_tokens=12, temperature=0.0) == [[expected]]
