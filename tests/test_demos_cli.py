"""``irlhf demos collect / info / convert`` and ``irlhf bc --demos`` with every format."""

from __future__ import annotations

import pytest

from irlhf import cli
from irlhf.data import load_demos, load_trajectories

pytest.importorskip("datasets")

COLLECT = ["demos", "collect", "--env", "CartPole-v1", "--episodes", "2", "--no-progress"]


def assert_same(a, b):
    assert len(a) == len(b) and all(x == y for x, y in zip(a, b))


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    path = tmp_path_factory.mktemp("demos") / "cp.npz"
    assert cli.main([*COLLECT, "--save", str(path), "--seed", "3"]) == 0
    return path


def test_collect_npz_and_info(npz, capsys):
    demos = load_trajectories(npz)
    assert len(demos) == 2 and all(t.rews is not None for t in demos)
    assert cli.main(["demos", "info", str(npz)]) == 0
    out = capsys.readouterr().out
    assert "episodes: 2" in out and "obs: shape (4,), dtype float32" in out and "dtype int64" in out
    assert "return: 500.00 +- 0.00" in out and "terminal: 0; truncated: 2" in out


def test_collect_to_directory_default_path_and_overwrite(tmp_path, monkeypatch, capsys, npz):
    path = tmp_path / "cp_dir"
    assert cli.main([*COLLECT, "--save", str(path), "--seed", "3"]) == 0
    assert (path / "dataset_info.json").is_file()
    assert_same(load_demos(path), load_trajectories(npz))
    assert str(path) in capsys.readouterr().out
    assert cli.main([*COLLECT, "--save", str(path)]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert cli.main([*COLLECT, "--episodes", "1", "--save", str(path), "--force"]) == 0
    assert len(load_demos(path)) == 1
    monkeypatch.chdir(tmp_path)
    assert cli.main([*COLLECT, "--episodes", "1"]) == 0
    assert (tmp_path / "demos" / "CartPole-v1-scripted-1ep-seed0.npz").is_file()


@pytest.mark.parametrize("where", ["before", "after"])
def test_collect_writes_its_default_file_into_out(tmp_path, monkeypatch, capsys, where):
    monkeypatch.chdir(tmp_path)
    out = ["--out", str(tmp_path / "mine")]
    assert cli.main(["demos", *out, *COLLECT[1:]] if where == "before" else [*COLLECT, *out]) == 0
    written = tmp_path / "mine" / "CartPole-v1-scripted-2ep-seed0.npz"
    assert len(load_trajectories(written)) == 2 and str(written) in capsys.readouterr().out
    assert not (tmp_path / "demos").exists()


@pytest.mark.parametrize("name", ["c.parquet", "c.jsonl", "c_dir"])
def test_convert_both_ways_exact(tmp_path, npz, name, capsys):
    mid, back = tmp_path / name, tmp_path / "back.npz"
    assert cli.main(["demos", "convert", str(npz), str(mid)]) == 0
    assert cli.main(["demos", "convert", str(mid), str(back)]) == 0
    assert_same(load_demos(mid), load_trajectories(npz))
    assert_same(load_trajectories(back), load_trajectories(npz))
    assert cli.main(["demos", "convert", str(npz), str(mid)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli.main(["demos", "convert", str(npz), str(mid), "--force"]) == 0


@pytest.mark.parametrize("argv, message", [
    (["demos", "collect", "--env", "NoSuchEnv-v0", "--save", "{tmp}/a.npz"], "NoSuchEnv-v0"),
    (["demos", "collect", "--episodes", "0", "--save", "{tmp}/a.npz"], "episodes=0"),
    (["demos", "collect", "--save", "{tmp}/a.csv"], "unknown format '.csv'"),
    (["demos", "convert", "{tmp}/bad.npz", "{tmp}/b.jsonl"], "not a readable .npz"),
    (["demos", "info", "{tmp}/bad.parquet"], "not a readable .parquet"),
    (["demos", "info", "{tmp}/missing.jsonl"], "no such"),
    (["demos"], "no action given"),
])
def test_errors_are_one_line(tmp_path, capsys, argv, message):
    (tmp_path / "bad.npz").write_bytes(b"junk")
    (tmp_path / "bad.parquet").write_bytes(b"junk")
    assert cli.main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("irlhf: error:") and "\n" not in err and message in err
    assert not (tmp_path / "a.npz").exists() and not (tmp_path / "b.jsonl").exists()


def test_bc_reads_a_dataset_directory(tmp_path, npz, capsys):
    path = tmp_path / "d"
    assert cli.main(["demos", "convert", str(npz), str(path)]) == 0
    out = tmp_path / "runs"
    assert cli.main(["bc", "--env", "CartPole-v1", "--demos", str(path), "--set", "epochs=2",
                     "--eval-episodes", "1", "--no-progress", "--out", str(out)]) == 0
    (run,) = list(out.iterdir())
    assert (run / "policy.safetensors").is_file()
    assert "2 demonstrations" in (run / "report.html").read_text()
