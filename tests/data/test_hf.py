"""Demonstrations as Hugging Face tables: exact round trips (memory, directory, parquet, jsonl), users'
own tables, clear errors, atomic writes and ``load_demos`` dispatch."""

from __future__ import annotations

import json

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")

from irlhf.core.errors import ValidationError  # noqa: E402
from irlhf.data import (  # noqa: E402
    Trajectory,
    from_hf_dataset,
    load_demos,
    load_hf,
    save_demos,
    save_hf,
    to_hf_dataset,
)
from irlhf.data import hf  # noqa: E402

FORMATS = ["x.parquet", "x.jsonl", "x_dir", "x.npz"]


def cartpole_like(rng):
    return [Trajectory(obs=rng.normal(size=(6, 4)).astype(np.float32), acts=rng.integers(0, 2, 5),
                       rews=np.ones(5), terminal=True),
            Trajectory(obs=rng.normal(size=(4, 4)).astype(np.float32), acts=rng.integers(0, 2, 3),
                       rews=rng.normal(size=3), terminal=False)]


def pendulum_like(rng):
    return [Trajectory(obs=rng.normal(size=(n + 1, 3)).astype(np.float32),
                       acts=rng.uniform(-2, 2, size=(n, 1)).astype(np.float32), rews=rng.normal(size=n),
                       terminal=False) for n in (4, 7)]


def discrete_obs(rng):
    return [Trajectory(obs=rng.integers(0, 16, size=n + 1), acts=rng.integers(0, 4, size=n),
                       rews=rng.normal(size=n).astype(np.float32), terminal=bool(n % 2)) for n in (1, 3, 2)]


def no_rewards(rng):
    return [Trajectory(obs=rng.normal(size=(4, 2, 3)), acts=rng.integers(0, 3, size=3), terminal=True),
            Trajectory(obs=rng.normal(size=(3, 2, 3)), acts=rng.integers(0, 3, size=2), rews=np.zeros(2),
                       terminal=False, infos=[{"k": 1}, {"s": "x", "l": [1.5, None]}])]


CASES = {"cartpole": cartpole_like, "pendulum": pendulum_like, "discrete": discrete_obs, "no_rews": no_rewards}


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x == y
        assert x.obs.dtype == y.obs.dtype and x.acts.dtype == y.acts.dtype
        assert (x.rews is None) == (y.rews is None)
        assert x.rews is None or x.rews.dtype == y.rews.dtype


@pytest.mark.parametrize("case", sorted(CASES))
def test_memory_round_trip_and_schema(case):
    trajs = CASES[case](np.random.default_rng(0))
    ds = to_hf_dataset(trajs)
    assert len(ds) == sum(len(t) for t in trajs)
    assert {"episode_id", "step", "obs", "act", "rew", "next_obs", "terminated", "truncated"} <= set(ds.column_names)
    assert ds.features["episode_id"].dtype == "int64" and ds.features["step"].dtype == "int64"
    assert_same(from_hf_dataset(ds), trajs)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", FORMATS)
def test_file_round_trip(tmp_path, case, name):
    trajs = CASES[case](np.random.default_rng(1))
    path = tmp_path / name
    save_demos(path, trajs)
    assert_same(load_demos(path), trajs)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_row_schema_values():
    trajs = cartpole_like(np.random.default_rng(0))
    rows = to_hf_dataset(trajs).to_list()
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4, 0, 1, 2]
    assert [r["episode_id"] for r in rows] == [0] * 5 + [1] * 3
    assert [r["terminated"] for r in rows] == [False] * 4 + [True] + [False] * 3
    assert [r["truncated"] for r in rows] == [False] * 7 + [True]
    np.testing.assert_array_equal(np.float32(rows[4]["next_obs"]), trajs[0].obs[-1])
    ds = to_hf_dataset(no_rewards(np.random.default_rng(0)))
    assert ds["rew"][:3] == [None, None, None] and ds["info"][:3] == [None] * 3
    assert json.loads(ds["info"][3]) == {"k": 1}


