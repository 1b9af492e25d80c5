"""irlhf.preference.active: answer models, MH posterior on the sphere vs exact integration, acquisitions."""

import numpy as np
import pytest
from scipy.special import expit, xlogy

from irlhf.core.errors import ValidationError
from irlhf.preference import active as A

BIG = A.Config(n_samples=4000, n_chains=20, thin=5, burn_in=200)
ANSWERS_2D = [((1.0, 0.2), (-0.3, 0.5), "A"), ((0.0, 1.0), (0.8, -0.4), "A"), ((0.5, 0.5), (-1.0, 0.7), "B"),
              ((0.2, -0.9), (0.4, 0.6), "equal")]


def _grid(n=20_000):
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.cos(t), np.sin(t)], axis=1)          # uniform prior on the circle = uniform in t


def _answers(model_answers, drop_equal=False):
    return [A.Answer.pair(a, b, p) for a, b, p in model_answers if not (drop_equal and p == "equal")]


def _exact(config, answers):
    """The posterior on a fine grid of the circle: weights (n,) and the grid (n, 2)."""
    G = _grid()
    logp = A.Posterior(2, answers, config.replace(n_samples=1, burn_in=0, thin=1)).log_likelihood(G)
    p = np.exp(logp - logp.max())
    return p / p.sum(), G


# Monte Carlo tolerance: the chains' samples are correlated; with thin = 5 at ~0.3 acceptance on the circle we
# assume an effective sample size of at least M / 10 = 400, and allow 4 standard errors sd / sqrt(400).
ESS = BIG.n_samples / 10


@pytest.mark.parametrize("beta", [2.0, 8.0])                   # broad (sigma at its cap) and concentrated
@pytest.mark.parametrize("model", ["logistic", "sadigh", "weak"])
def test_mh_posterior_mean_matches_exact_integration(model, beta):
    config = BIG.replace(answer_model=model, beta=beta)
    answers = _answers(ANSWERS_2D)
    p, G = _exact(config, answers)
    post = A.Posterior(2, answers, config, seed=0)
    mean, sd = p @ G, np.sqrt(p @ (G - p @ G) ** 2)
    np.testing.assert_array_less(np.abs(post.samples.mean(axis=0) - mean), 4 * sd / np.sqrt(ESS))
    assert 0.05 < post.acceptance_rate < 0.95
    if beta == 8.0:                                                 # burn-in adapted sigma towards 0.3 acceptance
        assert 0.2 < post.acceptance_rate < 0.4 and post.sigma < 2
    np.testing.assert_allclose(np.linalg.norm(post.samples, axis=1), 1.0)


def _exact_information(p, probs):
    """I = H(sum_t p_t P_t) - sum_t p_t H(P_t) and the delta-method sd of its Monte Carlo estimate."""
    mean = p @ probs
    H = -xlogy(probs, probs).sum(axis=1)
    g = -(np.log(mean) * probs).sum(axis=1) - H                 # the per-sample influence of the estimate
    return -xlogy(mean, mean).sum() - p @ H, np.sqrt(p @ (g - p @ g) ** 2)


@pytest.mark.parametrize("beta", [2.0, 8.0])
@pytest.mark.parametrize("model", ["logistic", "weak"])
def test_information_gain_from_samples_matches_exact(model, beta):
    config = BIG.replace(answer_model=model, beta=beta)
    answers = _answers(ANSWERS_2D)
    p, G = _exact(config, answers)
    post = A.Posterior(2, answers, config, seed=1)
    for psi in ([1.0, -0.3], [0.2, 0.9], [-0.6, -0.6]):
        x = config.beta * G @ np.array(psi)
        if model == "weak":
            pa, pb = expit(x - config.delta), expit(-x - config.delta)
            probs = np.stack([pa, pb, 1 - pa - pb], axis=1)
        else:
            probs = np.stack([expit(x), expit(-x)], axis=1)
        exact, sd = _exact_information(p, probs)
        got = A.information_gain(post.samples, [psi], config)[0]
        assert abs(got - exact) < 4 * sd / np.sqrt(ESS) + 2e-3, (psi, got, exact)   # + O(1/M) plug-in bias


