"""Active preference-based learning of a linear reward: a posterior over w by MCMC, and which query to ask next.

Sadigh, Dragan, Sastry & Seshia, "Active preference-based learning of reward functions", RSS 2017; Bıyık &
Sadigh, "Batch active preference-based learning of reward functions", CoRL 2018; Bıyık, Palan, Landolfi,
Losey & Sadigh, "Asking easy questions: a user-friendly approach to active reward learning", CoRL 2019;
Wilde, Kulić & Smith, "Active preference learning using maximum regret", IROS 2020. APReL (Bıyık et al.
2022) implements the same math; this is an independent vectorised implementation.

**Reward.** R(xi) = w . phi(xi), linear in trajectory features phi (d,), with w on the unit sphere S^{d-1}
(only the direction of w matters to the answers once beta is fixed).

**Answer models** for a query (A, B), with psi = phi_A - phi_B and x = beta w . psi (``Config.answer_model``):

- ``"logistic"`` (strict, 2 answers): P(A > B | w) = sigma(x), P(B > A | w) = sigma(-x).
- ``"sadigh"``: Sadigh 2017's f_psi(w) = min(1, exp(x)) (and f_{-psi} for "B"), used as the (unnormalised)
  likelihood of the posterior and inside volume removal exactly as in the paper. It is not a probability
  over answers (f_psi + f_{-psi} = 1 + exp(-|x|) > 1), so information gain, disagreement and simulated
  answers use the logistic model under this setting.
- ``"weak"`` (3 answers, Bıyık et al. 2019) with threshold delta > 0:
  P(A > B) = 1 / (1 + exp(delta - x)), P(B > A) = 1 / (1 + exp(delta + x)), P(about equal) = the rest
  = e^x 2 sinh(delta) / ((1 + e^{x - delta})(1 + e^{x + delta})) >= 0 (a proper distribution for any
  delta >= 0; computed in log space). As delta -> 0 it becomes "logistic". irlhf's Bradley-Terry counts a
  tie as half a win each way, mu log sigma(x) + (1 - mu) log sigma(-x) with mu = 1/2: an improper
  likelihood over three answers, fine for fitting but not for the entropy of the answer, hence this model
  when "about equal" is an answer one asks for.
  Under "logistic" and "sadigh" an "equal" answer is still accepted and counts as half a win each way
  (log-likelihood (log f_psi + log f_{-psi}) / 2), as in Bradley-Terry.
- Rankings of k trajectories (best first) use Plackett-Luce over u_i = beta w . phi_i under every model:
  log P(ranking | w) = sum_{s=1}^{k} [u_s - log sum_{t >= s} exp(u_t)] (k = 2 is "logistic").

**Posterior.** Uniform prior on S^{d-1}; p(w | answers) is proportional to prod_q P(answer_q | w). Sampled by
Metropolis-Hastings on the sphere: proposal w' = (w + sigma eps) / |w + sigma eps|, eps ~ N(0, I). Its
density depends only on w . w', so it is symmetric and the acceptance ratio is the likelihood ratio.
``n_chains`` chains run side by side (one vectorised log-likelihood of all answers per step); during the
``burn_in`` steps sigma adapts every 10 steps, sigma <- sigma exp(a - target) with a the window's
acceptance rate (target 0.3; sigma kept in [1e-4, 10]), then stays fixed, so the kept samples come from a
proper Markov chain. Each chain keeps every ``thin``-th state; ``acceptance_rate`` is over the kept phase.
With no answers the samples are exact prior draws (acceptance_rate 1). ``Posterior.update(answer)`` returns
a new Posterior (the old one is unchanged) whose chains warm-start from the old chains' last states and
adapted sigma, and which shares the old one's Generator. Answers that all say "about equal" give a broad
posterior concentrated near w . psi = 0; contradictory answers (A > B and B > A) cancel: neither is an error.

**Acquisitions** (higher = ask this), vectorised over samples W (M, d) and N queries; X[n, m] = beta w_m . psi_n:

- ``"random"``: a uniformly random candidate (seeded).
- ``"volume_removal"`` (Sadigh 2017, eq. 9): min over answers q of E[1 - f_q(w)], f = the answer model's
  likelihood (min(1, exp(+-x)) for "sadigh", sigma(+-x) for "logistic", the three probabilities for "weak").
- ``"information"`` (Bıyık 2019): I(q; w) = H(E P(q | w)) - E H(P(q | w)) in nats, over the model's answers.
- ``"disagreement"``: Var_w[P(A > B | w) - P(B > A | w)], the spread of the predicted preference.
- ``"thompson"`` (APReL's Thompson querying): draw two posterior samples w1, w2; ask the pair (best
  trajectory under w1, best under w2). As a score: max(w1.phi_A + w2.phi_B, w1.phi_B + w2.phi_A), whose
  maximum over distinct pairs is that pair (or, when both samples like the same trajectory best, the best
  pair with one runner-up).
- ``"max_regret"`` (Wilde et al. 2020): for samples w_a, w_b with optimal pool trajectories xi_a != xi_b,
  regret(a, b) = w_a.(phi(xi_a) - phi(xi_b)) + w_b.(phi(xi_b) - phi(xi_a)); ask the pair of optima with the
  largest regret. Wilde (and APReL) use cost ratios, which need positive rewards; w . phi has any sign here,
  so we use the difference form. If all samples share one optimum i, the score of (i, j) is the spread
  max_m w_m.psi - min_m w_m.psi over all samples; in continuous optimisation the same relaxed score (all
  samples on both sides) is used.

Usage::

    post = Posterior(dim=4, config=Config(answer_model="weak"), seed=0)
    i, j = select_query(post, Phi, "information", rng, n_candidates=5000)
    post = post.update(Answer.pair(Phi[i], Phi[j], "A"))     # or "B", "equal"; Answer.ranking(phis)
    posterior_alignment(post.samples, w_star)                 # E[w . w* / (|w| |w*|)]

Pool selection scores all D(D-1)/2 pairs (or ``n_candidates`` of them, sampled without replacement) in
chunks of at most 2^21 pair-sample products; pass ``n_candidates`` for large pools (timings: docs/RESULTS.md).
"thompson" and "max_regret" only look at the optima of the samples and ignore ``n_candidates``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, xlogy

from irlhf.core.config import BaseConfig, NonNegativeInt, Positive, PositiveInt, Range, check_choice, check_number
from irlhf.core.errors import ValidationError, describe, shown
from irlhf.core.seeding import SeedLike, as_generator

__all__ = ["ACQUISITIONS", "Config", "Answer", "Posterior", "log_answer_probabilities", "answer_probabilities",
           "plackett_luce_log_likelihood", "information_gain", "volume_removal", "disagreement",
           "thompson_scores", "max_regret_scores", "acquisition_scores", "select_query", "OptimisedQuery",
           "optimise_query", "simulate_answer", "alignment", "posterior_alignment", "mean_alignment"]

ACQUISITIONS = ("random", "volume_removal", "information", "disagreement", "thompson", "max_regret")
_PSI_ACQUISITIONS = ("volume_removal", "information", "disagreement")
_CHUNK = 1 << 21          # pair x sample products per block (16 MiB of float64)
_SIGMA_RANGE = (1e-4, 10.0)
_ADAPT_EVERY = 10


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """Answer model and sampler. Defaults: ``answer_model="logistic"``; ``beta=1.0`` (rationality, in units
    of w . psi with |w| = 1); ``delta=0.5`` (the "weak" model's threshold for "about equal", in units of
    beta w . psi); ``n_samples=100`` posterior samples M (APReL's default); ``burn_in=200`` MH steps per
    chain, with sigma adapting; ``thin=10`` (keep every 10th state); ``n_chains=4`` chains run side by
    side; ``proposal_sigma=0.3`` the initial random-walk scale; ``target_acceptance=0.3`` what burn-in
    adapts sigma towards; ``adapt=True`` (False keeps ``proposal_sigma`` throughout)."""

    answer_model: Literal["logistic", "sadigh", "weak"] = "logistic"
    beta: Positive = 1.0
    delta: Positive = 0.5
    n_samples: PositiveInt = 100
    burn_in: NonNegativeInt = 200
    thin: PositiveInt = 10
    n_chains: PositiveInt = 4
    proposal_sigma: Positive = 0.3
    target_acceptance: Annotated[float, Range(0, 1, low_open=True, high_open=True)] = 0.3
    adapt: bool = True


# -- input checks ---------------------------------------------------------------------------------------------
def _features(name: str, value: Any, ndim: int, dim: int | None = None) -> np.ndarray:
    """``value`` as a finite float64 array of ``ndim`` dimensions whose last axis is ``dim`` long."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(f"{name}={describe(value)}: expected an array of numbers") from None
    if arr.ndim != ndim:
        raise ValidationError(f"{name} has shape {arr.shape}: expected a {ndim}-d array of features")
    if dim is not None and arr.shape[-1] != dim:
        raise ValidationError(f"{name} has {arr.shape[-1]} features per row: expected {dim} (the dimension of w)")
    bad = ~np.isfinite(arr)
    if bad.any():
        at = tuple(int(k) for k in np.argwhere(bad)[0])
        raise ValidationError(f"{name}[{', '.join(map(str, at))}]={arr[at]}: expected finite features (no NaN or inf)")
    return arr


def _check_acquisition(acquisition: Any) -> None:
    check_choice("acquisition", acquisition, ACQUISITIONS)


def _samples(W: Any) -> np.ndarray:
    return _features("W", W.samples if isinstance(W, Posterior) else W, 2)


# -- answer models ----------------------------------------------------------------------------------------------
def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def log_answer_probabilities(X: Any, config: Config | None = None) -> np.ndarray:
    """log P(answer | w) for scaled utility differences X = beta w . psi (any shape): (..., 2) = [A, B] for
    "logistic" and "sadigh" (logistic probabilities), (..., 3) = [A, B, about equal] for "weak"."""
    config = config or Config()
    X = np.asarray(X, dtype=np.float64)
    if config.answer_model != "weak":
        return np.stack([_log_sigmoid(X), _log_sigmoid(-X)], axis=-1)
    d = config.delta
    log_2sinh = d + math.log(-math.expm1(-2.0 * d))
    log_equal = X + log_2sinh - np.logaddexp(0.0, X - d) - np.logaddexp(0.0, X + d)
    return np.stack([_log_sigmoid(X - d), _log_sigmoid(-X - d), log_equal], axis=-1)


def answer_probabilities(W: Any, phi_a: Any, phi_b: Any, config: Config | None = None) -> np.ndarray:
    """P(answer | w) (M, N, K) for samples W (M, d) and queries (phi_a[n], phi_b[n]) (N, d); K as in
    :func:`log_answer_probabilities`."""
    config = config or Config()
    W = _samples(W)
    psi = _features("phi_a", phi_a, 2, W.shape[1]) - _features("phi_b", phi_b, 2, W.shape[1])
    return np.exp(log_answer_probabilities(config.beta * (W @ psi.T), config))


def plackett_luce_log_likelihood(W: Any, ranked: Any, beta: float = 1.0) -> np.ndarray:
    """log P(ranking | w) (M,) of one ranking (k, d) or several (n, k, d), features listed best first,
    summed over rankings: sum_s [u_s - logsumexp_{t >= s} u_t] with u = beta w . phi."""
    W = _samples(W)
    ranked = np.asarray(ranked, dtype=np.float64)
    ranked = _features("ranked", ranked[None] if ranked.ndim == 2 else ranked, 3, W.shape[1])
    return _ranking_loglik(beta * np.einsum("nkd,md->mnk", ranked, W))


def _ranking_loglik(U: np.ndarray) -> np.ndarray:
    tail = np.logaddexp.accumulate(U[..., ::-1], axis=-1)[..., ::-1]      # logsumexp_{t >= s} u_t
    return (U - tail).sum(axis=(-1, -2))


def _pair_loglik(X: np.ndarray, y: np.ndarray, config: Config) -> np.ndarray:
    """Summed log-likelihood (C,) of pair answers y (n,) in {+1 A, -1 B, 0 equal}, X = beta W psi^T (C, n)."""
    if config.answer_model == "weak":
        L = log_answer_probabilities(X, config)
        la, lb, le = L[..., 0], L[..., 1], L[..., 2]
    else:
        if config.answer_model == "sadigh":
            la, lb = np.minimum(0.0, X), np.minimum(0.0, -X)
        else:
            la, lb = _log_sigmoid(X), _log_sigmoid(-X)
        le = 0.5 * (la + lb)                                              # a tie is half a win each way
    return np.where(y == 1, la, np.where(y == -1, lb, le)).sum(axis=-1)


@dataclasses.dataclass(frozen=True)
class Answer:
    """One answer: ``features`` (k, d); ``preferred`` "A", "B" or "equal" for a pair (k = 2, rows A, B), or
    "ranking" for k >= 2 trajectories listed best first. Build with :meth:`pair` or :meth:`ranking`."""

    features: np.ndarray
    preferred: Literal["A", "B", "equal", "ranking"]

    def __post_init__(self) -> None:
        check_choice("preferred", self.preferred, ("A", "B", "equal", "ranking"))
        feats = _features("features", self.features, 2)
        if len(feats) < 2 or (self.preferred != "ranking" and len(feats) != 2):
            raise ValidationError(f"features has {len(feats)} rows: expected 2 for a pair, >= 2 for a ranking")
        object.__setattr__(self, "features", feats)

    @classmethod
    def pair(cls, phi_a: Any, phi_b: Any, preferred: str) -> Answer:
        """Query (A, B) answered ``preferred`` = "A", "B" or "equal" (about equal)."""
        return cls(np.stack([_features("phi_a", phi_a, 1), _features("phi_b", phi_b, 1)]), preferred)

    @classmethod
    def ranking(cls, features_best_first: Any) -> Answer:
        return cls(_features("features_best_first", features_best_first, 2), "ranking")


# -- posterior ----------------------------------------------------------------------------------------------
def _sphere(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class Posterior:
    """Samples of p(w | answers) on the unit sphere (see the module docstring).

    ``Posterior(dim, answers=(), config=None, *, seed=None, start=None, sigma=None)``; ``start`` (n_chains,
    d) and ``sigma`` warm-start the chains (``update`` passes them). Attributes: ``samples`` (M, d),
    ``acceptance_rate``, ``sigma`` (the adapted proposal scale), ``answers``, ``config``, ``dim``.
    """

    def __init__(self, dim: int, answers: Sequence[Answer] = (), config: Config | None = None, *,
                 seed: SeedLike = None, start: Any = None, sigma: float | None = None):
        check_number("dim", dim, low=2, integer=True)
        self.dim, self.config = int(dim), config or Config()
        self.answers = tuple(answers)
        for k, a in enumerate(self.answers):
            if not isinstance(a, Answer):
                raise ValidationError(f"answers[{k}]={describe(a)}: expected an Answer (Answer.pair or Answer.ranking)")
            if a.features.shape[1] != self.dim:
                raise ValidationError(f"answers[{k}] has {a.features.shape[1]} features: expected {self.dim} (dim)")
        pairs = [a for a in self.answers if a.preferred != "ranking"]
        self._psi = np.array([a.features[0] - a.features[1] for a in pairs]).reshape(-1, self.dim)
        self._y = np.array([{"A": 1, "B": -1, "equal": 0}[a.preferred] for a in pairs], dtype=np.int8)
        ranks: dict[int, list[np.ndarray]] = {}
        for a in self.answers:
            if a.preferred == "ranking":
                ranks.setdefault(len(a.features), []).append(a.features)
        self._rankings = [np.stack(group) for group in ranks.values()]
        self._rng = as_generator(seed)
        cfg = self.config
        chains = _sphere(self._rng, cfg.n_chains, self.dim) if start is None else _features(
            "start", start, 2, self.dim)
        chains = chains / np.linalg.norm(chains, axis=1, keepdims=True)
        self.sigma = cfg.proposal_sigma if sigma is None else float(sigma)
        if not self.answers:
            self.samples, self.acceptance_rate, self._chains = _sphere(self._rng, cfg.n_samples, self.dim), 1.0, chains
        else:
            self._sample(chains)

    def log_likelihood(self, W: Any) -> np.ndarray:
        """log prod_q P(answer_q | w) (M,) for each row of W (M, d) (unnormalised under "sadigh")."""
        W = np.asarray(W, dtype=np.float64)
        beta = self.config.beta
        total = _pair_loglik(beta * (W @ self._psi.T), self._y, self.config)
        for group in self._rankings:
            total = total + _ranking_loglik(beta * np.einsum("nkd,md->mnk", group, W))
        return total

    def _sample(self, W: np.ndarray) -> None:
        cfg, rng = self.config, self._rng
        C, d = W.shape
        ll, sigma = self.log_likelihood(W), self.sigma

        def step(W, ll, sigma):
            prop = W + sigma * rng.standard_normal((C, d))
            prop /= np.maximum(np.linalg.norm(prop, axis=1, keepdims=True), 1e-300)
            ll_prop = self.log_likelihood(prop)
            accept = np.log(rng.random(C)) < ll_prop - ll
            return np.where(accept[:, None], prop, W), np.where(accept, ll_prop, ll), int(accept.sum())

        window = 0
        for t in range(cfg.burn_in):
            W, ll, n_acc = step(W, ll, sigma)
            window += n_acc
            if cfg.adapt and (t + 1) % _ADAPT_EVERY == 0:
                sigma = float(np.clip(sigma * math.exp(window / (_ADAPT_EVERY * C) - cfg.target_acceptance),
                                      *_SIGMA_RANGE))
                window = 0
        per_chain = -(-cfg.n_samples // C)
        kept, accepted = np.empty((per_chain, C, d)), 0
        for s in range(per_chain):
            for _ in range(cfg.thin):
                W, ll, n_acc = step(W, ll, sigma)
                accepted += n_acc
            kept[s] = W
        self.samples = kept.reshape(-1, d)[: cfg.n_samples]
        self.acceptance_rate = accepted / (per_chain * cfg.thin * C)
        self.sigma, self._chains = sigma, W

    def update(self, answer: Answer | Sequence[Answer]) -> Posterior:
        """A new Posterior with ``answer`` (one or several) added, warm-started from this one's chains."""
        new = (answer,) if isinstance(answer, Answer) else tuple(answer)
        return Posterior(self.dim, self.answers + new, self.config, seed=self._rng, start=self._chains,
                         sigma=self.sigma)

    @property
    def mean_direction(self) -> np.ndarray:
        """The posterior mean of w, normalised to the sphere (zero vector if the mean is zero)."""
        m = self.samples.mean(axis=0)
        n = np.linalg.norm(m)
        return m / n if n > 0 else m


# -- acquisitions ---------------------------------------------------------------------------------------------
def _binary_entropy_logit(X: np.ndarray) -> np.ndarray:
    """H(sigma(x)) in nats, stably: log(1 + e^{-|x|}) + |x| e^{-|x|} / (1 + e^{-|x|})."""
    a = np.abs(X)
    e = np.exp(-a)
    return np.log1p(e) + a * e / (1.0 + e)


def _entropy(P: np.ndarray) -> np.ndarray:
    return -xlogy(P, P).sum(axis=-1)


def _score_block(name: str, X: np.ndarray, config: Config) -> np.ndarray:
    """Scores (n,) of one block X = beta psi W^T (n, M) for the psi-only acquisitions."""
    if config.answer_model == "weak":                   # P(A), P(B), P(equal) = 1 - P(A) - P(B) (>= 0 up to rounding)
        pa, pb = expit(X - config.delta), expit(-X - config.delta)
        pe = np.maximum(1.0 - pa - pb, 0.0)
        if name == "disagreement":
            return (pa - pb).var(axis=1)
        means = np.stack([pa.mean(axis=1), pb.mean(axis=1), pe.mean(axis=1)], axis=-1)
        if name == "volume_removal":
            return 1.0 - means.max(axis=-1)
        cond = -(xlogy(pa, pa) + xlogy(pb, pb) + xlogy(pe, pe)).mean(axis=1)
        return np.maximum(_entropy(means) - cond, 0.0)
    if name == "disagreement":
        return np.tanh(0.5 * X).var(axis=1)
    if name == "volume_removal" and config.answer_model == "sadigh":
        fa, fb = np.exp(np.minimum(X, 0.0)), np.exp(np.minimum(-X, 0.0))     # min(1, exp(+-x))
        return np.minimum(1.0 - fa.mean(axis=1), 1.0 - fb.mean(axis=1))
    p = 0.5 * (1.0 + np.tanh(0.5 * X)).mean(axis=1)                          # E_w sigma(x)
    if name == "volume_removal":
        return np.minimum(p, 1.0 - p)
    return np.maximum(_entropy(np.stack([p, 1.0 - p], -1)) - _binary_entropy_logit(X).mean(axis=1), 0.0)


def _psi_scores(name: str, W: np.ndarray, psi: np.ndarray, config: Config) -> np.ndarray:
    out = np.empty(len(psi))
    step = max(1, _CHUNK // max(len(W), 1))
    Wb = config.beta * W.T
    for lo in range(0, len(psi), step):
        out[lo:lo + step] = _score_block(name, psi[lo:lo + step] @ Wb, config)
    return out


def _psi_args(W: Any, psi: Any, config: Config | None) -> tuple[np.ndarray, np.ndarray, Config]:
    W = _samples(W)
    return W, _features("psi", psi, 2, W.shape[1]), config or Config()


def information_gain(W: Any, psi: Any, config: Config | None = None) -> np.ndarray:
    """I(answer; w) (N,) in nats for queries psi = phi_A - phi_B (N, d) under samples W (M, d)."""
    return _psi_scores("information", *_psi_args(W, psi, config))


def volume_removal(W: Any, psi: Any, config: Config | None = None) -> np.ndarray:
    """Sadigh 2017's expected removed volume min_q E[1 - f_q(w)] (N,)."""
    return _psi_scores("volume_removal", *_psi_args(W, psi, config))


def disagreement(W: Any, psi: Any, config: Config | None = None) -> np.ndarray:
    """Var_w[P(A > B | w) - P(B > A | w)] (N,)."""
    return _psi_scores("disagreement", *_psi_args(W, psi, config))


def thompson_scores(w1: Any, w2: Any, phi_a: Any, phi_b: Any) -> np.ndarray:
    """max(w1.phi_A + w2.phi_B, w1.phi_B + w2.phi_A) (N,) for two posterior samples w1, w2 (d,)."""
    w1, w2 = _features("w1", w1, 1), _features("w2", w2, 1, len(w1))
    A, B = _features("phi_a", phi_a, 2, len(w1)), _features("phi_b", phi_b, 2, len(w1))
    return np.maximum(A @ w1 + B @ w2, B @ w1 + A @ w2)


def max_regret_scores(W: Any, phi_a: Any, phi_b: Any, optimal_a: Any = None, optimal_b: Any = None) -> np.ndarray:
    """Wilde et al.'s regret (N,): max_{a in S_A} w_a.psi + max_{b in S_B} (-w_b.psi), psi = phi_A - phi_B, S_A
    the samples under which A is optimal (``optimal_a`` (N, M) bool; None = all samples); -inf if a set is empty."""
    W = _samples(W)
    psi = _features("phi_a", phi_a, 2, W.shape[1]) - _features("phi_b", phi_b, 2, W.shape[1])
    X = psi @ W.T
    sa = X if optimal_a is None else np.where(np.asarray(optimal_a, bool), X, -np.inf)
    sb = -X if optimal_b is None else np.where(np.asarray(optimal_b, bool), -X, -np.inf)
    return sa.max(axis=1) + sb.max(axis=1)


def acquisition_scores(acquisition: str, W: Any, phi_a: Any, phi_b: Any, config: Config | None = None,
                       rng: SeedLike = None) -> np.ndarray:
    """Scores (N,) of queries (phi_a[n], phi_b[n]) by name; "thompson" draws its two samples from W with
    ``rng``; "max_regret" uses all samples on both sides (the relaxed score); "random" is uniform noise."""
    _check_acquisition(acquisition)
    W = _samples(W)
    A, B = _features("phi_a", phi_a, 2, W.shape[1]), _features("phi_b", phi_b, 2, W.shape[1])
    if acquisition in _PSI_ACQUISITIONS:
        return _psi_scores(acquisition, W, A - B, config or Config())
    rng = as_generator(rng)
    if acquisition == "random":
        return rng.random(len(A))
    if acquisition == "thompson":
        a, b = rng.choice(len(W), 2, replace=len(W) < 2)
        return thompson_scores(W[a], W[b], A, B)
    return max_regret_scores(W, A, B)


# -- pool-based selection -------------------------------------------------------------------------------------
def _pair_index(k: np.ndarray, D: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-major upper-triangle (i < j) pairs of a D-pool from their linear indices k."""
    k = np.asarray(k, dtype=np.int64)
    offset = lambda i: i * (2 * D - i - 1) // 2                         # noqa: E731 - first index of row i
    i = np.floor(((2 * D - 1) - np.sqrt((2.0 * D - 1) ** 2 - 8.0 * k)) / 2).astype(np.int64)
    i = np.clip(i, 0, D - 2)
    i += offset(i + 1) <= k
    i -= offset(i) > k
    return i, k - offset(i) + i + 1


def _pairs_among(items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.triu_indices(len(items), 1)
    return items[a], items[b]


def select_query(posterior: Posterior, Phi: Any, acquisition: str = "information", rng: SeedLike = None,
                 n_candidates: int | None = None) -> tuple[int, int]:
    """The pair (i, j), i < j, of pool features Phi (D, d) to ask next (A = Phi[i], B = Phi[j]).

    Scores all D(D-1)/2 pairs, or ``n_candidates`` of them drawn without replacement with ``rng``, in one
    chunked vectorised pass, and returns the best (the first on ties). "thompson" and "max_regret" choose
    among the posterior samples' optimal trajectories and ignore ``n_candidates``."""
    _check_acquisition(acquisition)
    if not isinstance(posterior, Posterior):
        raise ValidationError(f"posterior={describe(posterior)}: expected a Posterior")
    Phi = _features("Phi", Phi, 2, posterior.dim)
    D = len(Phi)
    if D < 2:
        raise ValidationError(f"Phi has {D} trajectories: expected a pool of at least 2")
    rng, W, n_pairs = as_generator(rng), posterior.samples, D * (D - 1) // 2
    if n_candidates is not None:
        check_number("n_candidates", n_candidates, low=1, integer=True)
    if acquisition == "thompson":
        a, b = rng.choice(len(W), 2, replace=len(W) < 2)
        R = Phi @ W[[a, b]].T
        top = np.unique(np.argsort(-R, axis=0, kind="stable")[:2].ravel())
        I, J = _pairs_among(top)
        s = thompson_scores(W[a], W[b], Phi[I], Phi[J])
    elif acquisition == "max_regret":
        opt = np.argmax(Phi @ W.T, axis=0)                                # each sample's optimal trajectory
        items = np.unique(opt)
        if len(items) >= 2:
            I, J = _pairs_among(items)
            s = max_regret_scores(W, Phi[I], Phi[J], opt[None, :] == I[:, None], opt[None, :] == J[:, None])
        else:                                                             # one optimum: the relaxed spread
            J = np.delete(np.arange(D), items[0])
            I = np.full_like(J, items[0])
            s = max_regret_scores(W, Phi[I], Phi[J])
    else:
        if n_candidates is None or n_candidates >= n_pairs:
            if acquisition == "random":
                return tuple(int(v[0]) for v in _pair_index(rng.integers(n_pairs, size=1), D))
            I, J = np.triu_indices(D, 1)
        else:
            I, J = _pair_index(rng.choice(n_pairs, size=n_candidates, replace=False), D)
        if acquisition == "random":
            k = rng.integers(len(I))
            return int(I[k]), int(J[k])
        s = _psi_scores(acquisition, W, Phi[I] - Phi[J], posterior.config)
    k = int(np.argmax(s))
    return int(min(I[k], J[k])), int(max(I[k], J[k]))


# -- continuous query optimisation --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class OptimisedQuery:
    """The best query found: controls ``x_a``, ``x_b`` (n,), their features ``phi_a``, ``phi_b`` (d,) and the
    acquisition ``score`` (NaN for "random")."""

    x_a: np.ndarray
    x_b: np.ndarray
    phi_a: np.ndarray
    phi_b: np.ndarray
    score: float


def optimise_query(posterior: Posterior, features_of: Callable[[np.ndarray], Any], x0: Any, bounds: Any = None,
                   acquisition: str = "information", rng: SeedLike = None, *, n_starts: int = 4,
                   max_iter: int = 100) -> OptimisedQuery:
    """Maximise the acquisition of the pair (features_of(x_a), features_of(x_b)) over two control vectors.

    As Sadigh et al. optimise over the controls: L-BFGS-B (numerical gradients, scipy) on z = (x_a, x_b)
    from ``n_starts`` starts: the first is (x0, random), the rest random (uniform within ``bounds`` (n, 2),
    else x0 + N(0, I)); the best result wins. ``features_of`` maps one control vector shaped like x0 to d
    features. "thompson" draws its two samples once; "max_regret" uses the relaxed score (all samples);
    "random" returns one random start, unoptimised."""
    _check_acquisition(acquisition)
    check_number("n_starts", n_starts, low=1, integer=True)
    check_number("max_iter", max_iter, low=1, integer=True)
    if not callable(features_of):
        raise ValidationError(f"features_of={describe(features_of)}: expected a function of the controls")
    x0 = _features("x0", x0, 1)
    n, rng, W, config = len(x0), as_generator(rng), posterior.samples, posterior.config
    box = None
    if bounds is not None:
        box = _features("bounds", bounds, 2, 2)
        if len(box) != n or np.any(box[:, 0] > box[:, 1]):
            raise ValidationError(f"bounds={describe(bounds)}: expected {n} (low, high) rows with low <= high")

    def draw() -> np.ndarray:
        return rng.uniform(box[:, 0], box[:, 1]) if box is not None else x0 + rng.standard_normal(n)

    def phi(x: np.ndarray) -> np.ndarray:
        f = np.asarray(features_of(x), dtype=np.float64)
        if f.shape != (posterior.dim,) or not np.all(np.isfinite(f)):
            raise ValidationError(f"features_of(x)={describe(f)}: expected {posterior.dim} finite features")
        return f

    starts = [np.concatenate([x0, draw()])] + [np.concatenate([draw(), draw()]) for _ in range(n_starts - 1)]
    if acquisition == "random":
        z = starts[-1] if n_starts > 1 else starts[0]
        return OptimisedQuery(z[:n], z[n:], phi(z[:n]), phi(z[n:]), float("nan"))
    if acquisition == "thompson":
        a, b = rng.choice(len(W), 2, replace=len(W) < 2)
        w1, w2 = W[a], W[b]

    def objective(z: np.ndarray) -> float:
        A, B = phi(z[:n])[None], phi(z[n:])[None]
        if acquisition == "thompson":
            return -float(thompson_scores(w1, w2, A, B)[0])
        if acquisition == "max_regret":
            return -float(max_regret_scores(W, A, B)[0])
        return -float(_psi_scores(acquisition, W, A - B, config)[0])

    best = None
    for z0 in starts:
        res = minimize(objective, z0, method="L-BFGS-B", bounds=None if box is None else np.vstack([box, box]),
                       options={"maxiter": max_iter})
        if best is None or res.fun < best.fun:
            best = res
    z = best.x
    return OptimisedQuery(z[:n], z[n:], phi(z[:n]), phi(z[n:]), -float(best.fun))


# -- simulation and metrics -----------------------------------------------------------------------------------
def simulate_answer(w_star: Any, phi_a: Any, phi_b: Any, config: Config | None = None,
                    rng: SeedLike = None) -> Answer:
    """A simulated person's answer to (A, B) under w*, drawn from the answer model ("sadigh": "logistic")."""
    config = config or Config()
    A, B = _features("phi_a", phi_a, 1), _features("phi_b", phi_b, 1)
    w = _w_star(w_star, len(A))
    P = np.exp(log_answer_probabilities(config.beta * float(w @ (A - B)), config))
    k = as_generator(rng).choice(len(P), p=P / P.sum())
    return Answer.pair(A, B, ("A", "B", "equal")[k])


def _w_star(w_star: Any, dim: int) -> np.ndarray:
    w = _features("w_star", w_star, 1)
    if len(w) != dim:
        raise ValidationError(f"w_star={shown(w_star)} has {len(w)} entries: expected {dim} (the dimension of w)")
    if not np.any(w):
        raise ValidationError(f"w_star={shown(w_star)}: expected a nonzero vector")
    return w


def alignment(w: Any, w_star: Any) -> float | np.ndarray:
    """Cosine w . w* / (|w| |w*|): a float for w (d,), an array (M,) for rows of W (M, d)."""
    w = np.asarray(w, dtype=np.float64)
    W = _features("w", w[None] if w.ndim == 1 else w, 2)
    ws = _w_star(w_star, W.shape[1])
    norms = np.linalg.norm(W, axis=1)
    if np.any(norms == 0):
        raise ValidationError("w has a zero row: expected nonzero weight vectors")
    cos = W @ ws / (norms * np.linalg.norm(ws))
    return float(cos[0]) if w.ndim == 1 else cos


def posterior_alignment(samples: Any, w_star: Any) -> float:
    """The issue's metric m = E_w[w . w* / (|w| |w*|)] over posterior samples (M, d) (or a Posterior)."""
    return float(np.mean(alignment(_samples(samples), w_star)))


def mean_alignment(samples: Any, w_star: Any) -> float:
    """Alignment of the posterior mean direction E[w] with w* (a point estimate's alignment)."""
    return float(alignment(_samples(samples).mean(axis=0), w_star))
