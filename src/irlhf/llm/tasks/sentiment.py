"""Controlled sentiment: a tiny synthetic version of the IMDb task of the DPO paper, sized for one CPU thread.

The DPO paper (Rafailov et al., 2023, section 6.1) fine-tunes GPT-2 on IMDb reviews and then aligns it to
write *positive* continuations of review prefixes, judging them with a sentiment classifier. Here every
piece is local and small, so the whole pipeline runs on a CPU in minutes with nothing downloaded:

* a synthetic review language (``VOCABULARY``, about 280 words and two punctuation tokens) generated from
  a few sentence templates (``make_corpus``, ``make_prompts``);
* a ground-truth reward that does not depend on any policy: a VADER-like lexicon scorer
  (``sentiment_score``) with fixed word valences (``POSITIVE``, ``NEGATIVE``);
* a word-level tokenizer built from the vocabulary (``build_tokenizer``) and a tiny GPT-2 built from a
  config (``tiny_gpt_config``, ``make_model``);
* next-token pretraining on the corpus (``PretrainConfig``, ``pretrain``), the "SFT" model the alignment
  methods start from, and seeded batched sampling (``generate``).

Each review has a latent sentiment (mostly positive, mostly negative or mixed); every sentiment slot of
its templates draws a positive word with probability 0.85, 0.15 or 0.5 respectively. A pretrained model
thus writes reviews of all three kinds, and alignment must shift it towards the positive ones. Prompts are
sentiment-free review openings ("the plot of this film was"), so the continuation decides the score.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import TYPE_CHECKING, Annotated, Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from irlhf.core.config import BaseConfig, Positive, PositiveInt, Range, Seed, check_number
from irlhf.core.errors import ValidationError, describe

if TYPE_CHECKING:  # transformers is imported lazily: it is slow to import and optional for irlhf
    import transformers

# ---------------------------------------------------------------------------------------------------------
# The language
# ---------------------------------------------------------------------------------------------------------

# Valences (magnitudes in [0.8, 3.0], VADER-like; negative words count with a minus sign).
POSITIVE_ADJECTIVES: dict[str, float] = {
    "great": 2.0, "good": 1.5, "wonderful": 2.5, "excellent": 2.6, "superb": 2.7, "brilliant": 2.6,
    "fantastic": 2.5, "amazing": 2.4, "beautiful": 2.2, "lovely": 2.0, "charming": 1.8, "delightful": 2.2,
    "enjoyable": 1.8, "fun": 1.5, "funny": 1.3, "clever": 1.5, "smart": 1.3, "moving": 1.4,
    "touching": 1.5, "gripping": 1.7, "thrilling": 1.9, "stunning": 2.3, "solid": 1.2, "nice": 1.2,
    "fine": 0.8, "decent": 0.9, "pleasant": 1.3, "fresh": 1.0, "memorable": 1.6, "perfect": 2.8,
    "outstanding": 2.7, "magnificent": 2.8, "masterful": 2.6, "engaging": 1.6, "witty": 1.5,
    "heartfelt": 1.6, "inspired": 1.7, "powerful": 1.8,
}
NEGATIVE_ADJECTIVES: dict[str, float] = {
    "bad": 1.8, "awful": 2.5, "terrible": 2.6, "horrible": 2.6, "dreadful": 2.5, "dull": 1.5,
    "boring": 1.7, "weak": 1.2, "poor": 1.5, "lame": 1.4, "bland": 1.1, "tedious": 1.6, "clumsy": 1.2,
    "silly": 1.0, "stupid": 1.8, "pointless": 1.7, "forgettable": 1.2, "messy": 1.1, "predictable": 0.9,
    "annoying": 1.6, "painful": 1.9, "unbearable": 2.5, "lifeless": 1.7, "ridiculous": 1.4,
    "shallow": 1.2, "mediocre": 1.3, "sloppy": 1.4, "disappointing": 1.9, "pathetic": 2.3,
    "atrocious": 2.8, "wooden": 1.0, "flat": 0.9, "confusing": 1.2, "lazy": 1.4, "cheap": 1.1,
    "overlong": 0.8,
}
POSITIVE_VERBS: dict[str, float] = {
    "loved": 2.3, "enjoyed": 1.9, "adored": 2.4, "liked": 1.5, "admired": 1.6, "recommend": 1.8,
    "cherished": 2.1, "appreciated": 1.5,
}
NEGATIVE_VERBS: dict[str, float] = {
    "hated": 2.4, "disliked": 1.6, "loathed": 2.6, "regretted": 1.8, "despised": 2.5, "resented": 1.5,
    "detested": 2.5, "endured": 1.0,
}
POSITIVE_ADVERBS: dict[str, float] = {
    "beautifully": 2.0, "brilliantly": 2.4, "wonderfully": 2.3, "superbly": 2.5, "cleverly": 1.5,
    "skillfully": 1.7, "perfectly": 2.3, "nicely": 1.2,
}
NEGATIVE_ADVERBS: dict[str, float] = {
    "poorly": 1.6, "badly": 1.8, "terribly": 2.3, "awfully": 2.1, "clumsily": 1.3, "lazily": 1.3,
    "sloppily": 1.4, "horribly": 2.4,
}
POSITIVE_NOUNS: dict[str, float] = {
    "masterpiece": 3.0, "joy": 2.0, "triumph": 2.5, "gem": 2.2, "delight": 2.2, "treat": 1.8,
}
NEGATIVE_NOUNS: dict[str, float] = {
    "mess": 1.8, "disaster": 2.6, "failure": 2.2, "bore": 1.8, "letdown": 1.9, "waste": 2.0,
}

POSITIVE: dict[str, float] = {**POSITIVE_ADJECTIVES, **POSITIVE_VERBS, **POSITIVE_ADVERBS, **POSITIVE_NOUNS}
"""Positive words and their valence (> 0); each occurrence adds its valence to the raw score."""
NEGATIVE: dict[str, float] = {**NEGATIVE_ADJECTIVES, **NEGATIVE_VERBS, **NEGATIVE_ADVERBS, **NEGATIVE_NOUNS}
"""Negative words and their valence magnitude (> 0); each occurrence subtracts it from the raw score."""

# Neutral words, by grammatical role in the templates.
DETERMINERS = ("the", "this", "that")
SUBJECT_NOUNS = (
    "film", "movie", "plot", "acting", "story", "script", "ending", "cast", "director", "music",
    "soundtrack", "dialogue", "pacing", "editing", "villain", "hero", "finale", "premise", "sequel",
    "screenplay", "performance", "picture", "score", "lead",
)
INTENSIFIERS = ("very", "really", "quite", "rather", "truly", "somewhat", "pretty", "so", "fairly",
                "simply", "extremely", "totally")
PARTICIPLES = ("made", "written", "acted", "shot", "directed", "edited", "paced", "filmed", "played", "staged")
PLACES = (("at", "the", "cinema"), ("at", "home"), ("on", "tv"), ("with", "my", "family"),
          ("with", "friends"), ("on", "a", "plane"), ("at", "a", "festival"), ("on", "my", "laptop"))
TIMES = (("last", "night"), ("last", "week"), ("on", "sunday"), ("yesterday",), ("this", "weekend"),
         ("last", "year"), ("twice",), ("again",))
PERSON_ADJECTIVES = ("young", "old", "retired", "former", "local", "single", "new", "quiet")
PERSONS = ("detective", "teacher", "soldier", "doctor", "family", "farmer", "singer", "boxer", "lawyer",
           "student", "pilot", "chef", "nurse", "writer", "sailor", "painter")
SETTINGS = ("town", "city", "village", "school", "ship", "hospital", "desert", "forest", "prison",
            "kitchen", "island", "castle")
DURATIONS = ("eighty", "ninety", "hundred", "twenty", "thirty", "forty")
FUNCTION_WORDS = ("i", "we", "it", "is", "was", "a", "of", "and", "but", "in", "about", "who", "for",
                  "runs", "minutes", "overall", "watched", "saw", "also", "my", "first", "time", "to", "had")
PUNCTUATION = (".", ",")


def _ordered_unique(words: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(words))


VOCABULARY: list[str] = _ordered_unique(
    [*PUNCTUATION, *FUNCTION_WORDS, *DETERMINERS, *SUBJECT_NOUNS, *INTENSIFIERS, *PARTICIPLES,
     *(w for p in PLACES for w in p), *(w for t in TIMES for w in t), *PERSON_ADJECTIVES, *PERSONS,
     *SETTINGS, *DURATIONS, *POSITIVE, *NEGATIVE]
)
"""Every word of the language in a fixed order (punctuation first); the tokenizer's ids follow this order."""

SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<unk>")
"""Special tokens with ids 0, 1, 2, 3; the vocabulary words follow from id 4."""

LATENT_SENTIMENTS: tuple[int, ...] = (1, -1, 0)
"""Latent review sentiments: +1 mostly positive, -1 mostly negative, 0 mixed."""
_POSITIVE_SLOT_PROBABILITY = {1: 0.85, -1: 0.15, 0: 0.5}
MIN_REVIEW_WORDS = 8
MAX_REVIEW_WORDS = 30
VADER_ALPHA = 15.0
"""Normaliser of the compound score x / sqrt(x^2 + alpha), as in VADER."""

_WORD_PATTERN = re.compile(r"\w+|[^\w\s]+")  # the split of the tokenizers Whitespace pre-tokenizer

_POSITIVE_BY_ROLE = {"adjective": sorted(POSITIVE_ADJECTIVES), "verb": sorted(POSITIVE_VERBS),
                     "adverb": sorted(POSITIVE_ADVERBS), "noun": sorted(POSITIVE_NOUNS)}
_NEGATIVE_BY_ROLE = {"adjective": sorted(NEGATIVE_ADJECTIVES), "verb": sorted(NEGATIVE_VERBS),
                     "adverb": sorted(NEGATIVE_ADVERBS), "noun": sorted(NEGATIVE_NOUNS)}