def test_non_json_infos_are_dropped():
    traj = Trajectory(obs=np.zeros((3, 2)), acts=np.zeros(2, dtype=np.int64), infos=[{"a": np.float32(1)}, {}])
    ds = to_hf_dataset([traj])
    assert "info" not in ds.column_names
    assert from_hf_dataset(ds)[0].infos is None


def user_table(shuffle=True):
    obs = np.arange(14, dtype=np.float64).reshape(7, 2)  # episode 7: 3 steps, episode 2: 2 steps
    rows = []
    for ep, (lo, hi) in ((7, (0, 3)), (2, (4, 6))):
        for t, i in enumerate(range(lo, hi)):
            rows.append({"episode_id": ep, "step": t, "obs": obs[i].tolist(), "act": t % 2,
                         "next_obs": obs[i + 1].tolist(), "rew": float(t)})
    if shuffle:
        rows = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))]
    return rows, obs


def test_user_table_shuffled_with_step_column():
    rows, obs = user_table()
    trajs = from_hf_dataset(datasets.Dataset.from_list(rows))
    assert [len(t) for t in trajs] == [2, 3]  # ordered by episode_id: 2, then 7
    np.testing.assert_array_equal(trajs[1].obs, obs[0:4])
    np.testing.assert_array_equal(trajs[0].obs, obs[4:7])
    np.testing.assert_array_equal(trajs[1].rews, [0.0, 1.0, 2.0])
    assert trajs[0].acts.dtype == np.int64 and not trajs[0].terminal  # no flags: truncated


def test_user_table_without_step_keeps_table_order_and_flags():
    rows, obs = user_table(shuffle=False)
    for r in rows:
        del r["step"], r["rew"]
        r["terminated"] = r["episode_id"] == 7 and r["obs"] == obs[2].tolist()
    trajs = from_hf_dataset(datasets.Dataset.from_list(rows))
    assert trajs[1].terminal and not trajs[0].terminal and trajs[0].rews is None
    only_truncated = [{k: v for k, v in r.items() if k != "terminated"} | {"truncated": False} for r in rows]
    assert all(t.terminal for t in from_hf_dataset(datasets.Dataset.from_list(only_truncated)))


def edit(rows, index, **changes):
    rows = [dict(r) for r in rows]
    rows[index].update(changes)
    return datasets.Dataset.from_list(rows)


def test_errors():
    rows, _ = user_table(shuffle=False)
    cases = [
        (datasets.Dataset.from_list([{k: v for k, v in r.items() if k != "next_obs"} for r in rows]),
         r"missing columns \['next_obs'\].*available"),
        (datasets.Dataset.from_list(rows).select([]), "empty table"),
        (edit(rows, 1, obs=[float("nan"), 3.0], next_obs=[4.0, 5.0]), "'obs': non-finite.*row 1"),
        (edit(rows, 1, rew=float("inf")), "'rew': non-finite.*row 1"),
        (edit(rows, 2, obs=[4.0, 5.0, 6.0]), "'obs': ragged.*row 2"),
        (edit(rows, 1, next_obs=[9.0, 9.0]), r"episode 7, step 1: next_obs differs"),
        (edit(rows, 1, step=0), "episode 7 has step 0 twice"),
        (edit(rows, 2, step=3), "episode 7 jumps from step 1 to 3"),
        (edit(rows, 3, step=1), "episode 2 starts at step 1"),
        (edit(rows, 1, rew=None), "'rew': episode 7 has null and non-null"),
        (edit([{**r, "terminated": False} for r in rows], 0, terminated=True), "'terminated': True at row 0 of episode 7"),
        (edit(rows, 0, obs=None), "'obs': null at row 0"),
        (datasets.Dataset.from_list([{**r, "obs": "abc"} for r in rows]), "'obs': arrow type string"),
    ]
    for dataset, pattern in cases:
        with pytest.raises(ValidationError, match=pattern):
            from_hf_dataset(dataset)
    with pytest.raises(ValidationError, match="DatasetDict"):
        from_hf_dataset(datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}))
    with pytest.raises(ValidationError, match="no steps"):
        to_hf_dataset([Trajectory(obs=np.zeros((1, 2)), acts=np.zeros((0,), dtype=np.int64))])
    with pytest.raises(ValidationError, match="empty"):
        to_hf_dataset([])


