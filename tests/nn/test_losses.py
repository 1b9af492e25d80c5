"""irlhf.nn.losses: the Bradley-Terry and Plackett-Luce losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from irlhf.core.errors import ValidationError
from irlhf.nn.losses import bradley_terry_loss, plackett_luce_loss


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_bradley_terry_hand_computed_with_a_tie():
    r_i, r_j = torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64), torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64)
    mu = torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64)
    expected = [-_log_sigmoid(1.0), math.log(2.0), -_log_sigmoid(-3.0)]
    per = bradley_terry_loss(r_i, r_j, mu, reduction="none")
    assert per.tolist() == pytest.approx(expected, abs=1e-14)
    assert float(bradley_terry_loss(r_i, r_j, mu)) == pytest.approx(sum(expected) / 3, abs=1e-14)
    assert float(bradley_terry_loss(r_i, r_j, mu, reduction="sum")) == pytest.approx(sum(expected), abs=1e-14)
    assert float(bradley_terry_loss(r_i[:1], r_j[:1], 1.0)) == pytest.approx(expected[0], abs=1e-14)  # scalar mu


def test_plackett_luce_hand_computed_with_a_mask():
    s = torch.tensor([[2.0, 1.0, 0.0], [0.5, 9.0, -0.5]], dtype=torch.float64)
    mask = torch.tensor([[True, True, True], [True, False, True]])
    lse = lambda *xs: math.log(sum(math.exp(x) for x in xs))  # noqa: E731
    row0 = -(2.0 - lse(2.0, 1.0, 0.0)) - (1.0 - lse(1.0, 0.0))  # the last choice has probability 1
    row1 = -(0.5 - lse(0.5, -0.5))  # the absent 9.0 drops out
    per = plackett_luce_loss(s, mask, reduction="none")
    assert per.tolist() == pytest.approx([row0, row1], abs=1e-12)
    assert float(plackett_luce_loss(s, mask)) == pytest.approx((row0 + row1) / 2, abs=1e-12)


def test_plackett_luce_of_two_is_bradley_terry_and_absent_entries_get_no_gradient():
    two = torch.tensor([[0.3, -1.2], [2.0, 2.5]], dtype=torch.float64)
    torch.testing.assert_close(plackett_luce_loss(two), bradley_terry_loss(two[:, 0], two[:, 1], torch.ones(2)))
    s = torch.tensor([[1.0, 5.0, 0.0]], requires_grad=True)
    plackett_luce_loss(s, torch.tensor([[True, False, True]]), reduction="sum").backward()
    assert s.grad[0, 1] == 0 and torch.isfinite(s.grad).all()


def test_unknown_reduction():
    with pytest.raises(ValidationError, match="reduction='avg'"):
        bradley_terry_loss(torch.zeros(1), torch.zeros(1), torch.ones(1), reduction="avg")
