"""Text preference data for language models: pairs {prompt, chosen, rejected}, ranked lists and labelled answers.

``TextPairs`` rows: ``prompt`` (a string, or a chat as a list of ``{"role", "content"}`` messages), ``chosen`` and
``rejected`` (non-empty strings), optional ``margin`` (finite float: how much better ``chosen`` is, used by the
reward model's margin loss). ``TextRankings`` rows: ``prompt``, ``responses`` (2 to any number of distinct-position
strings) and ``ranking`` (a permutation of ``range(len(responses))``, best first). ``to_pairs`` breaks a ranking
into all K(K-1)/2 pairs (InstructGPT's rank breaking). ``TextLabels`` rows (unpaired preferences, KTO's data and
TRL's "unpaired preference" format): ``prompt``, ``completion`` (a non-empty string) and ``label`` (a boolean: True
for a desirable answer); ``TextLabels.from_pairs`` unpairs ``TextPairs``.

Files: ``.jsonl`` (one object per line), ``.parquet`` and ``datasets``' ``save_to_disk`` directories (Hugging Face
``datasets``, the ``hf`` extra); a ``datasets.Dataset`` or a list of dicts also loads. Writes are atomic.

    pairs = TextPairs.load("prefs.jsonl");  pairs.save("prefs.parquet");  pairs[:10]
    TextRankings.load("ranked.jsonl").to_pairs();  TextLabels.load("labels.jsonl");  TextLabels.from_pairs(pairs)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from irlhf.core.errors import ValidationError, describe
from irlhf.core.io import atomic_write_text
from irlhf.data.hf import import_datasets, save_table
from irlhf.data.preferences import read_file_rows

__all__ = ["Prompt", "TextPairs", "TextRankings", "TextLabels", "read_rows", "check_prompt", "check_text"]

Prompt = Any  # str, or list of {"role": str, "content": str}


def check_prompt(name: str, prompt: Any) -> Prompt:
    """``prompt`` if it is a string, or a copy of a non-empty chat (list of {"role": str, "content": str})."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, (list, tuple)) and prompt and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in prompt):
        return [{"role": m["role"], "content": m["content"]} for m in prompt]
    raise ValidationError(f"{name}: {describe(prompt)}; expected a string or a non-empty list of "
                          "{'role': str, 'content': str} messages")


def check_text(name: str, text: Any) -> str:
    """``text`` if it is a non-empty string; else a ValidationError naming ``name``."""
    if not isinstance(text, str):
        raise ValidationError(f"{name}: {describe(text)}; expected a string")
    if not text:
        raise ValidationError(f"{name}: empty string; expected a non-empty response")
    return text


