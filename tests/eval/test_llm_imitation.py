"""``irlhf.eval.llm_imitation``: the summary over seeds, DPO's implicit reward, the Config, a smoke run, the plot."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import torch

from irlhf.core.errors import ValidationError
from irlhf.eval.llm_imitation import CURVES, TASK_RATES, Config, implicit_reward_fn, plot, run_seed, summarize
from irlhf.llm.logps import sequence_logps
from irlhf.llm.tokenize import collate, encode

torch.set_num_threads(1)


def _half_width(values):
    """95% t half-width by hand: t_{0.975, n-1} * sample std / sqrt(n)."""
    from scipy.stats import t as student_t

    n = len(values)
    return student_t.ppf(0.975, n - 1) * statistics.stdev(values) / math.sqrt(n)


# ------------------------------------------------------------------------------------------------ summarize

def _rows():
    rows = []
    for seed, (score, kl) in enumerate([(0.2, 1.0), (0.5, 2.0), (0.8, 4.0)]):
        rows.append({"task": "addition", "method": "SFT", "seed": seed, "score": score, "kl": kl,
                     "correct_forms": seed + 1})
    spearman = [0.1, None, 0.4]  # None: no reward on that seed, like a missing key
    for seed, (score, kl) in enumerate([(0.9, 3.0), (0.6, 5.0), (0.3, 10.0)]):
        row = {"task": "addition", "method": "DPO", "seed": seed, "score": score, "kl": kl, "correct_forms": 2}
        if spearman[seed] is not None:
            row["reward_spearman"] = spearman[seed]
        rows.append(row)
    rows.append({"task": "sentiment", "method": "SFT", "seed": 0, "score": 0.7, "kl": 0.5})
    return rows


def _by_key(summary):
    return {(s["task"], s["method"]): s for s in summary}


def test_summarize_means_and_half_widths_by_hand():
    summary = _by_key(summarize(_rows()))
    assert set(summary) == {("addition", "SFT"), ("addition", "DPO"), ("sentiment", "SFT")}

    sft = summary[("addition", "SFT")]
    assert sft["n_seeds"] == 3
    assert sft["score"] == pytest.approx(0.5, abs=1e-12)
    assert sft["score_ci"] == pytest.approx(4.302652729911275 * 0.3 / math.sqrt(3), rel=1e-9)
    assert sft["kl"] == pytest.approx(7 / 3, abs=1e-12)
    assert sft["kl_ci"] == pytest.approx(_half_width([1.0, 2.0, 4.0]), rel=1e-9)
    assert sft["correct_forms"] == pytest.approx(2.0, abs=1e-12)
    assert sft["correct_forms_ci"] == pytest.approx(_half_width([1, 2, 3]), rel=1e-9)

    dpo = summary[("addition", "DPO")]
    assert dpo["n_seeds"] == 3
    assert dpo["score"] == pytest.approx(0.6, abs=1e-12)
    assert dpo["kl"] == pytest.approx(6.0, abs=1e-12)
    assert dpo["kl_ci"] == pytest.approx(_half_width([3.0, 5.0, 10.0]), rel=1e-9)
    assert dpo["correct_forms_ci"] == pytest.approx(0.0, abs=1e-12)  # all equal: zero width
    # reward_spearman over the two seeds that have it (t with 1 degree of freedom)
    assert dpo["reward_spearman"] == pytest.approx(0.25, abs=1e-12)
    assert dpo["reward_spearman_ci"] == pytest.approx(12.706204736174698 * statistics.stdev([0.1, 0.4]) / math.sqrt(2),
                                                      rel=1e-9)


def test_summarize_single_seed_is_nan_and_absent_keys_stay_absent():
    summary = _by_key(summarize(_rows()))
    senti = summary[("sentiment", "SFT")]
    assert senti["n_seeds"] == 1
    assert senti["score"] == pytest.approx(0.7, abs=1e-12) and math.isnan(senti["score_ci"])
    assert senti["kl"] == pytest.approx(0.5, abs=1e-12) and math.isnan(senti["kl_ci"])
    for key in ("correct_forms", "reward_spearman", "ess_fraction", "entropy", "seconds"):
        assert key not in senti and key + "_ci" not in senti
    sft = summary[("addition", "SFT")]
    assert "reward_spearman" not in sft and "reward_spearman_ci" not in sft  # no SFT row has one
    assert set(sft) == {"task", "method", "setting", "n_seeds", "score", "score_ci", "kl", "kl_ci", "correct_forms",
                        "correct_forms_ci"}


# ---------------------------------------------------------------------------------------- implicit reward

PROMPTS = ["hello world, the film was", "the acting", "i loved"]
COMPLETIONS = [" great", " was awful; i loved the music!", ""]


def _reference_logps(model, tokenizer):
    encoded = [encode(tokenizer, p, c or tokenizer.eos_token) for p, c in zip(PROMPTS, COMPLETIONS)]
    batch = collate(encoded, tokenizer.pad_token_id)
    with torch.no_grad():
        return sequence_logps(model, batch).double().numpy()


def test_implicit_reward_is_beta_times_log_ratio(tokenizer, make_model):
    policy, ref = make_model(len(tokenizer), seed=0), make_model(len(tokenizer), seed=1)
    beta = 0.3
    got = implicit_reward_fn(policy, ref, tokenizer, beta)(PROMPTS, COMPLETIONS)
    expected = beta * (_reference_logps(policy, tokenizer) - _reference_logps(ref, tokenizer))
    assert isinstance(got, np.ndarray) and got.dtype == np.float64 and got.shape == (3,)
    assert np.all(np.abs(expected) > 1e-3)  # the two models differ: a real log ratio, not zeros
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_implicit_reward_is_zero_against_itself(tokenizer, make_model):
    model = make_model(len(tokenizer), seed=2)
    got = implicit_reward_fn(model, model, tokenizer, 0.7)(PROMPTS, COMPLETIONS)
    assert got.shape == (3,)
    assert np.all(got == 0.0)


def test_implicit_reward_scores_an_empty_completion_as_eos(tokenizer, make_model):
    policy, ref = make_model(len(tokenizer), seed=3), make_model(len(tokenizer), seed=4)
    prompt, beta = "the acting", 0.5
    got = implicit_reward_fn(policy, ref, tokenizer, beta)([prompt], [""])
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]

    def eos_logp(model):  # log pi(EOS | prompt), straight from the logits
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0, -2]
        return float(torch.log_softmax(logits.double(), -1)[tokenizer.eos_token_id])

    expected = beta * (eos_logp(policy) - eos_logp(ref))
    assert abs(expected) > 1e-3
    assert got[0] == pytest.approx(expected, rel=1e-4, abs=1e-6)


# ---------------------------------------------------------------------------------------------------- Config

@pytest.mark.parametrize("kwargs, shown", [
    ({"methods": ("SFT", "PPO-ish")}, "PPO-ish"),
    ({"methods": ()}, "methods=()"),
    ({"seeds": ()}, "seeds=()"),
    ({"seeds": (0, -1)}, "-1"),
    ({"task": "chess"}, "chess"),
])
def test_config_rejects_bad_values(kwargs, shown):
    with pytest.raises(ValidationError) as info:
        Config(**kwargs)
    assert shown in str(info.value)


def test_config_stores_lists_as_tuples():
    config = Config(seeds=[3, 1], methods=["DPO", "SFT"])
    assert config.seeds == (3, 1) and isinstance(config.seeds, tuple)
    assert config.methods == ("DPO", "SFT") and isinstance(config.methods, tuple)


@pytest.mark.parametrize("task", ["sentiment", "addition"])
@pytest.mark.parametrize("name", ["rl_learning_rate", "reward_learning_rate"])
def test_config_rate_defaults_to_the_task_and_keeps_a_set_value(task, name):
    assert Config(task=task).rate(name) == TASK_RATES[task][name]
    other = "reward_learning_rate" if name == "rl_learning_rate" else "rl_learning_rate"
    config = Config(task=task, **{name: 0.0123})
    assert config.rate(name) == 0.0123
    assert config.rate(other) == TASK_RATES[task][other]  # the other one still follows the task


def test_task_rates_differ_between_tasks():
    for name in ("rl_learning_rate", "reward_learning_rate"):
        assert Config(task="sentiment").rate(name) != Config(task="addition").rate(name)


# -------------------------------------------------------------------------------------------------- smoke run

SMOKE_METHODS = ("SFT", "IQ-Learn offline", "DPO")


@pytest.fixture(scope="module")
def smoke():
    lines: list[str] = []
    config = Config(task="addition", seeds=(0,), methods=SMOKE_METHODS, n_demos=16, n_eval_prompts=4,
                    eval_samples=2, epochs=1, pretrain_steps=5, corpus_size=50, curves=False)
    return run_seed(config, 0, log=lines.append), lines


def test_run_seed_rows_and_metric_ranges(smoke):
    rows, _ = smoke
    assert [r["method"] for r in rows] == ["SFT start", *SMOKE_METHODS]
    for row in rows:
        assert row["task"] == "addition" and row["seed"] == 0
        assert math.isfinite(row["score"]) and 0.0 <= row["score"] <= 1.0
        assert math.isfinite(row["kl"])
        assert 0.0 <= row["distinct_1"] <= 1.0 and 0.0 <= row["distinct_2"] <= 1.0
        assert 0.0 <= row["self_bleu"] <= 100.0
        assert math.isfinite(row["entropy"]) and row["entropy"] >= 0.0
        assert isinstance(row["correct_forms"], int) and not isinstance(row["correct_forms"], bool)
        assert row["correct_forms"] >= 0
        assert row["seconds"] >= 0.0
        has_reward = row["method"] in ("IQ-Learn offline", "DPO")
        assert ("reward_spearman" in row) == has_reward, row["method"]
        if has_reward:
            rho = row["reward_spearman"]
            assert math.isnan(rho) or -1.0 <= rho <= 1.0
        assert "ess_fraction" not in row  # only MaxEnt reports it
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # pi_SFT against itself


def test_run_seed_logs_every_method(smoke):
    rows, lines = smoke
    assert any("pretrained" in line for line in lines)
    assert any("SFT start: score" in line for line in lines)
    config = Config(epochs=1)  # the smoke run's values of the knobs
    for row in rows[1:]:  # each trained method logs its setting: the Config's value of its CURVES knob
        knob = CURVES[row["method"]][0]
        assert row["setting"] == f"{knob}={getattr(config, knob)}"
        assert any(f"{row['method']} [{row['setting']}]: score" in line for line in lines), row["method"]
    assert len(lines) == 1 + len(rows)


def test_curves_run_each_method_along_its_knob():
    """curves=True: DPO at each beta of CURVES, in order, the middle one the Config default."""
    # 3 epochs = 3 steps: Adam's first step is the same for every beta (it divides out the gradient's scale),
    # so one step would leave the three policies equal up to float noise
    config = Config(task="addition", seeds=(0,), methods=("DPO",), n_demos=8, n_eval_prompts=2, eval_samples=2,
                    epochs=3, pretrain_steps=2, corpus_size=20)
    rows = run_seed(config, 0, log=lambda line: None)
    assert [r["setting"] for r in rows] == [None] + [f"dpo_beta={b}" for b in CURVES["DPO"][1]]
    assert CURVES["DPO"][1][1] == config.dpo_beta
    kls = sorted(r["kl"] for r in rows[1:])
    assert kls[1] - kls[0] > 1e-5 and kls[2] - kls[1] > 1e-5  # three different policies, beyond float noise


# ------------------------------------------------------------------------------------------------------- plot

@pytest.mark.parametrize("diversity", ["distinct_2", "self_bleu"])
def test_plot_writes_a_png(tmp_path, diversity):
    rows = [{"task": task, "method": method, "seed": seed, "score": 0.1 * seed + 0.2, "distinct_2": 0.5 + 0.1 * seed,
             "self_bleu": 20.0 + seed}
            for task in ("addition", "sentiment") for method in ("SFT start", "SFT", "DPO") for seed in range(2)]
    path = tmp_path / f"plot_{diversity}.png"
    plot(rows, path, diversity=diversity)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
