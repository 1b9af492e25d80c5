"""Tests of the synthetic addition task: problems, prompts, expert, corpus, exact checker, tokenizer, model."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from irlhf.core.errors import ValidationError
from irlhf.llm.tasks import addition as task

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tokenizer():
    return task.build_tokenizer()


def _split(text: str) -> tuple[str, str]:
    """A corpus text split after its prompt (the first "?" or "." token)."""
    words = text.split()
    end = next(k for k, word in enumerate(words) if word in ("?", "."))
    return " ".join(words[:end + 1]), " ".join(words[end + 1:])


# ----------------------------------------------------------------------------------------------- checker

PROBLEMS = [(23, 58), (0, 0), (9, 1), (999, 999), (7, 40)]


@pytest.mark.parametrize("form", list(task.FORMS))
@pytest.mark.parametrize("a, b", PROBLEMS)
def test_check_answer_accepts_every_form_of_the_sum_and_rejects_off_by_one(form, a, b):
    for template in task.PROMPT_TEMPLATES:
        prompt = template.format(a=a, b=b)
        right = task.FORMS[form].format(a=a, b=b, c=a + b)
        assert task.check_answer(prompt, right) and task.check_answer(prompt, " " + right)
        assert task.surface_form(right) == form == task.surface_form(" " + right)
        for wrong in (a + b + 1, abs(a + b - 1), a + b + 10):
            assert not task.check_answer(prompt, task.FORMS[form].format(a=a, b=b, c=wrong))


@pytest.mark.parametrize("completion, correct, form", [
    ("81", True, "bare"),
    ("the answer is 81.", True, "answer"),          # "81." reads as "81 ." (the tokenizer's split)
    ("23 + 58 = 81", True, "equation"),
    ("it is 81 .", True, "it_is"),
    ("that makes 81", True, "makes"),
    ("081", True, "bare"),                          # numbers compare as integers
    ("80", False, "bare"),
    ("the answer is 81 . no , 80", False, None),    # the last number counts
    ("8 1", False, None),                           # two numbers, the last is 1
    ("the answer is", False, None),                 # no number: wrong
    ("", False, None),
    ("that makes eighty one", False, None),
])
def test_check_answer_and_surface_form_on_hand_cases(completion, correct, form):
    assert task.check_answer("what is 23 + 58 ?", completion) is correct
    assert task.surface_form(completion) == form


def test_accuracy_is_a_float_array_of_the_checks():
    prompts = ["what is 2 + 3 ?", "add 10 and 5 .", "compute 1 plus 1 ."]
    got = task.accuracy(prompts, ["5", "the answer is 14 .", "1 + 1 = 2"])
    assert got.dtype == np.float64 and got.tolist() == [1.0, 0.0, 1.0]


def test_checker_validates_its_inputs():
    with pytest.raises(ValidationError, match="exactly two numbers"):
        task.check_answer("what is 2 + 3 + 4 ?", "9")
    with pytest.raises(ValidationError, match="exactly two numbers"):
        task.check_answer("hello", "9")
    with pytest.raises(ValidationError, match="completion=3"):
        task.check_answer("what is 1 + 2 ?", 3)
    with pytest.raises(ValidationError, match="one each"):
        task.accuracy(["what is 1 + 2 ?"], ["3", "3"])
    with pytest.raises(ValidationError, match="prompts='what"):
        task.accuracy("what is 1 + 2 ?", ["3"])


# ----------------------------------------------------------------------------------------------- data

@pytest.mark.parametrize("digits", [1, 2, 3])
def test_problems_have_operands_of_at_most_digits_digits(digits):
    problems = task.make_problems(500, seed=0, digits=digits)
    values = np.array(problems)
    assert len(problems) == 500 and all(isinstance(x, int) for pair in problems for x in pair)
    assert values.min() >= 0 and values.max() < 10 ** digits and values.max() >= 10 ** (digits - 1)


def test_expert_completions_always_check_and_use_every_form_uniformly():
    problems = task.make_problems(1000, seed=1, digits=3)
    prompts = task.make_prompts(problems, seed=1)
    completions = task.expert_completions(problems, seed=1)
    assert task.accuracy(prompts, completions).all()
    forms = [task.surface_form(c) for c in completions]
    counts = {name: forms.count(name) for name in task.FORMS}
    assert sum(counts.values()) == 1000 and min(counts.values()) > 150  # 200 each in expectation
    templates = {re.sub(r"\d+", "{}", p) for p in prompts}
    assert len(templates) == len(task.PROMPT_TEMPLATES)  # every template is used
    only = task.expert_completions(problems[:50], seed=1, forms=["equation", "makes"])
    assert {task.surface_form(c) for c in only} == {"equation", "makes"}


def test_demos_are_deterministic_by_seed_and_correct():
    demos = task.make_demos(64, seed=3)
    assert demos == task.make_demos(64, seed=3) and demos != task.make_demos(64, seed=4)
    assert all(set(row) == {"prompt", "completion"} and row["completion"].startswith(" ") for row in demos)
    assert task.accuracy([r["prompt"] for r in demos], [r["completion"] for r in demos]).all()
    # one seed, independent streams: the prompt template does not determine the form
    pairs = {(r["prompt"].split()[0], task.surface_form(r["completion"])) for r in task.make_demos(400, seed=0)}
    assert len(pairs) > 10


def test_corpus_answers_are_wrong_at_the_error_rate_by_small_offsets():
    corpus = task.make_corpus(3000, seed=0, error_rate=0.3)
    assert corpus == task.make_corpus(3000, seed=0, error_rate=0.3)
    prompts, completions = zip(*(_split(text) for text in corpus))
    right = task.accuracy(list(prompts), list(completions))
    assert abs(right.mean() - 0.7) < 0.03
    for prompt, completion, ok in zip(prompts, completions, right):
        assert task.surface_form(completion) is not None
        a, b = task.operands_of(prompt)
        assert abs(task.answer_of(completion) - (a + b)) in ((0,) if ok else (1, 2, 10))
    clean = task.make_corpus(200, seed=0, error_rate=0.0)
    assert task.accuracy(*map(list, zip(*(_split(text) for text in clean)))).all()


@pytest.mark.parametrize("call, match", [
    (lambda: task.make_problems(0), "n=0"),
    (lambda: task.make_problems(5, digits=4), "digits=4"),
    (lambda: task.make_problems(5, seed=-1), "seed=-1"),
    (lambda: task.make_prompts([(1, 2), (3,)]), r"problems\[1\]=\(3,\)"),
    (lambda: task.make_prompts([]), "problems=\\[\\]"),
    (lambda: task.expert_completions([(1, 2)], forms=["nope"]), "'nope' is not a form"),
    (lambda: task.expert_completions([(1, 2)], forms="bare"), "forms='bare'"),
    (lambda: task.make_corpus(5, error_rate=1.5), "error_rate=1.5"),
])
def test_generators_validate_their_inputs(call, match):
    with pytest.raises(ValidationError, match=match):
        call()


# ----------------------------------------------------------------------------------------------- tokenizer

def test_tokenizer_round_trips_every_token_and_splits_numbers_into_digits(tokenizer):
    assert [tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id] == [0, 1, 2, 3]
    assert len(tokenizer) == 4 + len(task.VOCABULARY)
    for index, token in enumerate(task.VOCABULARY, start=4):
        assert tokenizer(token, add_special_tokens=False)["input_ids"] == [index]
        assert tokenizer.decode([index]) == token
    ids = tokenizer("what is 23 + 58 ? 23 + 58 = 81")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids)[:5] == ["<bos>", "what", "is", "2", "3"]
    assert task.VOCABULARY.index("8") + 4 in ids and tokenizer.unk_token_id not in ids
    for text in task.make_corpus(200, seed=5, digits=3):
        encoded = tokenizer(text)["input_ids"]
        assert tokenizer.unk_token_id not in encoded
        assert tokenizer.decode(encoded, skip_special_tokens=True) == text


def test_model_pretrains_and_generates_checkable_answers(tokenizer):
    model = task.make_model(tokenizer, seed=0)
    assert model.config.vocab_size == len(tokenizer)
    log = task.pretrain(model, tokenizer, task.make_corpus(300, seed=1), task.PretrainConfig(steps=20, seed=0))
    assert log["losses"][-1] < log["losses"][0]
    prompts = task.make_prompts(task.make_problems(8, seed=2), seed=2)
    samples = task.generate(model, tokenizer, prompts, n_per_prompt=2, max_new_tokens=10, seed=0)
    assert samples == task.generate(model, tokenizer, prompts, n_per_prompt=2, max_new_tokens=10, seed=0)
    flat = [s for row in samples for s in row]
    scores = task.accuracy([p for p in prompts for _ in range(2)], flat)
    assert scores.shape == (16,) and set(scores.tolist()) <= {0.0, 1.0}
