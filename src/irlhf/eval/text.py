"""Diversity of generated text: distinct-n, self-BLEU and the policy's per-token entropy.

Imitation of language is judged on task score *and* diversity (Wulfmeier et al. 2024): a policy that found
one right answer and repeats it scores well on the first and badly on the second. Three measures, each of a
set of N texts (typically the samples of one policy on the evaluation prompts):

- ``distinct_n`` (Li et al. 2016): |distinct n-grams| / |n-grams| over the whole set, whitespace tokens.
  In [0, 1]; higher = more diverse.
- ``self_bleu`` (Zhu et al. 2018, Texygen): (1/N) sum_i BLEU(text_i; references = all texts j != i), with
  sacrebleu's sentence BLEU. In [0, 100]; *lower* = more diverse (100: every text occurs elsewhere in the set).
- ``mean_token_entropy`` / ``policy_entropy``: the mean over completion tokens of the entropy (nats)
  H_t = -sum_v p(v | y_<t, x) log p(v | y_<t, x) of the model's next-token distribution. In [0, log V];
  higher = a more random policy. Unlike the two above it is a property of the model, not of the samples.

    distinct_n(samples, 2), self_bleu(samples), policy_entropy(model, tokenizer, prompts, samples)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from irlhf.core.config import check_number
from irlhf.core.errors import ValidationError, describe
from irlhf.llm.tokenize import Encoded, TokenizeOptions, collate, encode, pad_id_of, prompt_text, tokenizer_adds_bos

__all__ = ["distinct_n", "mean_token_entropy", "policy_entropy", "self_bleu"]

SMOOTH_METHODS = ("exp", "floor", "add-k", "none")


def _check_texts(texts: Any, name: str = "texts", minimum: int = 1) -> list[str]:
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise ValidationError(f"{name}={describe(texts)}: expected a sequence of strings (a list, not one string)")
    for k, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValidationError(f"{name}[{k}]={describe(text)}: expected a string")
    if len(texts) < minimum:
        raise ValidationError(f"{name}: {len(texts)} texts; expected at least {minimum}")
    return list(texts)


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct-n of a set of texts: (number of distinct n-grams) / (number of n-grams), pooled over the set.

    Tokens are the whitespace-separated words of each text; n-grams do not cross text boundaries, and a text
    of fewer than n words contributes none. Example: {"a b", "a b", "a c"} has distinct-1 = |{a, b, c}| / 6
    = 0.5 and distinct-2 = |{a b, a c}| / 3 = 2/3. A set without any n-gram (all texts shorter than n)
    scores 0.0: no diversity to measure. texts: a non-empty list of strings; n >= 1.
    """
    checked = _check_texts(texts)
    check_number("n", n, low=1, integer=True)
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in checked:
        words = text.split()
        grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def self_bleu(texts: Sequence[str], max_order: int = 4, smooth_method: str = "exp") -> float:
    """Self-BLEU: the mean over i of the sentence BLEU of text i with every other text as a reference.

    self-BLEU = (1/N) sum_i BLEU(h = t_i, R = {t_j : j != i}), BLEU as sacrebleu's ``sentence_score`` with
    ``BLEU(max_ngram_order=max_order, smooth_method=smooth_method, effective_order=True)`` (its sentence-level
    defaults; 13a tokenisation, case-sensitive): clipped n-gram precisions p_n = sum_g min(c_h(g),
    max_{r in R} c_r(g)) / sum_g c_h(g) for n = 1..max_order (orders longer than h skipped), their geometric
    mean, times the brevity penalty against the reference length closest to |h|. Smoothing ("exp", "floor",
    "add-k" or "none") only affects texts with some but not all orders matched; a text sharing no word with
    the others scores 0 whatever the smoothing. Texygen's nltk "method1" smoothing is sacrebleu's "floor".

    Range [0, 100]: 100 when every text also occurs elsewhere in the set, 0 when no two texts share a word.
    Lower = more diverse. Needs at least 2 texts (one text has no references): fewer raise ValidationError.
    Cost O(N L) for N texts of L words: the n-grams of each text are counted once and, per n-gram, the two
    largest counts across texts are kept, so max over j != i is read off without re-reading the references;
    the result equals calling ``sentence_score`` N times (tested), which would cost O(N^2 L).
    Requires sacrebleu (``pip install 'irlhf[llm]'``).
    """
    checked = _check_texts(texts, minimum=2)
    check_number("max_order", max_order, low=1, integer=True)
    if smooth_method not in SMOOTH_METHODS:
        raise ValidationError(f"smooth_method={describe(smooth_method)}: expected one of {list(SMOOTH_METHODS)}")
    try:
        from sacrebleu.metrics import BLEU  # why: optional dependency (llm extra)
        from sacrebleu.metrics.helpers import extract_all_word_ngrams
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("self_bleu needs sacrebleu: pip install 'irlhf[llm]' (or pip install sacrebleu)") from error

    bleu = BLEU(max_ngram_order=max_order, smooth_method=smooth_method, effective_order=True)
    counts: list[Counter] = []
    lengths = np.empty(len(checked), dtype=np.int64)
    for k, text in enumerate(checked):
        # what BLEU.sentence_score does to each segment: rstrip, tokenise (13a), count its n-grams
        grams, lengths[k] = extract_all_word_ngrams(bleu.tokenizer(text.rstrip()), 1, max_order)
        counts.append(grams)
    # per n-gram: the largest count, the text holding it, and the second largest (the max over the others)
    best: dict[tuple[str, ...], list[int]] = {}
    for k, grams in enumerate(counts):
        for gram, count in grams.items():
            top = best.get(gram)
            if top is None:
                best[gram] = [count, k, 0]
            elif count > top[0]:
                best[gram] = [count, k, top[0]]
            elif count > top[2]:
                top[2] = count
    order = np.argsort(lengths, kind="stable")
    scores = np.empty(len(checked))
    for i, grams in enumerate(counts):
        correct = [0] * max_order
        total = [0] * max_order
        for gram, count in grams.items():
            top_count, holder, second = best[gram]
            total[len(gram) - 1] += count
            correct[len(gram) - 1] += min(count, second if holder == i else top_count)
        others = lengths[order[order != i]]
        ref_len = _closest_length(int(lengths[i]), others)
        scores[i] = BLEU.compute_bleu(correct, total, int(lengths[i]), ref_len, smooth_method=smooth_method,
                                      effective_order=True, max_ngram_order=max_order).score
    return float(scores.mean())