def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


class _ReviewWriter:
    """Samples the sentences of one review; every sentiment slot is positive with probability ``p_positive``."""

    def __init__(self, rng: np.random.Generator, p_positive: float) -> None:
        self.rng = rng
        self.p_positive = p_positive

    def sentiment_word(self, role: str) -> str:
        lexicon = _POSITIVE_BY_ROLE if self.rng.random() < self.p_positive else _NEGATIVE_BY_ROLE
        return _pick(self.rng, lexicon[role])

    def maybe_intensifier(self) -> list[str]:
        return [_pick(self.rng, INTENSIFIERS)] if self.rng.random() < 0.35 else []

    def subject(self) -> list[str]:
        words = [_pick(self.rng, DETERMINERS), _pick(self.rng, SUBJECT_NOUNS)]
        if self.rng.random() < 0.2:  # "the plot of this film"
            words += ["of", _pick(self.rng, DETERMINERS), _pick(self.rng, ("film", "movie", "picture", "sequel"))]
        return words

    def sentiment_sentence(self) -> list[str]:
        kind = int(self.rng.integers(6))
        if kind == 0:  # the film was really great .
            return [*self.subject(), "was", *self.maybe_intensifier(), self.sentiment_word("adjective"), "."]
        if kind == 1:  # the plot was dull and silly .
            return [*self.subject(), "was", *self.maybe_intensifier(), self.sentiment_word("adjective"), "and",
                    *self.maybe_intensifier(), self.sentiment_word("adjective"), "."]
        if kind == 2:  # i really loved this movie .
            adverb = ["really"] if self.rng.random() < 0.3 else []
            return ["i", *adverb, self.sentiment_word("verb"), *self.subject(), "."]
        if kind == 3:  # the film was beautifully shot .
            return [*self.subject(), "was", self.sentiment_word("adverb"), _pick(self.rng, PARTICIPLES), "."]
        if kind == 4:  # the ending was a mess .
            return [*self.subject(), "was", "a", self.sentiment_word("noun"), "."]
        # the acting was good , but the script was weak .
        return [*self.subject(), "was", self.sentiment_word("adjective"), ",", "but", *self.subject(), "was",
                self.sentiment_word("adjective"), "."]

    def neutral_sentence(self) -> list[str]:
        kind = int(self.rng.integers(3))
        if kind == 0:  # i watched it at home last night .
            return [_pick(self.rng, ("i", "we")), _pick(self.rng, ("watched", "saw")), "it",
                    *_pick(self.rng, PLACES), *_pick(self.rng, TIMES), "."]
        if kind == 1:  # it is about a retired teacher in a small town .
            return ["it", "is", "about", "a", _pick(self.rng, PERSON_ADJECTIVES), _pick(self.rng, PERSONS),
                    "in", "a", _pick(self.rng, SETTINGS), "."]
        # it runs for about ninety minutes .
        return ["it", "runs", "for", "about", _pick(self.rng, DURATIONS), "minutes", "."]

    def closing_sentence(self) -> list[str]:
        # overall , it was truly wonderful .
        return ["overall", ",", "it", "was", *self.maybe_intensifier(), self.sentiment_word("adjective"), "."]

    def review(self) -> list[str]:
        target = int(self.rng.integers(MIN_REVIEW_WORDS, MAX_REVIEW_WORDS + 1))
        words = self.neutral_sentence() if self.rng.random() < 0.3 else []
        while len(words) < target:
            sentence = self.closing_sentence() if len(words) and self.rng.random() < 0.15 else self.sentiment_sentence()
            if len(words) + len(sentence) > MAX_REVIEW_WORDS:
                if len(words) >= MIN_REVIEW_WORDS:
                    break
                continue  # too long for the budget: draw another sentence
            words += sentence
        return words