def test_volume_removal_from_samples_matches_exact():
    config = BIG.replace(answer_model="sadigh", beta=2.0)
    answers = _answers(ANSWERS_2D)
    p, G = _exact(config, answers)
    post = A.Posterior(2, answers, config, seed=2)
    for psi in ([1.0, -0.3], [0.2, 0.9]):
        x = config.beta * G @ np.array(psi)
        fa, fb = np.minimum(1, np.exp(x)), np.minimum(1, np.exp(-x))      # Sadigh 2017's f_psi, f_-psi
        exact = min(p @ (1 - fa), p @ (1 - fb))
        sd = max(np.sqrt(p @ (fa - p @ fa) ** 2), np.sqrt(p @ (fb - p @ fb) ** 2))
        assert abs(A.volume_removal(post.samples, [psi], config)[0] - exact) < 4 * sd / np.sqrt(ESS)


# -- answer models ---------------------------------------------------------------------------------------------
def test_answer_probabilities_sum_to_one_and_weak_model():
    X = np.array([-800.0, -5.0, -0.3, 0.0, 0.7, 4.0, 800.0])
    for config in (A.Config(), A.Config(answer_model="weak", delta=0.8)):
        P = np.exp(A.log_answer_probabilities(X, config))
        assert np.all(P >= 0)
        np.testing.assert_allclose(P.sum(axis=-1), 1.0, atol=1e-12)
    P = np.exp(A.log_answer_probabilities(X[1:-1], A.Config(answer_model="weak", delta=0.8)))
    np.testing.assert_allclose(P[:, 0], 1 / (1 + np.exp(0.8 - X[1:-1])))
    np.testing.assert_allclose(P[:, 1], 1 / (1 + np.exp(0.8 + X[1:-1])))
    tiny = np.exp(A.log_answer_probabilities(X[1:-1], A.Config(answer_model="weak", delta=1e-9)))
    np.testing.assert_allclose(tiny[:, :2], expit(np.stack([X[1:-1], -X[1:-1]], 1)), atol=1e-8)
    assert np.all(tiny[:, 2] < 1e-8)


def test_plackett_luce_two_is_logistic_and_three_by_hand():
    rng = np.random.default_rng(0)
    W, phi = rng.normal(size=(5, 3)), rng.normal(size=(3, 3))
    np.testing.assert_allclose(A.plackett_luce_log_likelihood(W, phi[:2], beta=1.5),
                               np.log(expit(1.5 * W @ (phi[0] - phi[1]))))
    u = np.exp(W @ phi.T)                                                  # strengths, best first
    np.testing.assert_allclose(A.plackett_luce_log_likelihood(W, phi),
                               np.log(u[:, 0] / u.sum(1) * u[:, 1] / (u[:, 1] + u[:, 2])))
    ranked = A.Posterior(3, [A.Answer.ranking(phi[:2])]).log_likelihood(W)
    paired = A.Posterior(3, [A.Answer.pair(phi[0], phi[1], "A")]).log_likelihood(W)
    np.testing.assert_allclose(ranked, paired)


# -- acquisitions ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["logistic", "sadigh", "weak"])
def test_information_invariants(model):
    config = A.Config(answer_model=model, beta=2.0)
    W = A.Posterior(3, seed=0).samples
    np.testing.assert_allclose(A.information_gain(W, np.zeros((1, 3)), config), 0.0, atol=1e-12)
    psi = np.random.default_rng(1).normal(size=(6, 3))
    np.testing.assert_allclose(A.information_gain(np.tile(W[:1], (7, 1)), psi, config), 0.0, atol=1e-12)
    # a two-point posterior {e1, -e1}: a query along e1 is worth log 2 - H(answer | w), one orthogonal to it 0
    W2 = np.array([[1.0, 0, 0], [-1.0, 0, 0]])
    if model != "weak":
        c = np.array([0.5, 1.0, 2.0])
        x = 2.0 * c
        want = np.log(2) + xlogy(expit(x), expit(x)) + xlogy(expit(-x), expit(-x))
        np.testing.assert_allclose(A.information_gain(W2, np.outer(c, [1, 0, 0]), config), want)
        assert np.all(np.diff(want) > 0)
    np.testing.assert_allclose(A.information_gain(W2, [[0, 1.0, 0], [0, 0.3, -2]], config), 0.0, atol=1e-12)


