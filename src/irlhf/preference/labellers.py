"""Who answers "which of these two segments is better?": the ``Labeller`` protocol and synthetic teachers.

    labeller.label(segment_a, segment_b) -> 1.0 (a preferred) | 0.5 (equally good) | 0.0 (b preferred) | None (skip)
    labeller.label_batch(segments_a, segments_b) -> (N,) floats, NaN where the labeller skipped

A segment is anything with a ``true_rews`` array (``irlhf.preference.trajectory.Segments``) or the array of
its per-step true rewards itself: (L,) for ``label``, (N, L) for ``label_batch``. A human labeller (the web
app) implements the same two methods.

Synthetic teachers follow B-Pref (Lee et al. 2021, "B-Pref: Benchmarking Preference-Based Reinforcement
Learning"). With R = sum of true rewards of a segment, ``Teacher`` applies, in B-Pref's order:

1. skip: if max(R_a, R_b) < skip_threshold, no label (both segments are bad; the teacher can't tell);
2. equal: if |R_a - R_b| < equal_threshold, label 0.5;
3. myopic: the preference uses the discounted sum sum_t gamma^(L-1-t) r_t (recent steps weigh more);
4. rationality: beta = inf gives the deterministic label [R_a > R_b] (0.5 on an exact tie); a finite beta
   draws "a preferred" with probability sigma(beta (R_a - R_b)) (Bradley-Terry, lecture 000 part 4);
5. mistake: with probability eps the label is flipped (mu -> 1 - mu).

B-Pref measures its thresholds relative to the average segment return; here ``relative_thresholds=True``
measures them as fractions of the spread (max - min) of the returns in the batch being labelled, with
skip relative to the batch minimum: skip when both returns lie in the bottom ``skip_threshold`` fraction of
the range; equal when the gap is below ``equal_threshold`` of the range. That works for negative rewards
(Pendulum) as well as positive ones. With absolute thresholds (the default) they are in return units.

``make_labeller(name, seed)`` builds the presets oracle, mistake, noisy, skip, myopic, equal with B-Pref's
default parameters (eps 0.1, beta 1, gamma 0.9, skip / equal 0.1 of the return spread).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Protocol, runtime_checkable

import numpy as np

from irlhf.core.config import check_number
from irlhf.core.errors import ValidationError, describe
from irlhf.core.seeding import as_generator

__all__ = ["Labeller", "Teacher", "SyntheticOracle", "LABELLERS", "make_labeller", "segment_rewards"]

LABELLERS = ("oracle", "mistake", "noisy", "skip", "myopic", "equal")


@runtime_checkable
class Labeller(Protocol):
    def label(self, segment_a: Any, segment_b: Any) -> float | None: ...

    def label_batch(self, segments_a: Any, segments_b: Any) -> np.ndarray: ...


def segment_rewards(segments: Any, *, single: bool = False) -> np.ndarray:
    """Per-step true rewards as float64 (N, L) (or (1, L) when ``single`` and given (L,))."""
    rews = getattr(segments, "true_rews", segments)
    array = np.asarray(rews, dtype=np.float64)
    if single and array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or not np.all(np.isfinite(array)):
        raise ValidationError(f"segments: {describe(rews)}; expected finite per-step true rewards of shape "
                              f"{'(L,)' if single else '(N, L)'} or an object with .true_rews")
    return array


class Teacher:
    """A B-Pref synthetic teacher (see the module docstring). seed: int or Generator (the draws for noisy and
    mistake labels come from it, in call order)."""

    def __init__(self, *, beta: float = math.inf, gamma: float = 1.0, eps: float = 0.0,
                 skip_threshold: float | None = None, equal_threshold: float | None = None,
                 relative_thresholds: bool = False, seed: Any = 0):
        if not (isinstance(beta, (int, float)) and not isinstance(beta, bool) and beta > 0):
            raise ValidationError(f"beta={beta!r}: expected a number > 0 (math.inf = deterministic)")
        check_number("gamma", gamma, low=0, high=1, low_open=True)
        check_number("eps", eps, low=0, high=0.5)
        for name, value in (("skip_threshold", skip_threshold), ("equal_threshold", equal_threshold)):
            if value is not None:
                check_number(name, value, low=None if name == "skip_threshold" else 0)
        self.beta, self.gamma, self.eps = float(beta), float(gamma), float(eps)
        self.skip_threshold, self.equal_threshold = skip_threshold, equal_threshold
        self.relative_thresholds = bool(relative_thresholds)
        self.rng = as_generator(seed)

    def __repr__(self) -> str:
        return (f"Teacher(beta={self.beta}, gamma={self.gamma}, eps={self.eps}, skip_threshold={self.skip_threshold}, "
                f"equal_threshold={self.equal_threshold}, relative_thresholds={self.relative_thresholds})")

    def label(self, segment_a: Any, segment_b: Any) -> float | None:
        mu = self.label_batch(segment_rewards(segment_a, single=True), segment_rewards(segment_b, single=True))[0]
        return None if np.isnan(mu) else float(mu)

    def label_batch(self, segments_a: Any, segments_b: Any) -> np.ndarray:
        ra, rb = segment_rewards(segments_a), segment_rewards(segments_b)
        if ra.shape != rb.shape:
            raise ValidationError(f"segments: shapes {ra.shape} and {rb.shape}; expected equal (N, L) shapes")
        Ra, Rb = ra.sum(axis=1), rb.sum(axis=1)
        low, spread = 0.0, 1.0
        if self.relative_thresholds:
            both = np.concatenate([Ra, Rb])
            low, spread = float(both.min()), float(both.max() - both.min())
        skip = np.zeros(len(Ra), dtype=bool)
        if self.skip_threshold is not None:
            skip = np.maximum(Ra, Rb) < low + self.skip_threshold * spread
        equal = np.zeros(len(Ra), dtype=bool)
        if self.equal_threshold is not None:
            equal = np.abs(Ra - Rb) < self.equal_threshold * spread
        if self.gamma < 1.0:
            weights = self.gamma ** np.arange(ra.shape[1] - 1, -1, -1, dtype=np.float64)
            Ra, Rb = ra @ weights, rb @ weights
        diff = Ra - Rb
        if math.isinf(self.beta):
            mu = np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))
        else:
            p = 0.5 * (1.0 + np.tanh(0.5 * self.beta * diff))
            mu = (self.rng.random(len(diff)) < p).astype(np.float64)
        if self.eps > 0:
            flip = self.rng.random(len(diff)) < self.eps
            mu = np.where(flip, 1.0 - mu, mu)
        mu = np.where(equal, 0.5, mu)
        return np.where(skip, np.nan, mu)


class SyntheticOracle(Teacher):
    """temperature 0: deterministic [R_a > R_b] (0.5 on exact ties); temperature > 0: Bradley-Terry on the
    true segment returns divided by the temperature, P(a > b) = sigma((R_a - R_b) / temperature)."""

    def __init__(self, temperature: float = 0.0, seed: Any = 0):
        check_number("temperature", temperature, low=0)
        super().__init__(beta=math.inf if temperature == 0 else 1.0 / temperature, seed=seed)
        self.temperature = float(temperature)

    def __repr__(self) -> str:
        return f"SyntheticOracle(temperature={self.temperature})"


@dataclasses.dataclass(frozen=True)
class _Preset:
    help: str
    params: dict[str, Any]


PRESETS: dict[str, _Preset] = {
    "oracle": _Preset("perfectly rational: prefers the higher true return", {}),
    "mistake": _Preset("oracle whose label is flipped with probability eps", {"eps": 0.1}),
    "noisy": _Preset("Bradley-Terry on true returns with rationality beta", {"beta": 1.0}),
    "skip": _Preset("skips when both returns are in the bottom skip_threshold of the batch's return range",
                    {"skip_threshold": 0.1, "relative_thresholds": True}),
    "myopic": _Preset("prefers by the discounted sum weighting recent steps (gamma < 1)", {"gamma": 0.9}),
    "equal": _Preset("labels 0.5 when the returns differ by less than equal_threshold of the batch's range",
                     {"equal_threshold": 0.1, "relative_thresholds": True}),
}


def make_labeller(name: str, seed: Any = 0, **params: Any) -> Teacher:
    """A preset teacher (one of ``LABELLERS``) with B-Pref's defaults, updated by ``params`` (Teacher keyword
    arguments: beta, gamma, eps, skip_threshold, equal_threshold, relative_thresholds)."""
    if name not in PRESETS:
        raise ValidationError(f"labeller={describe(name)}: unknown labeller; expected one of {list(LABELLERS)}")
    allowed = {"beta", "gamma", "eps", "skip_threshold", "equal_threshold", "relative_thresholds"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValidationError(f"labeller parameter(s) {unknown}: unknown; expected some of {sorted(allowed)}")
    return Teacher(**{**PRESETS[name].params, **params}, seed=seed)
