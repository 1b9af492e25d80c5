"""SimPO and ORPO losses: closed forms, gradients, stability, and equality with TRL's where TRL is importable."""

import importlib.util
import math
from types import SimpleNamespace

import pytest
import torch

from irlhf.core.errors import ValidationError
from irlhf.llm.preference_losses import average_logps, log1mexp, orpo_loss, orpo_nll_terms, simpo_loss

A_W = torch.tensor([-1.0, -0.3, -2.5], dtype=torch.float64)
A_L = torch.tensor([-2.0, -0.2, -0.9], dtype=torch.float64)


def nls(z):
    return math.log1p(math.exp(-z))  # -log sigmoid(z)


def test_simpo_closed_form_and_label_smoothing():
    losses, r_w, r_l = simpo_loss(A_W, A_L, beta=2.0, gamma=0.5)
    expected = [nls(2.0 * (w - l) - 0.5) for w, l in zip(A_W.tolist(), A_L.tolist())]
    torch.testing.assert_close(losses, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)
    assert losses[0].item() == pytest.approx(0.2014132779827524, abs=1e-12)  # z = 1.5
    torch.testing.assert_close(r_w, 2.0 * A_W) and torch.testing.assert_close(r_l, 2.0 * A_L)
    smooth = simpo_loss(A_W, A_L, beta=2.0, gamma=0.5, label_smoothing=0.1)[0]
    assert smooth[0].item() == pytest.approx(0.9 * nls(1.5) + 0.1 * nls(-1.5), abs=1e-12)


def test_simpo_gradient_raises_chosen_and_lowers_rejected():
    w, l = A_W.clone().requires_grad_(), A_L.clone().requires_grad_()
    simpo_loss(w, l)[0].sum().backward()
    assert (w.grad < 0).all() and (l.grad > 0).all()  # descending the loss raises a_w, lowers a_l


def test_log1mexp_is_accurate_near_zero_and_far_below():
    for x in (-1e-12, -1e-6, -0.1, -0.69, -0.7, -5.0, -50.0):
        assert log1mexp(torch.tensor(x, dtype=torch.float64)).item() == pytest.approx(math.log(-math.expm1(x)),
                                                                                     rel=1e-13)


def test_orpo_closed_form_and_lambda_zero_is_sft():
    nll = torch.full((3,), 1.25, dtype=torch.float64)
    losses, log_odds, r_w, r_l = orpo_loss(A_W, A_L, nll, lam=0.1)
    loss = losses.mean()

    def log_odds_of(a):
        return a - math.log(-math.expm1(a))

    expected_or = [log_odds_of(w) - log_odds_of(l) for w, l in zip(A_W.tolist(), A_L.tolist())]
    torch.testing.assert_close(log_odds.double(), torch.tensor(expected_or, dtype=torch.float64), rtol=1e-6, atol=0)
    expected = 1.25 + 0.1 * sum(nls(v) for v in expected_or) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert orpo_loss(A_W, A_L, nll, lam=0.0)[0].mean().item() == pytest.approx(1.25)
    torch.testing.assert_close(r_w, (0.1 * A_W).float())


def test_average_logps_and_nll_terms_average_to_the_token_mean():
    summed, tokens = torch.tensor([-6.0, -3.0, -4.0]), torch.tensor([3, 1, 4])
    torch.testing.assert_close(average_logps(summed, tokens), torch.tensor([-2.0, -3.0, -1.0]))
    assert orpo_nll_terms(summed, float(tokens.sum()), 3).mean().item() == pytest.approx(13.0 / 8.0)


@pytest.mark.parametrize("call, message", [
    (lambda: simpo_loss(A_W, A_L[:2]), "rejected_logps: shape \\(2,\\)"),
    (lambda: simpo_loss(A_W, A_L, beta=0.0), "beta"),
    (lambda: simpo_loss(A_W, A_L, gamma=-1.0), "gamma"),
    (lambda: simpo_loss([1.0], [2.0]), "chosen_logps"),
    (lambda: orpo_loss(A_W, A_L, torch.tensor(1.0)), "chosen_nll"),
    (lambda: orpo_loss(A_W, A_L, torch.ones(3), lam=-0.1), "lam"),
])
def test_bad_input_is_one_line(call, message):
    with pytest.raises(ValidationError, match=message) as err:
        call()
    assert "\n" not in str(err.value)


TRL = importlib.util.find_spec("trl") is not None


@pytest.mark.skipif(not TRL, reason="TRL not installed (pip install trl): the comparison with its losses is skipped")
def test_equal_to_trl_cpo_simpo_and_orpo(monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")  # CPO and ORPO live in trl.experimental in TRL 1.x
    from trl.experimental.cpo.cpo_trainer import CPOTrainer
    from trl.experimental.orpo.orpo_trainer import ORPOTrainer

    device = SimpleNamespace(device="cpu")
    cpo = SimpleNamespace(alpha=0.0, beta=2.0, loss_type="simpo", simpo_gamma=0.5, label_smoothing=0.1,
                          accelerator=device)
    theirs = CPOTrainer.cpo_loss(cpo, A_W, A_L)
    ours = simpo_loss(A_W, A_L, beta=2.0, gamma=0.5, label_smoothing=0.1)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    orpo = SimpleNamespace(beta=0.1, accelerator=device)
    losses, r_w, r_l, _, log_odds = ORPOTrainer.odds_ratio_loss(orpo, A_W, A_L)
    our_losses, our_log_odds, our_r_w, our_r_l = orpo_loss(A_W, A_L, torch.full((3,), 1.25), lam=0.1)
    assert our_losses.mean().item() == pytest.approx(1.25 - losses.mean().item(), abs=1e-6)  # both float32
    assert our_log_odds.mean().item() == pytest.approx(log_odds.item(), abs=1e-7)
    torch.testing.assert_close(our_r_w, r_w.float()) and torch.testing.assert_close(our_r_l, r_l.float())