@pytest.mark.parametrize("name", ["volume_removal", "information", "disagreement", "thompson", "max_regret"])
@pytest.mark.parametrize("model", ["logistic", "sadigh", "weak"])
def test_acquisitions_invariant_to_swapping_a_and_b(name, model):
    rng = np.random.default_rng(3)
    W, Pa, Pb = A.Posterior(4, seed=0).samples, rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    config = A.Config(answer_model=model)
    np.testing.assert_allclose(A.acquisition_scores(name, W, Pa, Pb, config, rng=5),
                               A.acquisition_scores(name, W, Pb, Pa, config, rng=5), atol=1e-12)


def test_pair_index_matches_triu():
    for D in (2, 3, 10, 257):
        i, j = A._pair_index(np.arange(D * (D - 1) // 2), D)
        I, J = np.triu_indices(D, 1)
        np.testing.assert_array_equal(i, I)
        np.testing.assert_array_equal(j, J)


def test_thompson_and_max_regret_pick_the_optima():
    Phi = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [-1.0, -1.0]])
    post = A.Posterior(2, seed=0)
    post.samples = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert A.select_query(post, Phi, "thompson", rng=0) == (0, 1)
    post.samples = np.repeat(np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]), 5, axis=0)
    assert A.select_query(post, Phi, "max_regret", rng=0) == (0, 1)
    post.samples = np.repeat(np.array([[1.0, 0.1]]), 3, axis=0)           # one optimum: the relaxed spread
    assert A.select_query(post, Phi, "max_regret", rng=0)[0] == 0


def test_selection_is_seeded_and_in_range():
    rng = np.random.default_rng(0)
    Phi = rng.normal(size=(60, 4))
    post = A.Posterior(4, [A.Answer.pair(Phi[0], Phi[1], "A")], seed=0)
    for name in A.ACQUISITIONS:
        for n_candidates in (None, 100):
            i, j = A.select_query(post, Phi, name, rng=7, n_candidates=n_candidates)
            assert 0 <= i < j < 60
            assert (i, j) == A.select_query(post, Phi, name, rng=7, n_candidates=n_candidates)
    psi = Phi[:, None] - Phi[None]
    scores = A.information_gain(post.samples, psi[np.triu_indices(60, 1)])
    assert A.select_query(post, Phi, "information") == tuple(int(v[np.argmax(scores)]) for v in np.triu_indices(60, 1))


def test_posterior_seeded_warm_start_and_odd_answers():
    rng = np.random.default_rng(0)
    Phi = rng.normal(size=(10, 3))
    a = A.Posterior(3, seed=4).update(A.Answer.pair(Phi[0], Phi[1], "A")).update(A.Answer.pair(Phi[2], Phi[3], "B"))
    b = A.Posterior(3, seed=4).update(A.Answer.pair(Phi[0], Phi[1], "A")).update(A.Answer.pair(Phi[2], Phi[3], "B"))
    np.testing.assert_array_equal(a.samples, b.samples)
    assert 0 < a.acceptance_rate < 1 and len(a.answers) == 2 and a.samples.shape == (100, 3)
    # all "about equal": the posterior stays broad, concentrated near w . psi = 0
    config = A.Config(answer_model="weak", beta=3.0)
    psi = np.array([2.0, 0.0, 0.0])
    ties = A.Posterior(3, [A.Answer.pair(psi, np.zeros(3), "equal")] * 5, config, seed=0)
    prior = A.Posterior(3, config=config, seed=0)
    assert 0 < ties.acceptance_rate < 1
    assert np.mean(np.abs(ties.samples @ psi)) < 0.6 * np.mean(np.abs(prior.samples @ psi))
    # contradictory answers cancel: the same posterior as no answers on that query
    both = A.Posterior(3, [A.Answer.pair(Phi[0], Phi[1], "A"), A.Answer.pair(Phi[0], Phi[1], "B")], seed=0)
    assert np.all(np.isfinite(both.samples)) and 0 < both.acceptance_rate < 1