def test_file_errors(tmp_path):
    trajs = cartpole_like(np.random.default_rng(0))
    with pytest.raises(ValidationError, match="no such"):
        load_demos(tmp_path / "missing.parquet")
    with pytest.raises(ValidationError, match="unknown format '.csv'"):
        save_demos(tmp_path / "x.csv", trajs)
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValidationError, match="not a readable .parquet"):
        load_demos(tmp_path / "bad.parquet")
    (tmp_path / "bad.jsonl").write_text('{"episode_id": 0}\n{oops\n')
    with pytest.raises(ValidationError, match="line 2 is not valid JSON"):
        load_demos(tmp_path / "bad.jsonl")
    (tmp_path / "notds").mkdir()
    (tmp_path / "notds" / "file.txt").write_text("x")
    with pytest.raises(ValidationError, match="not a readable saved dataset"):
        load_hf(tmp_path / "notds")
    with pytest.raises(ValidationError, match="refusing to replace"):
        save_hf(tmp_path / "notds", trajs)
    assert (tmp_path / "notds" / "file.txt").read_text() == "x"


@pytest.mark.parametrize("name", ["x_dir", "x.parquet", "x.jsonl"])
def test_failed_save_keeps_existing_dataset(tmp_path, monkeypatch, name):
    rng = np.random.default_rng(0)
    old, new = cartpole_like(rng), pendulum_like(rng)
    path = tmp_path / name
    save_hf(path, old)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", boom)
    monkeypatch.setattr(datasets.Dataset, "to_parquet", boom)
    monkeypatch.setattr(hf, "_write_jsonl", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        save_hf(path, new)
    assert_same(load_hf(path), old)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_load_demos_dispatch(tmp_path):
    trajs = discrete_obs(np.random.default_rng(0))
    save_demos(tmp_path / "a.npz", trajs)
    assert np.load(tmp_path / "a.npz")["format"].item() == "irlhf.trajectories"
    save_demos(tmp_path / "d", trajs)
    assert (tmp_path / "d" / "dataset_info.json").is_file()
    assert_same(load_demos(tmp_path / "d"), trajs)
    save_demos(tmp_path / "d", trajs[:1])  # replacing a saved dataset directory
    assert_same(load_demos(tmp_path / "d"), trajs[:1])
    with pytest.raises(ValidationError, match="npz is not a Hugging Face format"):
        save_hf(tmp_path / "a.npz", trajs)


def test_write_directory_has_the_usual_modes_and_names_the_target_in_errors(tmp_path):
    """mkdtemp makes 0700 directories and safetensors 0600 files: the result gets what a plain mkdir / open would
    (0o777 / 0o666 less the umask); a failed write names the target, not its temp sibling."""
    import os
    import stat

    umask = os.umask(0o022)
    try:
        def write(tmp):
            (tmp / "weights.bin").write_bytes(b"w")
            os.chmod(tmp / "weights.bin", 0o600)

        target = hf.write_directory(tmp_path / "model", write)
        assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~0o022
        assert stat.S_IMODE((target / "weights.bin").stat().st_mode) == 0o666 & ~0o022

        def fail(tmp):
            raise PermissionError(13, "Permission denied", str(tmp / "weights.bin"))

        with pytest.raises(PermissionError) as info:
            hf.write_directory(tmp_path / "other", fail)
        assert info.value.filename == str(tmp_path / "other" / "weights.bin") and ".tmp" not in str(info.value)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    finally:
        os.umask(umask)