def read_rows(source: Any, what: str) -> list[dict[str, Any]]:
    """Rows as dicts from a path (.jsonl, .parquet, save_to_disk directory), a datasets.Dataset or a list of dicts."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ValidationError(f"path={str(path)!r}: no such file or directory")
        if path.suffix == ".jsonl":
            return read_file_rows(path, ())
        datasets = import_datasets()
        if path.suffix == ".parquet":
            return datasets.Dataset.from_parquet(str(path)).to_list()
        if path.is_dir():
            return datasets.load_from_disk(str(path)).to_list()
        raise ValidationError(f"path={str(path)!r}: unknown format; expected .jsonl, .parquet or a datasets directory")
    if hasattr(source, "to_list") and hasattr(source, "column_names"):
        return source.to_list()
    if isinstance(source, Sequence) and all(isinstance(r, dict) for r in source):
        return list(source)
    raise ValidationError(f"{what}: {describe(source)}; expected a path, a datasets.Dataset or a list of dicts")


def _save_rows(path: str | os.PathLike[str], rows: list[dict[str, Any]]) -> Path:
    target = Path(path)
    if target.suffix == ".jsonl":
        atomic_write_text(target, "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows))
        return target
    if target.suffix not in (".parquet", ""):
        raise ValidationError(f"path={str(target)!r}: unknown format; expected .jsonl, .parquet or a directory name")
    if len({isinstance(r["prompt"], str) for r in rows}) > 1:  # an Arrow column holds one type
        raise ValidationError(f"path={str(target)!r}: some prompts are strings and some chat messages; Arrow "
                              "columns hold one type: save as .jsonl, or split the data")
    return save_table(target, import_datasets().Dataset.from_list(rows))


@dataclasses.dataclass(frozen=True)
class TextPairs:
    """N preference pairs: prompt[k], chosen[k] preferred to rejected[k]; margin (N,) float64 or None."""

    prompt: tuple[Prompt, ...]
    chosen: tuple[str, ...]
    rejected: tuple[str, ...]
    margin: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.prompt)
        if n == 0:
            raise ValidationError("TextPairs: no rows; expected at least one pair")
        if len(self.chosen) != n or len(self.rejected) != n:
            raise ValidationError(f"TextPairs: {n} prompts, {len(self.chosen)} chosen, {len(self.rejected)} rejected; "
                                  "expected equal lengths")
        object.__setattr__(self, "prompt", tuple(check_prompt(f"prompt[{k}]", p) for k, p in enumerate(self.prompt)))
        object.__setattr__(self, "chosen", tuple(check_text(f"chosen[{k}]", c) for k, c in enumerate(self.chosen)))
        object.__setattr__(self, "rejected",
                           tuple(check_text(f"rejected[{k}]", r) for k, r in enumerate(self.rejected)))
        if self.margin is not None:
            try:
                margin = np.asarray(self.margin, dtype=np.float64)
            except (TypeError, ValueError):
                raise ValidationError(f"margin: {describe(self.margin)}; expected {n} numbers") from None
            if margin.shape != (n,):
                raise ValidationError(f"margin: shape {margin.shape}; expected ({n},)")
            bad = np.flatnonzero(~np.isfinite(margin))
            if len(bad):
                raise ValidationError(f"margin[{int(bad[0])}] = {margin[bad[0]]}: expected a finite number")
            margin.flags.writeable = False
            object.__setattr__(self, "margin", margin)

    def __len__(self) -> int:
        return len(self.prompt)

    def __getitem__(self, index: Any) -> TextPairs:
        ids = np.arange(len(self))[index]
        ids = np.atleast_1d(ids)
        return TextPairs(tuple(self.prompt[i] for i in ids), tuple(self.chosen[i] for i in ids),
                         tuple(self.rejected[i] for i in ids), None if self.margin is None else self.margin[ids])

    @classmethod
    def from_rows(cls, rows: Any) -> TextPairs:
        """From a path, a ``datasets.Dataset`` or a list of {prompt, chosen, rejected[, margin]} dicts."""
        rows = read_rows(rows, "rows")
        for k, row in enumerate(rows):
            missing = [key for key in ("prompt", "chosen", "rejected") if key not in row]
            if missing:
                raise ValidationError(f"row {k}: missing {missing}; expected keys prompt, chosen, rejected "
                                      "(and optionally margin)")
        has_margin = [("margin" in r and r["margin"] is not None) for r in rows]
        if any(has_margin) and not all(has_margin):
            raise ValidationError(f"row {has_margin.index(False)}: no margin while other rows have one; "
                                  "expected a margin on every row or on none")
        margin = None
        if all(has_margin):
            bad = [k for k, r in enumerate(rows) if isinstance(r["margin"], bool)
                   or not isinstance(r["margin"], (int, float)) or not math.isfinite(r["margin"])]
            if bad:
                raise ValidationError(f"row {bad[0]}: margin {describe(rows[bad[0]]['margin'])}; "
                                      "expected a finite number")
            margin = np.array([r["margin"] for r in rows], dtype=np.float64)
        return cls(tuple(r["prompt"] for r in rows), tuple(r["chosen"] for r in rows),
                   tuple(r["rejected"] for r in rows), margin)

    load = from_rows

    def to_rows(self) -> list[dict[str, Any]]:
        rows = [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in zip(self.prompt, self.chosen, self.rejected)]
        if self.margin is not None:
            for row, m in zip(rows, self.margin):
                row["margin"] = float(m)
        return rows

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write .jsonl, .parquet or a save_to_disk directory (a path without suffix), atomically."""
        return _save_rows(path, self.to_rows())

    def to_hf_dataset(self) -> Any:
        return import_datasets().Dataset.from_list(self.to_rows())


@dataclasses.dataclass(frozen=True)
class TextRankings:
    """N ranked lists: responses[k] (K_k >= 2 strings) ordered by ranking[k] (a permutation, best first)."""

    prompt: tuple[Prompt, ...]
    responses: tuple[tuple[str, ...], ...]
    ranking: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        n = len(self.prompt)
        if n == 0:
            raise ValidationError("TextRankings: no rows; expected at least one ranked list")
        if len(self.responses) != n or len(self.ranking) != n:
            raise ValidationError(f"TextRankings: {n} prompts, {len(self.responses)} response lists, "
                                  f"{len(self.ranking)} rankings; expected equal lengths")
        prompts, responses, rankings = [], [], []
        for k in range(n):
            prompts.append(check_prompt(f"prompt[{k}]", self.prompt[k]))
            texts = self.responses[k]
            if isinstance(texts, str) or not isinstance(texts, Sequence) or len(texts) < 2:
                raise ValidationError(f"responses[{k}]: {describe(texts)}; expected a list of at least 2 strings")
            responses.append(tuple(check_text(f"responses[{k}][{j}]", t) for j, t in enumerate(texts)))
            order = self.ranking[k]
            ok = isinstance(order, Sequence) and not isinstance(order, str) and all(
                isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in order)
            if not ok or sorted(int(i) for i in order) != list(range(len(texts))):
                raise ValidationError(f"ranking[{k}] = {describe(order)}: expected a permutation of "
                                      f"0..{len(texts) - 1} (response indices, best first)")
            rankings.append(tuple(int(i) for i in order))
        object.__setattr__(self, "prompt", tuple(prompts))
        object.__setattr__(self, "responses", tuple(responses))
        object.__setattr__(self, "ranking", tuple(rankings))

    def __len__(self) -> int:
        return len(self.prompt)

    @classmethod
    def from_rows(cls, rows: Any) -> TextRankings:
        """From a path, a ``datasets.Dataset`` or a list of {prompt, responses, ranking} dicts."""
        rows = read_rows(rows, "rows")
        for k, row in enumerate(rows):
            missing = [key for key in ("prompt", "responses", "ranking") if key not in row]
            if missing:
                raise ValidationError(f"row {k}: missing {missing}; expected keys prompt, responses, ranking")
        return cls(tuple(r["prompt"] for r in rows), tuple(r["responses"] for r in rows),
                   tuple(r["ranking"] for r in rows))

    load = from_rows

    def to_rows(self) -> list[dict[str, Any]]:
        return [{"prompt": p, "responses": list(r), "ranking": list(o)}
                for p, r, o in zip(self.prompt, self.responses, self.ranking)]

    def save(self, path: str | os.PathLike[str]) -> Path:
        return _save_rows(path, self.to_rows())

    def ordered(self, k: int) -> tuple[str, ...]:
        """The responses of row k, best first."""
        return tuple(self.responses[k][i] for i in self.ranking[k])

    def to_pairs(self) -> TextPairs:
        """Every (better, worse) pair of every list: K(K-1)/2 pairs per row, in ranking order."""
        prompts, chosen, rejected = [], [], []
        for k in range(len(self)):
            best_first = self.ordered(k)
            for a in range(len(best_first)):
                for b in range(a + 1, len(best_first)):
                    prompts.append(self.prompt[k])
                    chosen.append(best_first[a])
                    rejected.append(best_first[b])
        return TextPairs(tuple(prompts), tuple(chosen), tuple(rejected))