def test_alignment():
    w = np.array([1.0, 2.0, -2.0])
    assert A.alignment(w, 3 * w) == pytest.approx(1.0)
    assert A.alignment(-w, w) == pytest.approx(-1.0)
    W = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    assert A.posterior_alignment(W, [1.0, 0, 0]) == pytest.approx(0.5)
    assert A.mean_alignment(W, [1.0, 0, 0]) == pytest.approx(np.sqrt(0.5))


def test_optimise_query_over_controls():
    post = A.Posterior(2, [A.Answer.pair([1.0, 0.0], [0.0, 1.0], "A")], seed=0)
    bounds = np.array([[-1.0, 1.0], [-1.0, 1.0]])
    res = A.optimise_query(post, lambda u: np.tanh(u), np.zeros(2), bounds, "information", rng=0)
    assert np.all(np.abs(res.x_a) <= 1) and np.all(np.abs(res.x_b) <= 1)
    assert res.score == pytest.approx(A.information_gain(post.samples, [res.phi_a - res.phi_b])[0])
    assert res.score > A.information_gain(post.samples, [np.tanh([0.1, 0.1])])[0]
    again = A.optimise_query(post, lambda u: np.tanh(u), np.zeros(2), bounds, "information", rng=0)
    np.testing.assert_array_equal(res.x_a, again.x_a)
    for name in ("thompson", "max_regret", "random", "volume_removal"):
        assert np.all(np.isfinite(A.optimise_query(post, np.tanh, np.zeros(2), bounds, name, rng=0).phi_a))
    with pytest.raises(ValidationError, match="expected 2 finite features"):
        A.optimise_query(post, lambda u: np.full(3, 0.0), np.zeros(2), bounds, rng=0)


def test_bad_inputs():
    post = A.Posterior(3, seed=0)
    Phi = np.random.default_rng(0).normal(size=(5, 3))
    with pytest.raises(ValidationError, match=r"Phi\[2, 1\]=nan"):
        A.select_query(post, np.where(np.arange(15).reshape(5, 3) == 7, np.nan, Phi), rng=0)
    with pytest.raises(ValidationError, match="inf"):
        A.Answer.pair([1.0, np.inf, 0], [0, 0, 0], "A")
    with pytest.raises(ValidationError, match="1 trajectories: expected a pool of at least 2"):
        A.select_query(post, Phi[:1], rng=0)
    with pytest.raises(ValidationError, match=r"w_star=\[1.0, 0.0\] has 2 entries: expected 3"):
        A.posterior_alignment(post.samples, [1.0, 0.0])
    with pytest.raises(ValidationError, match="acquisition='entropy'"):
        A.select_query(post, Phi, "entropy", rng=0)
    with pytest.raises(ValidationError, match="preferred='C'"):
        A.Answer.pair(Phi[0], Phi[1], "C")
    with pytest.raises(ValidationError, match="beta=-1"):
        A.Config(beta=-1)
    with pytest.raises(ValidationError, match="answers\\[0\\] has 2 features: expected 3"):
        A.Posterior(3, [A.Answer.pair([1.0, 0], [0, 1.0], "A")])
    with pytest.raises(ValidationError, match="Phi has 2 features per row: expected 3"):
        A.select_query(post, Phi[:, :2], rng=0)


# -- a simulated loop --------------------------------------------------------------------------------------------
def _loop(acquisition, seed, n_queries=20):
    rng = np.random.default_rng(seed)
    w_star = rng.normal(size=4)
    w_star /= np.linalg.norm(w_star)
    Phi = rng.normal(size=(200, 4))
    config = A.Config(beta=2.0, n_samples=60, burn_in=100, thin=5)
    post = A.Posterior(4, config=config, seed=seed)
    for _ in range(n_queries):
        i, j = A.select_query(post, Phi, acquisition, rng, n_candidates=3000)
        post = post.update(A.simulate_answer(w_star, Phi[i], Phi[j], config, rng))
    return A.posterior_alignment(post.samples, w_star)


def test_information_beats_random_in_a_simulated_loop():
    info = np.mean([_loop("information", s) for s in range(3)])
    rand = np.mean([_loop("random", s) for s in range(3)])
    assert info > rand, (info, rand)