def _closest_length(hyp_len: int, ref_lens: np.ndarray) -> int:
    """The reference length closest to ``hyp_len``, the shorter on a tie (sacrebleu's rule); ref_lens sorted."""
    diff = np.abs(ref_lens - hyp_len)
    return int(ref_lens[int(np.argmin(diff))])  # argmin returns the first minimum: the shorter of a tie


def mean_token_entropy(logits_or_logps: torch.Tensor | np.ndarray, mask: torch.Tensor | np.ndarray) -> float:
    """Mean entropy (nats) of the next-token distributions at the positions where ``mask`` is True.

    logits_or_logps: (..., V) unnormalised logits or log-probabilities (either: they are renormalised by a
    log-softmax, in fp32, or fp64 if given fp64); mask: (...) bool, the same leading shape. Returns
    (1/M) sum_{masked t} H_t with H_t = -sum_v p_t(v) log p_t(v) (0 log 0 = 0, so -inf logits are fine):
    the mean over tokens, not over sequences. A uniform distribution over V tokens has entropy log V.
    An all-False mask raises ValidationError.
    """
    values = torch.as_tensor(logits_or_logps)
    selected = torch.as_tensor(mask, device=values.device)
    if values.ndim < 1 or selected.shape != values.shape[:-1]:
        raise ValidationError(f"mask: shape {tuple(selected.shape)} for logits of shape {tuple(values.shape)}; "
                              "expected the logits' shape without the last (vocabulary) axis")
    if selected.dtype != torch.bool:
        raise ValidationError(f"mask: dtype {selected.dtype}; expected bool")
    if not bool(selected.any()):
        raise ValidationError("mask: no position selected; expected at least one True entry")
    total, count = _entropy_sum(values[selected])
    return total / count


