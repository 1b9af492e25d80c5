"""SimPO and ORPO trainers on the shared pairwise loop: step 0 equals the losses computed by hand from the initial
model's log-probs, short runs learn the preferences, configs validate."""

import copy
import math

import pytest
import torch

from irlhf.core.errors import ValidationError
from irlhf.data.text import TextPairs
from irlhf.llm import orpo, pairwise, simpo
from irlhf.llm.tokenize import Encoded, pad_id_of

def tiny_pairs(n: int) -> TextPairs:
    """n pairs over 4 prompts: an upbeat answer chosen over a gloomy one, of different lengths."""
    prompts = ["my day was", "the food was", "the trip was", "the show was"]
    chosen = [" lovely", " lovely and bright", " a joy", " bright"]
    rejected = [" grim", " grim and cold", " bleak bleak", " cold"]
    return TextPairs(tuple(prompts[k % 4] for k in range(n)), tuple(chosen[(k // 4) % 4] for k in range(n)),
                     tuple(rejected[(k // 4) % 4] for k in range(n)))


BASE = dict(learning_rate=1e-3, batch_size=8, epochs=1, max_length=32, log_every=1, progress=False, device="cpu")


def initial_logps(model, tokenizer, pairs, config):
    """Summed completion log-probs and token counts of every chosen and rejected row under ``model``."""
    chosen, rejected, _ = pairwise.encode(tokenizer, pairs, config, "data")
    with torch.no_grad():
        logps = pairwise.grouped_logps(pairwise.GroupedLogps(model), chosen + rejected, pad_id_of(tokenizer))
    return (logps[:len(chosen)], logps[len(chosen):], pairwise.completion_tokens(chosen),
            pairwise.completion_tokens(rejected))


def test_simpo_step_zero_is_the_length_normalised_margin_loss(tokenizer, make_model):
    model, pairs = make_model(len(tokenizer)), tiny_pairs(8)
    config = simpo.Config(**BASE, beta=2.0, gamma=0.5, max_steps=1)
    pc, pr, nc, nr = initial_logps(copy.deepcopy(model), tokenizer, pairs, config)
    z = 2.0 * (pc / nc - pr / nr) - 0.5
    first = simpo.train(model, tokenizer, pairs, config).history[0]
    assert first["loss"] == pytest.approx(float(-torch.nn.functional.logsigmoid(z).mean()), abs=1e-6)
    assert first["rewards/chosen"] == pytest.approx(float((2.0 * pc / nc).mean()), abs=1e-6)
    assert first["logps/chosen"] == pytest.approx(float(pc.mean()), abs=1e-5)


@pytest.mark.parametrize("nll_tokens", ["completion", "sequence"])
def test_orpo_step_zero_is_token_mean_nll_plus_the_odds_ratio_term(tokenizer, make_model, nll_tokens):
    model, pairs = make_model(len(tokenizer)), tiny_pairs(8)
    config = orpo.Config(**BASE, lam=0.1, max_steps=1, nll_tokens=nll_tokens)
    pc, pr, nc, nr = initial_logps(copy.deepcopy(model), tokenizer, pairs, config)
    a_w, a_l = pc / nc, pr / nr
    log_odds = (a_w - a_l) - (torch.log(-torch.expm1(a_w)) - torch.log(-torch.expm1(a_l)))
    if nll_tokens == "completion":
        nll = -pc.sum() / nc.sum()
    else:  # prompt and answer: every token after the first
        chosen, _, _ = pairwise.encode(tokenizer, pairs, config, "data")
        whole = [Encoded(e.input_ids, 1) for e in chosen]  # every token after the first, in one row
        with torch.no_grad():
            lw = pairwise.grouped_logps(pairwise.GroupedLogps(copy.deepcopy(model)), whole, pad_id_of(tokenizer))
        nll = -lw.sum() / sum(len(e.input_ids) - 1 for e in chosen)
    expected = float(nll - 0.1 * torch.nn.functional.logsigmoid(log_odds).mean())
    first = orpo.train(model, tokenizer, pairs, config).history[0]
    assert first["loss"] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("module, extra", [(simpo, {"beta": 2.0}), (orpo, {"lam": 0.5})])
def test_short_runs_learn_the_preferences(tokenizer, make_model, module, extra):
    config = module.Config(**{**BASE, "epochs": 6, "log_every": 100}, **extra)
    result = module.train(make_model(len(tokenizer)), tokenizer, tiny_pairs(16), config)
    first, last = result.history[0], result.history[-1]
    assert last["loss"] < first["loss"]
    assert last["rewards/margins"] > first["rewards/margins"] and last["rewards/accuracies"] == 1.0
    assert torch.equal(result.ref_chosen_logps, torch.zeros_like(result.ref_chosen_logps))  # no reference scored


def test_configs_validate_beside_their_fields():
    with pytest.raises(ValidationError, match="gamma"):
        simpo.Config(gamma=-1.0)
    with pytest.raises(ValidationError, match="label_smoothing"):
        simpo.Config(label_smoothing=0.5)
    with pytest.raises(ValidationError, match="lam"):
        orpo.Config(lam=-0.1)
    with pytest.raises(ValidationError, match="nll_tokens"):
        orpo.Config(nll_tokens="prompt")
    with pytest.raises(ValidationError, match="expected irlhf.llm.orpo.Config"):
        orpo.train(None, None, tiny_pairs(2), simpo.Config())
    assert math.isclose(orpo.Config().lam, 0.1) and simpo.Config().beta == 2.0


def test_a_pair_with_equal_answers_is_refused(tokenizer, make_model):
    pairs = TextPairs(("a", "b"), (" yes", " same"), (" no", " same"))
    with pytest.raises(ValidationError, match="data row 2: chosen and rejected are the same text"):
        simpo.train(make_model(len(tokenizer)), tokenizer, pairs, simpo.Config(**BASE))
