"""KTO (irlhf.llm.kto, preference_losses.kto_loss / kto_reference_point) and its data (TextLabels): the loss's
closed forms, the reference point, the mismatched pairing, step 0 of training against the log-probs computed by hand,
a short run that learns, the run directory, and the refusals."""

import copy
import json
import math

import numpy as np
import pytest
import torch

from irlhf.core.errors import ValidationError
from irlhf.data.text import TextLabels, TextPairs
from irlhf.llm import kto, pairwise
from irlhf.llm.loop import global_batches
from irlhf.llm.preference_losses import kto_loss, kto_reference_point
from irlhf.llm.tokenize import Encoded, pad_id_of


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def tiny_labels(n: int) -> TextLabels:
    """n rows over 4 prompts: upbeat answers desirable, gloomy ones not (alternating), of different lengths."""
    prompts = ["my day was", "the food was", "the trip was", "the show was"]
    good, bad = [" lovely", " lovely and bright", " a joy"], [" grim", " grim and cold", " bleak bleak"]
    return TextLabels(tuple(prompts[k % 4] for k in range(n)),
                      tuple((good if k % 2 == 0 else bad)[(k // 2) % 3] for k in range(n)),
                      tuple(k % 2 == 0 for k in range(n)))


BASE = dict(learning_rate=1e-3, max_length=32, log_every=1, progress=False, device="cpu")


# -- the loss ------------------------------------------------------------------------------------------------
def test_kto_loss_closed_forms():
    policy, ref = torch.tensor([1.0, -1.0, 0.5, 0.5]), torch.tensor([0.0, 0.0, 0.0, 0.0])
    desirable = torch.tensor([True, False, True, False])
    losses, rewards = kto_loss(policy, ref, desirable, torch.tensor(0.5), beta=0.1, desirable_weight=2.0,
                               undesirable_weight=3.0)
    expected = [2.0 * (1 - sigmoid(0.1 * (1.0 - 0.5))), 3.0 * (1 - sigmoid(0.1 * (0.5 + 1.0))),
                2.0 * 0.5, 3.0 * 0.5]  # r = z0: lambda / 2
    assert losses.tolist() == pytest.approx(expected, abs=1e-7)
    assert rewards.tolist() == pytest.approx([0.1, -0.1, 0.05, 0.05], abs=1e-7) and not rewards.requires_grad


def test_kto_loss_gradient_raises_desirable_and_lowers_undesirable_rewards():
    policy = torch.zeros(2, requires_grad=True)
    losses, _ = kto_loss(policy, torch.zeros(2), torch.tensor([True, False]), 0.0, beta=1.0)
    losses.sum().backward()
    # d/dr lambda (1 - sigmoid(r)) at r = 0 is -1/4; the undesirable side is its mirror
    assert policy.grad.tolist() == pytest.approx([-0.25, 0.25])


def test_policy_equal_to_reference_gives_half_of_each_weight():
    logps = torch.tensor([-3.0, -5.0, -2.0, -7.0, -1.0])
    desirable = torch.tensor([True, True, False, False, False])
    z0 = kto_reference_point(logps, logps)
    losses, _ = kto_loss(logps, logps, desirable, z0, desirable_weight=1.5, undesirable_weight=0.5)
    assert float(losses.mean()) == pytest.approx((1.5 * 2 + 0.5 * 3) / (2 * 5))


def test_reference_point_is_the_clamped_detached_mean_log_ratio():
    policy = torch.tensor([-1.0, -2.0, -3.0], requires_grad=True)
    z0 = kto_reference_point(policy, torch.tensor([-1.5, -2.5, -2.0]))
    assert float(z0) == pytest.approx((0.5 + 0.5 - 1.0) / 3 + 0.0) and not z0.requires_grad
    assert float(kto_reference_point(torch.tensor([-1.0, -1.0]), torch.tensor([-2.0, -1.0]))) == pytest.approx(0.5)
    assert float(kto_reference_point(torch.tensor([-3.0, -1.0]), torch.tensor([-1.0, -1.0]))) == 0.0  # clamped


def test_kto_loss_checks_its_arguments():
    x = torch.zeros(3)
    with pytest.raises(ValidationError, match="desirable"):
        kto_loss(x, x, torch.tensor([1, 0, 1]), 0.0)
    with pytest.raises(ValidationError, match="ref_logps"):
        kto_loss(x, torch.zeros(2), torch.ones(3, dtype=torch.bool), 0.0)
    with pytest.raises(ValidationError, match="undesirable_weight"):
        kto_loss(x, x, torch.ones(3, dtype=torch.bool), 0.0, undesirable_weight=0.0)


# -- the mismatched pairs ------------------------------------------------------------------------------------
def test_mismatched_rows_are_the_batch_completions_shifted_by_one():
    assert kto.mismatched_rows(np.array([5, 7, 9, 2])).tolist() == [2, 5, 7, 9]  # row i gets row i - 1's
    a, b = Encoded((1, 10, 11, 12, 2), 2), Encoded((1, 20, 21, 22, 23, 2), 3)
    assert kto.mismatched(a, b, 64) == Encoded((1, 10, 22, 23, 2), 2)  # a's prompt, b's completion
    assert kto.mismatched(b, a, 5) == Encoded((1, 20, 21, 11, 12), 3)  # cut at max_length, like the rows


# -- training ------------------------------------------------------------------------------------------------
def hand_step_zero(policy, ref, tokenizer, data, config):
    """The first step's KTO loss and z0 from log-probs computed here: the first global batch, row i's prompt with
    row i - 1's completion."""
    items, desirable, _ = kto.encode(tokenizer, data, config, "data")
    order = next(global_batches(len(items), config.batch_size, 1, config.seed))
    rows = [items[i] for i in order]
    kl = [kto.mismatched(items[i], items[j], config.max_length) for i, j in zip(order, np.roll(order, 1))]
    with torch.no_grad():
        pi = pairwise.grouped_logps(pairwise.GroupedLogps(policy), rows + kl, pad_id_of(tokenizer))
        pr = pairwise.grouped_logps(pairwise.GroupedLogps(ref), rows + kl, pad_id_of(tokenizer))
    b = len(rows)
    z0 = max(0.0, float((pi[b:] - pr[b:]).mean()))
    r = (pi[:b] - pr[:b]).tolist()
    d = desirable[torch.as_tensor(order)].tolist()
    losses = [(1 - sigmoid(config.beta * (x - z0))) * config.desirable_weight if good
              else (1 - sigmoid(config.beta * (z0 - x))) * config.undesirable_weight for x, good in zip(r, d)]
    return sum(losses) / b, z0


def test_step_zero_matches_the_hand_computed_loss_with_a_reference(tokenizer, make_model):
    ref, data = make_model(len(tokenizer)), tiny_labels(6)
    policy = copy.deepcopy(ref)
    torch.manual_seed(3)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    config = kto.Config(**BASE, batch_size=6, max_steps=1, beta=0.5, desirable_weight=1.3)
    loss, z0 = hand_step_zero(copy.deepcopy(policy), ref, tokenizer, data, config)
    first = kto.train(policy, tokenizer, data, config, ref_model=ref).history[0]
    # 1e-5: log-probs of ~-20 in fp32 round at ~2e-6, and the two sides batch (and share prompts) differently
    assert z0 > 0 and first["kl"] == pytest.approx(z0, abs=1e-5)
    assert first["loss"] == pytest.approx(loss, abs=1e-6)


def test_unchanged_model_starts_at_one_half_and_learns(tokenizer, make_model, tmp_path):
    data = tiny_labels(12)
    config = kto.Config(**{**BASE, "log_every": 100}, batch_size=12, epochs=8, beta=1.0, save_steps=4)
    result = kto.train(make_model(len(tokenizer)), tokenizer, data, config, output_dir=tmp_path,
                       eval_data=tiny_labels(4))
    first, last = result.history[0], result.history[-2]
    assert first["loss"] == pytest.approx(0.5, abs=1e-7)  # r = z0 = 0 on every row: 1 - sigmoid(0)
    assert first["kl"] == 0.0 and first["rewards/margins"] == pytest.approx(0.0, abs=1e-7)
    assert last["rewards/margins"] > 0.5 and last["loss"] < first["loss"]
    assert last["rewards/chosen"] > 0 > last["rewards/rejected"]
    assert result.steps == 8 and result.ref_logps.shape == (12,) and result.kept_rows == list(range(12))
    assert {"eval/loss", "eval/kl", "eval/rewards/margins"} <= set(result.history[-1])
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert logged == result.history and {"grad_norm", "learning_rate", "logps/chosen"} <= set(logged[0])
    assert (tmp_path / "final" / "model.safetensors").exists()
    assert (tmp_path / "step-4").is_dir() and (tmp_path / "step-8").is_dir()


def test_pairs_are_unpaired_and_weights_scale_step_zero(tokenizer, make_model):
    pairs = TextPairs(("my day was", "the food was", "the trip was"), (" lovely", " a joy", " bright"),
                      (" grim", " cold", " bleak bleak"))
    config = kto.Config(**BASE, batch_size=4, epochs=1, desirable_weight=2.0, undesirable_weight=0.5)
    result = kto.train(make_model(len(tokenizer)), tokenizer, pairs, config)
    # 6 rows in batches of 4: [4 rows, 2 rows]; loss = (2 n_D + 0.5 n_U) / (2 n) at the unchanged model
    assert result.steps == 2 and len(result.ref_logps) == 6
    order = next(global_batches(6, 4, 1, 0))[:4]
    n_d = int((order < 3).sum())  # rows 0-2 are the chosen answers
    assert result.history[0]["loss"] == pytest.approx((2.0 * n_d + 0.5 * (4 - n_d)) / 8, abs=1e-7)


def test_a_last_batch_of_one_row_is_skipped(tokenizer, make_model):
    config = kto.Config(**BASE, batch_size=4, epochs=2)
    assert kto.train(make_model(len(tokenizer)), tokenizer, tiny_labels(5), config).steps == 2


def test_bad_input_is_refused_before_training(tokenizer, make_model):
    model = make_model(len(tokenizer))
    with pytest.raises(ValidationError, match="data: 1 of 1 rows left.*at least 2"):
        kto.train(model, tokenizer, tiny_labels(1), kto.Config(**BASE))
    with pytest.raises(ValidationError, match="batch_size"):
        kto.Config(batch_size=1)
    with pytest.raises(ValidationError, match="expected irlhf.data.text.TextLabels"):
        kto.train(model, tokenizer, [{"prompt": "a", "completion": " b", "label": True}], kto.Config(**BASE))
    with pytest.raises(ValidationError, match="desirable_weight"):
        kto.Config(desirable_weight=0.0)
    with pytest.raises(ValidationError, match="expected irlhf.llm.kto.Config"):
        kto.train(model, tokenizer, tiny_labels(2), pairwise.Config())


# -- TextLabels ----------------------------------------------------------------------------------------------
def test_text_labels_rows_round_trip_and_slice(tmp_path):
    rows = [{"prompt": "a", "completion": " b", "label": True}, {"prompt": "c", "completion": " d", "label": False},
            {"prompt": [{"role": "user", "content": "e"}], "completion": " f", "label": np.bool_(True)}]
    data = TextLabels.from_rows(rows)
    assert data.label == (True, False, True) and data.n_desirable == 2 and len(data) == 3
    assert data[1:].completion == (" d", " f") and data[0].label == (True,)
    path = data.save(tmp_path / "labels.jsonl")
    assert TextLabels.load(path) == data and data.to_rows()[2]["label"] is True


@pytest.mark.parametrize("label", ["yes", 1.5, 1, None])
def test_text_labels_refuse_a_label_that_is_not_a_boolean(label):
    rows = [{"prompt": "a", "completion": " b", "label": True}, {"prompt": "c", "completion": " d", "label": label}]
    with pytest.raises(ValidationError, match=r"^row 1: label .*expected true or false") as err:
        TextLabels.from_rows(rows)
    assert "\n" not in str(err.value)


def test_text_labels_refuse_empty_data_and_missing_keys():
    with pytest.raises(ValidationError, match="no rows"):
        TextLabels.from_rows([])
    with pytest.raises(ValidationError, match=r"row 0: missing \['label'\]"):
        TextLabels.from_rows([{"prompt": "a", "completion": " b"}])
    with pytest.raises(ValidationError, match="completion"):
        TextLabels(("a",), ("",), (True,))
    with pytest.raises(ValidationError, match=r"label\[0\]"):
        TextLabels(("a",), (" b",), ("yes",))


def test_from_pairs_unpairs_like_trl():
    pairs = TextPairs(("p", "q"), (" good", " fine"), (" bad", " poor"))
    data = TextLabels.from_pairs(pairs)
    assert len(data) == 4 and data.n_desirable == 2
    assert data.to_rows() == [{"prompt": "p", "completion": " good", "label": True},
                              {"prompt": "q", "completion": " fine", "label": True},
                              {"prompt": "p", "completion": " bad", "label": False},
                              {"prompt": "q", "completion": " poor", "label": False}]
    with pytest.raises(ValidationError, match="expected irlhf.data.text.TextPairs"):
        TextLabels.from_pairs(data)