def _entropy_sum(rows: torch.Tensor, temperature: float = 1.0) -> tuple[float, int]:
    """Sum of the entropies of softmax(logits / temperature) for M rows of logits (M, V), and M."""
    rows = rows.double() if rows.dtype == torch.float64 else rows.float()
    if temperature != 1.0:
        rows = rows / temperature
    logp = torch.log_softmax(rows, dim=-1)
    p = logp.exp()
    entropy = -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(dim=-1)
    return float(entropy.sum()), int(entropy.numel())


def _encode_row(tokenizer: Any, prompt: Any, completion: str, options: TokenizeOptions) -> Encoded | None:
    """``encode``, and for an empty completion "<bos>? prompt <eos>": the one distribution that chose to stop."""
    if completion:
        return encode(tokenizer, prompt, completion, options)
    ids = list(tokenizer(prompt_text(tokenizer, prompt), add_special_tokens=False)["input_ids"])
    add_bos = tokenizer_adds_bos(tokenizer) if options.add_bos == "auto" else options.add_bos
    if add_bos and tokenizer.bos_token_id is not None and (not ids or ids[0] != tokenizer.bos_token_id):
        ids = [tokenizer.bos_token_id] + ids
    if tokenizer.eos_token_id is None:
        raise ValidationError("completion '': an empty completion needs the tokenizer's eos_token to score")
    if options.max_length is not None and len(ids) + 1 > options.max_length:
        return None
    return Encoded(tuple(ids) + (int(tokenizer.eos_token_id),), len(ids))


@torch.no_grad()
def policy_entropy(model: Any, tokenizer: Any, prompts: Sequence[Any], completions: Sequence[str], *,
                   temperature: float = 1.0, max_length: int | None = None, batch_size: int = 256) -> float:
    """``mean_token_entropy`` of ``model`` at the completion tokens of (prompt, completion) pairs.

    Each pair is tokenised as the trainers do (``irlhf.llm.tokenize.encode``: "<bos> prompt completion
    <eos>", EOS included, so the decision to stop counts); an empty completion contributes the one
    distribution at which the policy chose "<eos>". The entropy is that of softmax(logits / temperature),
    the distribution ``generate`` samples from. Pairs go through the model ``batch_size`` rows at a time
    (one forward for up to ``batch_size`` pairs), as the model is (eval mode for dropout). max_length
    [None: the model's ``n_positions``/``max_position_embeddings`` if it has one]: longer pairs have their
    completion cut; a pair left with no completion token is skipped. Returns nats per token.
    """
    checked = _check_texts(completions, "completions")
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence) or len(prompts) != len(checked):
        raise ValidationError(f"prompts={describe(prompts)}: expected a list with one prompt per completion "
                              f"({len(checked)})")
    if not checked:
        raise ValidationError("completions: 0 texts; expected at least 1")
    check_number("temperature", temperature, low=0, low_open=True)
    check_number("batch_size", batch_size, low=1, integer=True)
    if max_length is None:
        max_length = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
    options = TokenizeOptions(max_length=max_length)
    rows = [row for row in (_encode_row(tokenizer, p, c, options) for p, c in zip(prompts, checked)) if row is not None]
    if not rows:
        raise ValidationError(f"all {len(checked)} pairs dropped: no completion token fits max_length={max_length}")
    device = next(model.parameters()).device
    pad = pad_id_of(tokenizer)
    total, count = 0.0, 0
    for start in range(0, len(rows), batch_size):
        batch = collate(rows[start:start + batch_size], pad)
        logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                       use_cache=False).logits
        # position t-1 gives the distribution of token t
        selected = logits[:, :-1][batch["completion_mask"][:, 1:].to(device)]
        part, n = _entropy_sum(selected, temperature)
        total, count = total + part, count + n
    return total / count
