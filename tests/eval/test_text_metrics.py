"""``irlhf.eval.text``: distinct-n, self-BLEU and the per-token entropy of a policy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from irlhf.core.errors import ValidationError
from irlhf.eval.text import distinct_n, mean_token_entropy, policy_entropy, self_bleu

torch.set_num_threads(1)


# ----------------------------------------------------------------------------------------------- distinct-n

@pytest.mark.parametrize("texts, n, expected", [
    (["a b", "a b", "a c"], 1, 3 / 6),
    (["a b", "a b", "a c"], 2, 2 / 3),
    (["a b c d"], 2, 1.0),
    (["a a a a"], 1, 1 / 4),
    (["a a a a"], 3, 1 / 2),
    (["a", "a b c", ""], 2, 2 / 2),           # texts shorter than n add no n-gram
    (["a", "b"], 2, 0.0),                     # no n-gram at all: 0.0
    (["x  y\tz", "x y z"], 3, 1 / 2),         # whitespace tokens
])
def test_distinct_n_hand_values(texts, n, expected):
    assert distinct_n(texts, n) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize("texts, n, match", [
    ([], 1, "0 texts"),
    ("a b", 1, "not one string"),
    (["a", 3], 1, r"texts\[1\]=3"),
    (["a"], 0, "n=0"),
])
def test_distinct_n_validates(texts, n, match):
    with pytest.raises(ValidationError, match=match):
        distinct_n(texts, n)


# ----------------------------------------------------------------------------------------------- self-BLEU

def test_self_bleu_of_identical_texts_is_100_and_of_disjoint_texts_0():
    pytest.importorskip("sacrebleu")
    assert self_bleu(["the answer is 81 ."] * 5) == pytest.approx(100.0)
    assert self_bleu(["81", "81"]) == pytest.approx(100.0)
    assert self_bleu(["a b c d", "e f g h", "i j k l m"]) == 0.0
    assert self_bleu(["12", "34", "56"]) == 0.0


def test_self_bleu_hand_value():
    pytest.importorskip("sacrebleu")
    # each text against the other: p1 = 3/4, p2 = 2/3, p3 = 1/2, p4: 0 matched of 1, "exp" smoothing 1/(2 * 1)
    expected = 100 * math.exp((math.log(3 / 4) + math.log(2 / 3) + math.log(1 / 2) + math.log(1 / 2)) / 4)
    assert self_bleu(["a b c d", "a b c e"]) == pytest.approx(expected, rel=1e-12)
    floor = 100 * math.exp((math.log(3 / 4) + math.log(2 / 3) + math.log(1 / 2) + math.log(0.1)) / 4)
    assert self_bleu(["a b c d", "a b c e"], smooth_method="floor") == pytest.approx(floor, rel=1e-12)


@pytest.mark.parametrize("max_order, smooth_method", [(4, "exp"), (4, "floor"), (2, "none"), (3, "add-k")])
def test_self_bleu_equals_sacrebleu_sentence_scores_against_all_others(max_order, smooth_method):
    sacrebleu = pytest.importorskip("sacrebleu")
    rng = np.random.default_rng(0)
    words = "the answer is it that makes + = . 1 2 3 81 a , !".split()
    texts = [" ".join(rng.choice(words, size=rng.integers(0, 12))) for _ in range(40)]
    texts += [texts[3], texts[7] + ".", "the answer is 81 !"]  # duplicates, tokenised punctuation
    bleu = sacrebleu.metrics.BLEU(max_ngram_order=max_order, smooth_method=smooth_method, effective_order=True)
    naive = np.mean([bleu.sentence_score(texts[i], texts[:i] + texts[i + 1:]).score for i in range(len(texts))])
    assert self_bleu(texts, max_order=max_order, smooth_method=smooth_method) == pytest.approx(naive, rel=1e-12)


@pytest.mark.parametrize("texts, kwargs, match", [
    ([], {}, "at least 2"),
    (["only one"], {}, "at least 2"),
    (["a", "b"], {"max_order": 0}, "max_order=0"),
    (["a", "b"], {"smooth_method": "laplace"}, "smooth_method='laplace'"),
])
def test_self_bleu_validates(texts, kwargs, match):
    with pytest.raises(ValidationError, match=match):
        self_bleu(texts, **kwargs)


# ----------------------------------------------------------------------------------------------- entropy

def test_mean_token_entropy_of_uniform_peaked_and_two_point_distributions():
    V = 7
    assert mean_token_entropy(torch.zeros(2, 3, V), torch.ones(2, 3, dtype=torch.bool)) == pytest.approx(math.log(V))
    logps = torch.full((1, 2, V), -math.inf)
    logps[0, 0, 3] = 0.0                        # a point mass: entropy 0
    logps[0, 1, :2] = math.log(0.5)             # two equal tokens: log 2
    mask = torch.tensor([[True, True]])
    assert mean_token_entropy(logps, mask) == pytest.approx(math.log(2) / 2)
    assert mean_token_entropy(logps, torch.tensor([[False, True]])) == pytest.approx(math.log(2))
    # logits or their log-softmax give the same; numpy input works; float64 kept
    logits = np.random.default_rng(0).normal(size=(3, 5, V))
    mask = np.random.default_rng(1).random((3, 5)) < 0.5
    by_logits = mean_token_entropy(logits, mask)
    logp = torch.log_softmax(torch.as_tensor(logits), -1)
    manual = float(-(logp.exp() * logp).sum(-1)[torch.as_tensor(mask)].mean())
    assert by_logits == pytest.approx(manual, rel=1e-12)
    assert mean_token_entropy(logp, torch.as_tensor(mask)) == pytest.approx(manual, rel=1e-12)


def test_mean_token_entropy_validates():
    with pytest.raises(ValidationError, match="shape"):
        mean_token_entropy(torch.zeros(2, 3, 4), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValidationError, match="expected bool"):
        mean_token_entropy(torch.zeros(2, 3, 4), torch.ones(2, 3))
    with pytest.raises(ValidationError, match="no position"):
        mean_token_entropy(torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.bool))


@pytest.fixture(scope="module")
def task_model():
    from irlhf.llm.tasks import addition

    tokenizer = addition.build_tokenizer()
    return addition.make_model(tokenizer, seed=0, n_embd=32, n_head=2), tokenizer


def test_policy_entropy_of_a_uniform_model_is_log_v(task_model):
    model, tokenizer = task_model
    uniform = type(model)(model.config).eval()
    with torch.no_grad():
        uniform.transformer.wte.weight.zero_()  # tied LM head: every logit 0
    got = policy_entropy(uniform, tokenizer, ["what is 2 + 3 ?", "add 1 and 1 ."], [" 5", " the answer is 2 ."])
    assert got == pytest.approx(math.log(len(tokenizer)), rel=1e-6)


def test_policy_entropy_matches_a_manual_forward(task_model):
    model, tokenizer = task_model
    prompts = ["what is 23 + 58 ?", "add 1 and 2 .", "compute 10 plus 5 ."]
    completions = [" 81", " the answer is 3 .", ""]   # the empty one scores the distribution that chose <eos>
    entropies = []
    for prompt, completion in zip(prompts, completions):
        prompt_ids = tokenizer(prompt)["input_ids"]                # <bos> prompt
        ids = tokenizer(prompt + completion)["input_ids"] + [tokenizer.eos_token_id]
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), -1)
        h = -(logp.exp() * logp).sum(-1)
        entropies += h[len(prompt_ids) - 1:len(ids) - 1].tolist()  # the distributions of completion + <eos>
    assert len(entropies) == 3 + 6 + 1  # digits, words, <eos> each one token
    expected = float(np.mean(entropies))
    assert policy_entropy(model, tokenizer, prompts, completions) == pytest.approx(expected, rel=1e-5)
    assert policy_entropy(model, tokenizer, prompts, completions, batch_size=1) == pytest.approx(expected, rel=1e-5)
    hot = policy_entropy(model, tokenizer, prompts, completions, temperature=2.0)
    assert hot > expected  # a flatter distribution


def test_policy_entropy_validates(task_model):
    model, tokenizer = task_model
    with pytest.raises(ValidationError, match="one prompt per completion"):
        policy_entropy(model, tokenizer, ["what is 1 + 1 ?"], [" 2", " 3"])
    with pytest.raises(ValidationError, match="0 texts"):
        policy_entropy(model, tokenizer, [], [])
    with pytest.raises(ValidationError, match="temperature=0"):
        policy_entropy(model, tokenizer, ["what is 1 + 1 ?"], [" 2"], temperature=0)