def _check_count(name: str, value: Any) -> None:
    check_number(name, value, low=1, integer=True)


def _check_seed(seed: Any) -> None:
    check_number("seed", seed, low=0, integer=True)


def make_labelled_corpus(n_reviews: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Sample ``n_reviews`` synthetic reviews and their latent sentiments.

    Each review first draws its latent sentiment uniformly from ``LATENT_SENTIMENTS`` (+1 mostly positive,
    -1 mostly negative, 0 mixed), then a length budget uniform in [8, 30] words (punctuation counts as a
    word), then sentences from the templates until the budget is met; a sentence that would exceed 30
    words is redrawn. Text is lowercase with words separated by single spaces.

    Returns (reviews, latent): a list of N strings and an int64 array of shape (N,) with values in
    {-1, 0, +1}. Same seed, same corpus (numpy ``default_rng(seed)``).
    """
    _check_count("n_reviews", n_reviews)
    _check_seed(seed)
    rng = np.random.default_rng(seed)
    reviews: list[str] = []
    latent = np.empty(n_reviews, dtype=np.int64)
    for k in range(n_reviews):
        sentiment = _pick(rng, LATENT_SENTIMENTS)
        latent[k] = sentiment
        reviews.append(" ".join(_ReviewWriter(rng, _POSITIVE_SLOT_PROBABILITY[sentiment]).review()))
    return reviews, latent


def make_corpus(n_reviews: int, seed: int = 0) -> list[str]:
    """Sample ``n_reviews`` synthetic reviews (8 to 30 words each); see ``make_labelled_corpus``.

    Returns a list of N lowercase strings, words separated by single spaces. Same seed, same corpus.
    """
    return make_labelled_corpus(n_reviews, seed)[0]


_SENTIMENT_WORDS = frozenset(POSITIVE) | frozenset(NEGATIVE)


def make_prompts(n: int, seed: int = 0) -> list[str]:
    """Sample ``n`` sentiment-free review openings, e.g. "the plot of this film was" or "i really".

    Each prompt is the first k words of a fresh review (k uniform in [2, 6]), cut before its first
    sentiment word; a review whose opening has fewer than 2 sentiment-free words is redrawn. So no prompt
    contains a word of ``POSITIVE`` or ``NEGATIVE`` and the continuation decides the sentiment.

    Prompts come from the same review distribution as ``make_corpus``; use a seed different from the
    corpus seed (the caller's job) to get openings of reviews the model was not trained on.
    Returns a list of ``n`` strings. Same seed, same prompts.
    """
    _check_count("n", n)
    _check_seed(seed)
    rng = np.random.default_rng(seed)
    prompts: list[str] = []
    while len(prompts) < n:
        sentiment = _pick(rng, LATENT_SENTIMENTS)
        words = _ReviewWriter(rng, _POSITIVE_SLOT_PROBABILITY[sentiment]).review()
        opening = words[: int(rng.integers(2, 7))]
        cut = next((i for i, word in enumerate(opening) if word in _SENTIMENT_WORDS), len(opening))
        if cut >= 2:
            prompts.append(" ".join(opening[:cut]))
    return prompts


# ---------------------------------------------------------------------------------------------------------
# Ground-truth reward
# ---------------------------------------------------------------------------------------------------------

def _check_texts(texts: Any, name: str = "texts") -> list[str]:
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise ValidationError(f"{name}={describe(texts)}: expected a sequence of strings (a list, not one string)")
    for k, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValidationError(f"{name}[{k}]={describe(text)}: expected a string")
    return list(texts)


def raw_sentiment(text: str) -> float:
    """Sum of word valences of one text: x = sum(POSITIVE[w]) - sum(NEGATIVE[w]) over its words.

    Words are split like the tokenizer (runs of letters/digits, runs of punctuation) and lowercased;
    unknown words and punctuation count 0.
    """
    total = 0.0
    for word in _WORD_PATTERN.findall(text.lower()):
        total += POSITIVE.get(word, 0.0) - NEGATIVE.get(word, 0.0)
    return total


def sentiment_score(texts: Sequence[str]) -> np.ndarray:
    """Ground-truth sentiment of each text, a VADER-like compound score in (-1, 1).

    score = x / sqrt(x^2 + alpha), with x = ``raw_sentiment(text)`` (sum of the valences of its words,
    negative words counting negatively) and alpha = ``VADER_ALPHA`` = 15. Unknown words count 0 and an
    empty text scores 0. Example: "the film was great ." has x = 2.0 and scores 2 / sqrt(19) = 0.4588.
    The score depends only on the text, never on a model, so it is the reward that alignment maximises
    and the yardstick of every method.

    texts: N strings. Returns float64 array of shape (N,).
    """
    checked = _check_texts(texts)
    raw = np.array([raw_sentiment(text) for text in checked], dtype=np.float64)
    return raw / np.sqrt(raw * raw + VADER_ALPHA)


# ---------------------------------------------------------------------------------------------------------
# Tokenizer and model
# ---------------------------------------------------------------------------------------------------------

def build_tokenizer() -> transformers.PreTrainedTokenizerFast:
    """Word-level tokenizer over ``SPECIAL_TOKENS`` + ``VOCABULARY`` (no downloads).

    Ids: "<pad>" 0, "<bos>" 1, "<eos>" 2, "<unk>" 3, then ``VOCABULARY`` in order from id 4. Text is split
    by the Whitespace pre-tokenizer (runs of word characters, runs of punctuation); unknown words map to
    "<unk>". Decoding joins tokens with single spaces, so decode(encode(text)) == text for corpus text.
    Like Llama's tokenizers it prepends "<bos>" itself (``tokenizer(text)`` starts with id 1; pass
    ``add_special_tokens=False`` for the bare words), so ``irlhf.llm.tokenize``'s ``add_bos="auto"`` and every
    trainer see the same "<bos> prompt completion <eos>" the model was pretrained on; "<eos>" is never added
    automatically. Padding side is "right" (``generate`` left-pads on its own). ``save_pretrained`` and
    ``AutoTokenizer.from_pretrained`` round-trip it.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors  # why: optional, slow (llm extra)
    from transformers import PreTrainedTokenizerFast  # why: optional, slow (llm extra)

    vocab = {token: index for index, token in enumerate([*SPECIAL_TOKENS, *VOCABULARY])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    # WordPiece without cleanup puts one space before every token that is not a "##" continuation.
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    core.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A $B",
                                                        special_tokens=[("<bos>", vocab["<bos>"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>",
        padding_side="right", model_max_length=1024,
    )


def tiny_gpt_config(vocab_size: int, *, pad_token_id: int = 0, bos_token_id: int = 1, eos_token_id: int = 2,
                    n_layer: int = 2, n_embd: int = 64, n_head: int = 4, n_positions: int = 64,
                    dropout: float = 0.0) -> transformers.GPT2Config:
    """GPT-2 config for a tiny model (defaults: 2 layers, width 64, 4 heads, context 64 tokens).

    Special-token ids default to those of ``build_tokenizer``. Dropout defaults to 0 so that log
    probabilities are the same in train and eval mode, which PPO and DPO rely on.
    """
    from transformers import GPT2Config  # why: optional, slow (llm extra)

    for name, value in (("vocab_size", vocab_size), ("n_layer", n_layer), ("n_embd", n_embd),
                        ("n_head", n_head), ("n_positions", n_positions)):
        check_number(name, value, low=1, integer=True)
    for name, value in (("pad_token_id", pad_token_id), ("bos_token_id", bos_token_id),
                        ("eos_token_id", eos_token_id)):
        check_number(name, value, low=0, high=vocab_size - 1, integer=True)
    if n_embd % n_head:
        raise ValidationError(f"n_embd={n_embd!r}: expected a multiple of n_head={n_head!r}")
    check_number("dropout", dropout, low=0, high=1, high_open=True)
    return GPT2Config(
        vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
        resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
        pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id,
    )


def make_model(tokenizer: Any, seed: int = 0, **config_kwargs: Any) -> transformers.GPT2LMHeadModel:
    """A freshly initialised tiny GPT-2 for ``tokenizer`` (keyword arguments go to ``tiny_gpt_config``).

    Weights are drawn under ``torch.manual_seed(seed)`` inside ``torch.random.fork_rng``: same seed, same
    weights, and the global torch random state is left untouched. Returned in eval mode on the CPU.
    """
    from transformers import GPT2LMHeadModel  # why: optional, slow (llm extra)

    _check_seed(seed)
    config = tiny_gpt_config(len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                             bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                             **config_kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    return model.eval()


# ---------------------------------------------------------------------------------------------------------
# Pretraining (the SFT model)
# ---------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PretrainConfig(BaseConfig):
    """Next-token pretraining settings.

    steps: optimiser steps (>= 1).
    batch_size: reviews per step, drawn uniformly with replacement from the corpus (>= 1).
    lr: AdamW learning rate (> 0), constant; weight decay 0.
    max_length: tokens per sequence including "<bos>" and "<eos>" (>= 2); longer sequences are cut.
    seed: seeds the batch sampling (numpy) and, inside ``fork_rng``, dropout (torch).
    progress: show a tqdm progress bar over steps.
    """

    steps: PositiveInt = 300
    batch_size: PositiveInt = 32
    lr: Positive = 3e-3
    max_length: Annotated[int, Range(2)] = 64
    seed: Seed = 0
    progress: bool = False


def encode_reviews(tokenizer: Any, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of "<bos> text <eos>" for each text, right-padded with "<pad>" and cut at ``max_length``.

    Returns (input_ids, attention_mask): int64 tensors of shape (N, T) with T the longest sequence (at
    most ``max_length``); attention_mask is 1 on real tokens and 0 on padding.
    """
    checked = _check_texts(texts)
    rows = [[tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id][:max_length]
            for text in checked]
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for k, row in enumerate(rows):
        input_ids[k, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[k, : len(row)] = 1
    return input_ids, attention_mask


def pretrain(model: Any, tokenizer: Any, corpus: Sequence[str], config: PretrainConfig | None = None
             ) -> dict[str, Any]:
    """Train ``model`` in place by next-token cross-entropy on "<bos> review <eos>" sequences.

    Each step draws ``config.batch_size`` reviews uniformly with replacement, trims the batch to its
    longest sequence and minimises the mean cross-entropy (nats per token) over all non-pad tokens
    ("<eos>" included, so the model learns to stop; padding is ignored). AdamW with a constant rate.
    The model is left in eval mode.

    Returns {"loss": mean loss of the last min(10, steps) steps, "losses": list of the per-step losses}.
    """
    config = PretrainConfig() if config is None else config
    if not isinstance(config, PretrainConfig):
        raise ValidationError(f"config={describe(config)}: expected a PretrainConfig")
    checked = _check_texts(corpus, "corpus")
    if not checked:
        raise ValidationError("corpus=[]: expected at least one review")
    max_positions = int(model.config.n_positions)
    input_ids, attention_mask = encode_reviews(tokenizer, checked, min(config.max_length, max_positions))
    lengths = attention_mask.sum(dim=1)
    labels_all = input_ids.masked_fill(attention_mask == 0, -100)
    device = next(model.parameters()).device  # train where the model is (a GPU if the caller moved it there)
    input_ids, attention_mask, labels_all = input_ids.to(device), attention_mask.to(device), labels_all.to(device)
    rng = np.random.default_rng(config.seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    steps = range(config.steps)
    if config.progress:
        steps = tqdm(steps, desc="pretraining", unit="step", dynamic_ncols=True)
    losses: list[float] = []
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        for _ in steps:
            batch = torch.as_tensor(rng.integers(len(checked), size=config.batch_size))
            width = int(lengths[batch].max())
            logits = model(input_ids=input_ids[batch, :width], attention_mask=attention_mask[batch, :width]).logits
            # Token t predicts token t + 1; mean over the non-pad targets, as transformers' causal LM loss.
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1),
                                                     labels_all[batch, 1:width].flatten(), ignore_index=-100)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
            if config.progress:
                steps.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    model.eval()
    return {"loss": float(np.mean(losses[-10:])), "losses": losses}


# ---------------------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------------------

@torch.no_grad()
def generate(model: Any, tokenizer: Any, prompts: Sequence[str], n_per_prompt: int, max_new_tokens: int = 24,
             temperature: float = 1.0, seed: int = 0, batch_size: int = 256) -> list[list[str]]:
    """Sample ``n_per_prompt`` continuations of each prompt.

    Each sequence starts "<bos> prompt"; rows are left-padded (position ids count real tokens only, so a
    padded row computes exactly what it would alone) and decoded with a KV cache, ``batch_size`` rows at
    a time. Tokens are drawn from softmax(logits / temperature) with a ``torch.Generator`` seeded by
    ``seed`` (global random state untouched); temperature 0 means greedy. A row stops at "<eos>" or after
    ``max_new_tokens`` tokens. The model is used as it is (put it in eval mode if it has dropout).

    Returns a list with one list per prompt of ``n_per_prompt`` strings: the completion text only (no
    prompt, no special tokens), words joined by single spaces. Same seed, same samples.
    """
    checked = _check_texts(prompts, "prompts")
    _check_count("n_per_prompt", n_per_prompt)
    _check_count("max_new_tokens", max_new_tokens)
    check_number("temperature", temperature, low=0)
    _check_seed(seed)
    _check_count("batch_size", batch_size)
    prompt_ids = [tokenizer(text)["input_ids"] for text in checked]  # "<bos> prompt"
    max_positions = int(model.config.n_positions)
    longest = max((len(ids) for ids in prompt_ids), default=0)
    if longest + max_new_tokens > max_positions:
        raise ValidationError(f"max_new_tokens={max_new_tokens!r}: the longest prompt has {longest} tokens "
                              f"with <bos>, and together they exceed the model's {max_positions} positions")
    rows = [ids for ids in prompt_ids for _ in range(n_per_prompt)]
    generator = torch.Generator().manual_seed(seed)
    completions: list[str] = []
    for start in range(0, len(rows), batch_size):
        new_tokens = _sample_batch(model, rows[start:start + batch_size], max_new_tokens, temperature,
                                   generator, tokenizer.pad_token_id, tokenizer.eos_token_id)
        completions += tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    return [completions[k * n_per_prompt:(k + 1) * n_per_prompt] for k in range(len(checked))]


def _sample_batch(model: Any, rows: list[list[int]], max_new_tokens: int, temperature: float,
                  generator: torch.Generator, pad_id: int, eos_id: int) -> list[list[int]]:
    """Sample continuations of left-padded ``rows``; returns each row's new tokens up to (not incl.) <eos>."""
    width = max(len(row) for row in rows)
    device = next(model.parameters()).device
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for k, row in enumerate(rows):
        input_ids[k, width - len(row):] = torch.tensor(row, dtype=torch.long)
        attention_mask[k, width - len(row):] = 1
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    # transformers 5 calls the KV cache argument and output "cache"; 4.x called them "past_key_values".
    cache_name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    output = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True)
    finished = torch.zeros(len(rows), dtype=torch.bool)
    new_tokens: list[list[int]] = [[] for _ in rows]
    next_position = position_ids[:, -1:] + 1
    for step in range(max_new_tokens):
        logits = output.logits[:, -1, :].float()
        if temperature == 0:
            token = logits.argmax(dim=-1).cpu()
        else:
            probabilities = torch.softmax(logits / temperature, dim=-1).cpu()  # the CPU generator: same draws anywhere
            token = torch.multinomial(probabilities, 1, generator=generator).squeeze(1)
        for k in torch.nonzero(~finished & (token != eos_id)).flatten().tolist():
            new_tokens[k].append(int(token[k]))
        finished |= token == eos_id
        if bool(finished.all()) or step == max_new_tokens - 1:
            break
        token = token.masked_fill(finished, pad_id)
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(rows), 1))], dim=1)
        output = model(input_ids=token[:, None].to(device), attention_mask=attention_mask, position_ids=next_position,
                       use_cache=True, **{cache_name: getattr(output, cache_name)})
        next_position = next_position + 1
    return new_tokens