@dataclasses.dataclass(frozen=True)
class TextLabels:
    """N unpaired judgements: completion[k] answers prompt[k] and is desirable (label[k] True) or undesirable."""

    prompt: tuple[Prompt, ...]
    completion: tuple[str, ...]
    label: tuple[bool, ...]

    def __post_init__(self) -> None:
        n = len(self.prompt)
        if n == 0:
            raise ValidationError("TextLabels: no rows; expected at least one labelled completion")
        if len(self.completion) != n or len(self.label) != n:
            raise ValidationError(f"TextLabels: {n} prompts, {len(self.completion)} completions, {len(self.label)} "
                                  "labels; expected equal lengths")
        object.__setattr__(self, "prompt", tuple(check_prompt(f"prompt[{k}]", p) for k, p in enumerate(self.prompt)))
        object.__setattr__(self, "completion",
                           tuple(check_text(f"completion[{k}]", c) for k, c in enumerate(self.completion)))
        bad = next((k for k, v in enumerate(self.label) if not isinstance(v, (bool, np.bool_))), None)
        if bad is not None:
            raise ValidationError(f"label[{bad}]: {describe(self.label[bad])}; expected true or false "
                                  "(true: a desirable completion)")
        object.__setattr__(self, "label", tuple(bool(v) for v in self.label))

    def __len__(self) -> int:
        return len(self.prompt)

    def __getitem__(self, index: Any) -> TextLabels:
        ids = np.atleast_1d(np.arange(len(self))[index])
        return TextLabels(tuple(self.prompt[i] for i in ids), tuple(self.completion[i] for i in ids),
                          tuple(self.label[i] for i in ids))

    @property
    def n_desirable(self) -> int:
        return sum(self.label)

    @classmethod
    def from_rows(cls, rows: Any) -> TextLabels:
        """From a path, a ``datasets.Dataset`` or a list of {prompt, completion, label} dicts (label a boolean)."""
        rows = read_rows(rows, "rows")
        for k, row in enumerate(rows):
            missing = [key for key in ("prompt", "completion", "label") if key not in row]
            if missing:
                raise ValidationError(f"row {k}: missing {missing}; expected keys prompt, completion, label")
            if not isinstance(row["label"], (bool, np.bool_)):
                raise ValidationError(f"row {k}: label {describe(row['label'])}; expected true or false "
                                      "(true: a desirable completion)")
        return cls(tuple(r["prompt"] for r in rows), tuple(r["completion"] for r in rows),
                   tuple(r["label"] for r in rows))

    load = from_rows

    @classmethod
    def from_pairs(cls, pairs: TextPairs) -> TextLabels:
        """Unpair preference pairs as TRL's ``unpair_preference_dataset`` does (for up to 1000 pairs): rows 0..N-1
        the chosen answers (label True), rows N..2N-1 the rejected ones (False), each with its prompt; margins
        are dropped."""
        if not isinstance(pairs, TextPairs):
            raise ValidationError(f"pairs: {describe(pairs)}; expected irlhf.data.text.TextPairs")
        n = len(pairs)
        return cls(pairs.prompt + pairs.prompt, pairs.chosen + pairs.rejected, (True,) * n + (False,) * n)

    def to_rows(self) -> list[dict[str, Any]]:
        return [{"prompt": p, "completion": c, "label": y} for p, c, y in zip(self.prompt, self.completion, self.label)]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write .jsonl, .parquet or a save_to_disk directory (a path without suffix), atomically."""
        return _save_rows(path, self.to_rows())

    def to_hf_dataset(self) -> Any:
        return import_datasets().Dataset.from_list(self.to_rows())
