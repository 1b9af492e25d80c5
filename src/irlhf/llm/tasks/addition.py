"""Addition in words: a synthetic task whose true reward is exact, for comparing imitation methods on LMs.

Wulfmeier et al. (2024, "Imitating Language via Scalable Inverse Reinforcement Learning") compare supervised
fine-tuning with inverse-RL imitation on two axes: the task score of the outputs and their diversity. Both
need a judge; here both are exact, and everything is small enough for one CPU thread with nothing downloaded.

* Problems: a + b with operands uniform in [0, 10^digits) (``make_problems``; digits 1 to 3, default 2).
* Prompts: one of ``PROMPT_TEMPLATES`` drawn uniformly, e.g. "what is 23 + 58 ?" or "add 23 and 58 ."
  (``make_prompts``).
* Completions: a correct answer in one of the surface forms ``FORMS`` ("81", "the answer is 81 .",
  "23 + 58 = 81", "it is 81 .", "that makes 81"). The demonstrator (``expert_completions``, ``make_demos``)
  is always correct and draws its form uniformly, so an imitator can be scored on accuracy *and* on how many
  forms its correct answers use (``surface_form``); ``irlhf.eval.text`` has the text-diversity metrics.
* True reward: ``check_answer`` / ``accuracy``, 1 if the last number of the completion is a + b, else 0.
* Pretraining ("SFT start"): ``make_corpus`` writes prompt-answer texts in which a fraction ``error_rate`` of
  answers is off by a small amount (+-1, +-2, +-10: slips and carry errors), so the pretrained model is an
  imperfect adder; ``pretrain`` and ``PretrainConfig`` are those of the sentiment task (any corpus of texts).
* Tokenizer: word level, except that every digit is its own token (``build_tokenizer``), so the model must
  compute the sum digit by digit rather than recall a token per number. ``make_model`` (a tiny GPT-2 from
  ``tiny_gpt_config``) and ``generate`` (seeded batched sampling) are the sentiment task's.

    tokenizer = build_tokenizer()
    model = make_model(tokenizer, seed=0)
    pretrain(model, tokenizer, make_corpus(5000, seed=1), PretrainConfig(steps=600))
    demos = make_demos(1000, seed=2)                       # [{"prompt", "completion"}, ...]
    prompts = make_prompts(make_problems(64, seed=3), seed=3)
    samples = [s[0] for s in generate(model, tokenizer, prompts, n_per_prompt=1, max_new_tokens=12)]
    accuracy(prompts, samples).mean()
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from irlhf.core.config import check_number
from irlhf.core.errors import ValidationError, describe
from irlhf.llm.tasks.sentiment import (
    SPECIAL_TOKENS,
    PretrainConfig,
    generate,
    make_model,
    pretrain,
    tiny_gpt_config,
)

if TYPE_CHECKING:  # transformers is imported lazily: it is slow to import
    import transformers

__all__ = [
    "DIGITS", "ERROR_OFFSETS", "FORMS", "PROMPT_TEMPLATES", "SPECIAL_TOKENS", "VOCABULARY", "PretrainConfig",
    "accuracy", "answer_of", "build_tokenizer", "check_answer", "expert_completions", "generate", "make_corpus",
    "make_demos", "make_model", "make_problems", "make_prompts", "operands_of", "pretrain", "surface_form",
    "tiny_gpt_config",
]

# ---------------------------------------------------------------------------------------------------------
# The language
# ---------------------------------------------------------------------------------------------------------

PROMPT_TEMPLATES: tuple[str, ...] = (
    "what is {a} + {b} ?",
    "add {a} and {b} .",
    "compute {a} plus {b} .",
    "how much is {a} plus {b} ?",
    "what is the sum of {a} and {b} ?",
)
"""Prompt templates; ``make_prompts`` draws one uniformly per problem."""

FORMS: dict[str, str] = {
    "bare": "{c}",
    "answer": "the answer is {c} .",
    "equation": "{a} + {b} = {c}",
    "it_is": "it is {c} .",
    "makes": "that makes {c}",
}
"""Surface forms of an answer by name; ``{c}`` is the sum (or, in the corpus, a wrong one)."""

DIGITS: tuple[str, ...] = tuple("0123456789")
ERROR_OFFSETS: tuple[int, ...] = (-10, -2, -1, 1, 2, 10)
"""How far a wrong corpus answer is from the sum (drawn uniformly; mirrored if the result would be < 0)."""

VOCABULARY: list[str] = list(dict.fromkeys(
    [*DIGITS, *(word for template in (*PROMPT_TEMPLATES, *FORMS.values()) for word in template.split()
                if not word.startswith("{"))]))
"""Every token of the language: the ten digits, then the words and symbols of the templates in order."""

MAX_DIGITS = 3
_WORD_PATTERN = re.compile(r"\w+|[^\w\s]+")  # the split of the tokenizers Whitespace pre-tokenizer
_NUMBER = re.compile(r"\d+")
_FORM_PATTERNS: dict[str, re.Pattern[str]] = {
    name: re.compile(re.escape(form).replace(r"\{a\}", r"\d+").replace(r"\{b\}", r"\d+").replace(r"\{c\}", r"\d+"))
    for name, form in FORMS.items()
}
# salts: make_demos calls make_problems, make_prompts and expert_completions with one seed; the salts keep
# their random streams independent (else template k would always meet form k)
_PROBLEM_SALT, _PROMPT_SALT, _FORM_SALT, _CORPUS_SALT = 0, 1, 2, 3


def _rng(seed: Any, salt: int) -> np.random.Generator:
    check_number("seed", seed, low=0, integer=True)
    return np.random.default_rng([int(seed), salt])


def _check_count(name: str, value: Any) -> None:
    check_number(name, value, low=1, integer=True)


def _check_digits(digits: Any) -> None:
    check_number("digits", digits, low=1, high=MAX_DIGITS, integer=True)


def _check_problems(problems: Any) -> list[tuple[int, int]]:
    if isinstance(problems, (str, bytes)) or not isinstance(problems, Sequence) or not problems:
        raise ValidationError(f"problems={describe(problems)}: expected a non-empty list of (a, b) pairs")
    checked = []
    for k, pair in enumerate(problems):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2 or not all(
                isinstance(x, (int, np.integer)) and not isinstance(x, bool) and x >= 0 for x in pair):
            raise ValidationError(f"problems[{k}]={describe(pair)}: expected a pair (a, b) of ints >= 0")
        checked.append((int(pair[0]), int(pair[1])))
    return checked


def _check_forms(forms: Any) -> tuple[str, ...]:
    if isinstance(forms, str) or not isinstance(forms, Sequence) or not forms:
        raise ValidationError(f"forms={describe(forms)}: expected a non-empty list of names from {list(FORMS)}")
    for name in forms:
        if name not in FORMS:
            raise ValidationError(f"forms: {describe(name)} is not a form; expected names from {list(FORMS)}")
    return tuple(forms)


def _check_texts(texts: Any, name: str) -> list[str]:
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise ValidationError(f"{name}={describe(texts)}: expected a sequence of strings (a list, not one string)")
    for k, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValidationError(f"{name}[{k}]={describe(text)}: expected a string")
    return list(texts)


def make_problems(n: int, seed: int = 0, digits: int = 2) -> list[tuple[int, int]]:
    """``n`` problems (a, b), each operand uniform in [0, 10^digits) (``digits`` 1 to 3; 2 gives 0..99).

    Returns a list of ``n`` pairs of Python ints. Same seed, same problems.
    """
    _check_count("n", n)
    _check_digits(digits)
    rng = _rng(seed, _PROBLEM_SALT)
    pairs = rng.integers(0, 10 ** digits, size=(n, 2))
    return [(int(a), int(b)) for a, b in pairs]


def make_prompts(problems: Sequence[tuple[int, int]], seed: int = 0) -> list[str]:
    """One prompt per problem, its template drawn uniformly from ``PROMPT_TEMPLATES``: "add 23 and 58 ."

    Returns a list of strings (tokens separated by single spaces). Same seed, same prompts.
    """
    checked = _check_problems(problems)
    picks = _rng(seed, _PROMPT_SALT).integers(len(PROMPT_TEMPLATES), size=len(checked))
    return [PROMPT_TEMPLATES[k].format(a=a, b=b) for (a, b), k in zip(checked, picks)]


def _write(form: str, a: int, b: int, c: int) -> str:
    return FORMS[form].format(a=a, b=b, c=c)


def expert_completions(problems: Sequence[tuple[int, int]], seed: int = 0,
                       forms: Sequence[str] = tuple(FORMS)) -> list[str]:
    """The demonstrator: for each problem a correct answer in a surface form drawn uniformly from ``forms``.

    forms: names of ``FORMS`` (default all five). Returns one completion per problem, without a leading
    space ("the answer is 81 ."). Every completion passes ``check_answer``. Same seed, same completions.
    """
    checked = _check_problems(problems)
    names = _check_forms(forms)
    picks = _rng(seed, _FORM_SALT).integers(len(names), size=len(checked))
    return [_write(names[k], a, b, a + b) for (a, b), k in zip(checked, picks)]


def make_demos(n: int, seed: int = 0, digits: int = 2, forms: Sequence[str] = tuple(FORMS)) -> list[dict[str, str]]:
    """``n`` expert demonstrations ``{"prompt", "completion"}``: ``make_problems``, ``make_prompts`` and
    ``expert_completions``, all with ``seed`` (independent streams).

    The completion keeps a leading space so that prompt + completion is the text ("add 2 and 3 ." + " 5"),
    as in the sentiment task's SFT data. Same seed, same demos.
    """
    problems = make_problems(n, seed, digits)
    prompts = make_prompts(problems, seed)
    completions = expert_completions(problems, seed, forms)
    return [{"prompt": prompt, "completion": " " + completion} for prompt, completion in zip(prompts, completions)]


def make_corpus(n: int, seed: int = 0, error_rate: float = 0.3, digits: int = 2,
                forms: Sequence[str] = tuple(FORMS)) -> list[str]:
    """``n`` pretraining texts "prompt answer" ("what is 23 + 58 ? the answer is 81 ."), some answers wrong.

    Each text is a fresh problem (``digits`` as in ``make_problems``), a uniform prompt template and a uniform
    form from ``forms``; with probability ``error_rate`` (in [0, 1]) the stated sum is c + d instead of c,
    d uniform in ``ERROR_OFFSETS`` (-d if c + d < 0), so a model pretrained on it is an imperfect adder. In
    the "equation" form the operands are restated correctly. Same seed, same corpus.
    """
    _check_count("n", n)
    _check_digits(digits)
    check_number("error_rate", error_rate, low=0, high=1)
    names = _check_forms(forms)
    rng = _rng(seed, _CORPUS_SALT)
    texts = []
    for _ in range(n):
        a, b = (int(x) for x in rng.integers(0, 10 ** digits, size=2))
        template = PROMPT_TEMPLATES[int(rng.integers(len(PROMPT_TEMPLATES)))]
        form = names[int(rng.integers(len(names)))]
        c = a + b
        if rng.random() < error_rate:
            offset = ERROR_OFFSETS[int(rng.integers(len(ERROR_OFFSETS)))]
            c = c + offset if c + offset >= 0 else c - offset
        texts.append(template.format(a=a, b=b) + " " + _write(form, a, b, c))
    return texts


# ---------------------------------------------------------------------------------------------------------
# The true reward
# ---------------------------------------------------------------------------------------------------------

def operands_of(prompt: str) -> tuple[int, int]:
    """The two operands of a prompt: its two numbers, in order. Raises unless it has exactly two."""
    if not isinstance(prompt, str):
        raise ValidationError(f"prompt={describe(prompt)}: expected a string")
    numbers = _NUMBER.findall(prompt)
    if len(numbers) != 2:
        raise ValidationError(f"prompt={describe(prompt)}: expected an addition prompt with exactly two numbers, "
                              f"found {len(numbers)}")
    return int(numbers[0]), int(numbers[1])


def answer_of(completion: str) -> int | None:
    """The answer a completion gives: its last run of digits as an int, or None if it has no digit."""
    if not isinstance(completion, str):
        raise ValidationError(f"completion={describe(completion)}: expected a string")
    numbers = _NUMBER.findall(completion)
    return int(numbers[-1]) if numbers else None


def check_answer(prompt: str, completion: str) -> bool:
    """True iff the last number in ``completion`` equals the sum of the two numbers in ``prompt``.

    Exact and form-free: "81", "the answer is 81 ." and "23 + 58 = 81" are all right for "what is 23 + 58 ?";
    "80", "the answer is 81 . no , 80" and a completion without a number are wrong. Numbers compare as
    integers ("081" counts as 81). Only the final number is read (as in GSM8K-style checkers), so operands
    restated wrongly before a right sum are not penalised.
    """
    a, b = operands_of(prompt)
    answer = answer_of(completion)
    return answer is not None and answer == a + b


def accuracy(prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
    """The true reward of each (prompt, completion): 1.0 if ``check_answer`` else 0.0; float64 array (N,)."""
    checked_prompts = _check_texts(prompts, "prompts")
    checked = _check_texts(completions, "completions")
    if len(checked_prompts) != len(checked):
        raise ValidationError(f"completions: {len(checked)} for {len(checked_prompts)} prompts; expected one each")
    return np.array([float(check_answer(p, c)) for p, c in zip(checked_prompts, checked)], dtype=np.float64)


def surface_form(completion: str) -> str | None:
    """The name in ``FORMS`` whose pattern the completion matches (numbers as wildcards), else None.

    Whitespace is normalised the way the tokenizer splits ("81." reads as "81 ."), so " the answer is 81."
    is "answer". The form says nothing about correctness: count forms among the completions that pass
    ``check_answer`` to measure the diversity of correct answers.
    """
    if not isinstance(completion, str):
        raise ValidationError(f"completion={describe(completion)}: expected a string")
    normalised = " ".join(_WORD_PATTERN.findall(completion))
    for name, pattern in _FORM_PATTERNS.items():
        if pattern.fullmatch(normalised):
            return name
    return None


# ---------------------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------------------

def build_tokenizer() -> transformers.PreTrainedTokenizerFast:
    """Word-level tokenizer over ``SPECIAL_TOKENS`` + ``VOCABULARY`` in which every digit is a token.

    Ids: "<pad>" 0, "<bos>" 1, "<eos>" 2, "<unk>" 3 (as the sentiment task's), then ``VOCABULARY`` in order
    from id 4 (digits "0".."9" are ids 4..13). Text is split on whitespace and punctuation, then numbers into
    single digits ("81" -> "8", "1"). Decoding joins tokens with single spaces except between two digits, so
    decode(encode(text)) == text for task text. Like the sentiment tokenizer it prepends "<bos>" itself and
    never adds "<eos>"; padding side "right". ``save_pretrained`` / ``AutoTokenizer.from_pretrained``
    round-trip it.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors  # why: slow import
    from transformers import PreTrainedTokenizerFast  # why: slow import

    vocab = {token: index for index, token in enumerate([*SPECIAL_TOKENS, *VOCABULARY])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(),
                                                  pre_tokenizers.Digits(individual_digits=True)])
    # WordPiece without cleanup puts a space before every token; after fusing, drop the spaces between digits.
    core.decoder = decoders.Sequence([decoders.WordPiece(prefix="##", cleanup=False), decoders.Fuse(),
                                      decoders.Replace(Regex(r"(?<=\d) (?=\d)"), "")])
    core.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A $B",
                                                        special_tokens=[("<bos>", vocab["<bos>"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>",
        padding_side="right", model_max_length=1024,
    )
