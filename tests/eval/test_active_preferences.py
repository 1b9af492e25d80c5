"""The simulated active-preference experiment: its curves, summaries and plot, and the CLI job on top of it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import t as student_t

from irlhf import cli
from irlhf.eval import active_preferences as ap
from irlhf.jobs import _common

SMALL = ap.Config(seeds=(0,), n_queries=8, pool_size=60, n_candidates=300, n_samples=40)


def test_queries_to_reach_is_the_first_mean_at_the_level():
    curves = np.array([[0.0, 0.5, 0.95, 0.85, 0.99], [0.0, 0.7, 0.80, 0.97, 0.99]])  # means 0, .6, .875, .91, .99
    assert ap.queries_to_reach(curves, 0.9) == 3
    assert ap.queries_to_reach(curves, 0.995) is None
    assert ap.queries_to_reach(curves, 0.0) == 0


def test_summary_means_intervals_and_reach_by_hand():
    rows = [{"env": "lds", "beta": 1.0, "acquisition": "random", "seed": s,
             "alignment": [0.0] + [a] * 50, "seconds": [0.01 * (s + 1)] * 50} for s, a in enumerate((0.8, 0.9, 1.0))]
    (summary,) = ap.summarize(rows)
    values = np.array([0.8, 0.9, 1.0])
    half = student_t.ppf(0.975, 2) * values.std(ddof=1) / math.sqrt(3)
    assert summary["m@10"] == pytest.approx(0.9) and summary["m@10_ci"] == pytest.approx(half)
    assert summary["queries_to_0.9"] == 1 and summary["n_seeds"] == 3
    assert summary["median_ms_per_query"] == pytest.approx(20.0)


def test_curve_is_seeded_and_informative_queries_align():
    first = ap.run_curve(ap.lds, "information", 10.0, 0, SMALL)
    again = ap.run_curve(ap.lds, "information", 10.0, 0, SMALL)
    assert first["alignment"] == again["alignment"] and first["w"] == again["w"]
    assert len(first["alignment"]) == SMALL.n_queries + 1 and len(first["seconds"]) == SMALL.n_queries
    assert first["alignment"][-1] > 0.8 > first["alignment"][0]  # 8 clean answers point w at w*
    assert 0 < first["acceptance_rate"] < 1 and np.linalg.norm(first["w"]) == pytest.approx(1.0)


def test_plot_writes_a_png(tmp_path):
    rows = [ap.run_curve(ap.lds, acq, 10.0, s, SMALL) for acq in ("random", "information") for s in (0, 1)]
    ap.plot(rows, tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_config_checks_and_the_cli_names_agree():
    assert _common.ACTIVE_ACQUISITIONS == ap.ACQUISITIONS and _common.ACTIVE_ENVS == tuple(ap.ENVS)
    for bad, message in ((dict(acquisitions=("bogus",)), "acquisitions"), (dict(answer_betas=(0.0,)), "answer_betas"),
                         (dict(seeds=()), "seeds"), (dict(pool_size=1), "pool_size")):
        with pytest.raises(ValueError, match=message):
            ap.Config(**bad)
    assert ap.Config(seeds=[1, 2]).seeds == (1, 2)


def test_prefs_active_writes_a_complete_run(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["prefs", "active", "--env", "driving", "--queries", "6", "--pool", "80", "--candidates", "300",
                     "--out", str(out)]) == 0
    (run,) = list(out.iterdir())
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "metrics.jsonl", "w.json", "alignment.png", "best_trajectory.gif", "summary.txt",
            "report.html"} <= names
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["query"] for r in lines] == list(range(1, 7)) and all(-1 <= r["alignment"] <= 1 for r in lines)
    w = json.loads((run / "w.json").read_text())
    assert w["features"] == ["lane", "speed", "heading", "collision"] and len(w["learned"]) == 4
    assert w["alignment"] == pytest.approx(lines[-1]["alignment"])
    assert "irlhf prefs active ->" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--queries", "0"], "queries=0"), (["--pool", "1"], "pool=1"), (["--answer-beta", "-1"], "answer_beta=-1"),
    (["--candidates", "0"], "candidates=0"),
])
def test_prefs_active_bad_input_is_one_line_and_no_run_dir(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert cli.main(["prefs", "active", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("irlhf: error:") and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("method", ["greedy", "dpp"])
def test_batches_update_once_per_batch(method):
    """batch_size 3: 7 queries in batches of 3, 3, 1; the alignment is known after each batch, so it repeats."""
    config = ap.Config(seeds=(0,), n_queries=7, pool_size=60, n_candidates=200, n_samples=40, batch_size=3,
                       batch_method=method)
    row = ap.run_curve(ap.lds, "information", 10.0, 0, config)
    m = row["alignment"]
    assert len(m) == 8 and len(row["seconds"]) == 7
    assert m[1] == m[2] == m[3] and m[4] == m[5] == m[6] and m[7] != m[6]


def test_weak_answers_run_and_align():
    config = ap.Config(seeds=(0,), n_queries=10, pool_size=60, n_candidates=300, n_samples=40, answer_model="weak")
    row = ap.run_curve(ap.lds, "information", 10.0, 0, config)
    assert row["alignment"][-1] > 0.7 and len(row["alignment"]) == 11


def test_queries_optimised_over_controls_are_asked():
    """query_source="controls": the pair comes from scipy over the controls (Sadigh et al.), not from the pool."""
    config = ap.Config(seeds=(0,), n_queries=2, pool_size=10, n_samples=40, query_source="controls")
    row = ap.run_curve(ap.lds, "information", 10.0, 0, config)
    assert len(row["alignment"]) == 3 and all(np.isfinite(row["alignment"]))
    assert row["alignment"][-1] != row["alignment"][0]  # the answers moved the posterior
