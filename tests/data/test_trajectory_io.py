"""irlhf.data.io: exact .npz round trip, atomic writes, clear errors on bad files."""

import io
import json

import numpy as np
import pytest

from irlhf.core.errors import IrlhfError
from irlhf.data import Trajectory, load_trajectories, save_trajectories


def mixed_trajectories():
    """Rewards present and missing, infos present and missing, terminal and truncated, a zero-length one."""
    return [
        Trajectory(obs=np.arange(4.0).reshape(4, 1), acts=[0, 1, 2], rews=[0.5, -1.0, 1e-300],
                   infos=[{"a": 1}, {"b": [1, 2]}, {"c": {"d": "e"}}], terminal=True),
        Trajectory(obs=np.arange(3.0).reshape(3, 1) + 10, acts=[2, 2], rews=None, terminal=False),
        Trajectory(obs=[[7.0]], acts=np.zeros(0, dtype=np.int64), rews=[], terminal=False),
        Trajectory(obs=[[8.0], [9.0]], acts=[1], rews=None, infos=[{}], terminal=True),
        Trajectory(obs=[[1.0], [2.0]], acts=[0], rews=[3.25], terminal=False),
    ]


def assert_same(loaded, original):
    assert len(loaded) == len(original)
    for got, want in zip(loaded, original):
        assert got == want  # Trajectory.__eq__ also compares obs/acts dtypes
        assert got.obs.dtype == want.obs.dtype and got.obs.shape == want.obs.shape
        assert got.acts.dtype == want.acts.dtype and got.acts.shape == want.acts.shape
        if want.rews is None:
            assert got.rews is None
        else:
            assert got.rews.dtype == want.rews.dtype
            np.testing.assert_array_equal(got.rews, want.rews)
        assert got.infos == want.infos and got.terminal is want.terminal
        assert not got.obs.flags.writeable


def test_round_trip_mixed(tmp_path):
    trajs = mixed_trajectories()
    path = save_trajectories(tmp_path / "d.npz", trajs)
    assert path == tmp_path / "d.npz"
    loaded = load_trajectories(path)
    assert_same(loaded, trajs)
    assert [t.rews is None for t in loaded] == [False, True, False, True, False]
    assert [t.terminal for t in loaded] == [True, False, False, True, False]
    assert loaded[0].rews[2] == 1e-300  # values are exact, not approximately equal


def test_round_trip_float32_multidim_obs_and_float32_rews(tmp_path):
    rng = np.random.default_rng(0)
    trajs = [
        Trajectory(obs=rng.standard_normal((T + 1, 2, 3)).astype(np.float32),
                   acts=rng.standard_normal((T, 2)).astype(np.float32),
                   rews=rng.standard_normal(T).astype(np.float32), terminal=bool(T % 2))
        for T in (1, 4, 2)
    ]
    loaded = load_trajectories(save_trajectories(tmp_path / "f.npz", trajs))
    assert_same(loaded, trajs)
    assert loaded[1].obs.shape == (5, 2, 3) and loaded[1].acts.shape == (4, 2)
    assert loaded[0].rews.dtype == np.float32


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.uint8, np.int64, np.bool_])
def test_round_trip_integer_and_bool_obs(tmp_path, dtype):
    trajs = [
        Trajectory(obs=np.array([[0, 1], [1, 1], [1, 0]], dtype=dtype), acts=np.array([3, 4], dtype=np.int16)),
        Trajectory(obs=np.array([[1, 0]], dtype=dtype), acts=np.zeros(0, dtype=np.int16)),
    ]
    assert_same(load_trajectories(save_trajectories(tmp_path / "i.npz", trajs)), trajs)


def test_round_trip_accepts_str_path(tmp_path):
    trajs = mixed_trajectories()[:1]
    assert_same(load_trajectories(str(save_trajectories(str(tmp_path / "s.npz"), trajs))), trajs)


def test_existing_file_survives_failed_save(tmp_path):
    path = tmp_path / "keep.npz"
    good = mixed_trajectories()
    save_trajectories(path, good)
    before = path.read_bytes()
    bad = [Trajectory(obs=[0, 1], acts=[0], infos=[{"x": {1, 2}}])]  # a set: not JSON
    with pytest.raises(IrlhfError, match="infos are not JSON-serialisable"):
        save_trajectories(path, bad)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.npz"]
    assert_same(load_trajectories(path), good)


def test_existing_file_survives_failed_write(tmp_path, monkeypatch):
    """A failure during the write itself (after the temp file is open) leaves the old file and no temp."""
    path = tmp_path / "keep.npz"
    save_trajectories(path, mixed_trajectories())
    before = path.read_bytes()

    def failing_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        save_trajectories(path, mixed_trajectories()[:2])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.npz"]


def test_circular_infos_rejected(tmp_path):
    info = {}
    info["self"] = info
    with pytest.raises(IrlhfError, match="infos"):
        save_trajectories(tmp_path / "c.npz", [Trajectory(obs=[0, 1], acts=[0], infos=[info])])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["d.npy", "d.npz.tmp", "d", "d.NPZ"])
def test_save_wrong_suffix(tmp_path, name):
    with pytest.raises(IrlhfError, match=r"path=.*\.npz"):
        save_trajectories(tmp_path / name, mixed_trajectories())
    assert list(tmp_path.iterdir()) == []


def test_save_empty_list(tmp_path):
    with pytest.raises(IrlhfError, match="trajectories: empty"):
        save_trajectories(tmp_path / "e.npz", [])
    assert list(tmp_path.iterdir()) == []


def test_save_rejects_non_trajectory(tmp_path):
    with pytest.raises(IrlhfError, match=r"trajectories\[1\]"):
        save_trajectories(tmp_path / "e.npz", [mixed_trajectories()[0], {"obs": [0]}])


@pytest.mark.parametrize(
    "second, field",
    [
        (Trajectory(obs=np.zeros((2, 1), dtype=np.float32), acts=[0]), "obs"),
        (Trajectory(obs=np.zeros((2, 2)), acts=[0]), "obs"),
        (Trajectory(obs=np.zeros((2, 1)), acts=[0.5]), "acts"),
    ],
)
def test_save_rejects_mixed_dtypes_or_shapes(tmp_path, second, field):
    first = Trajectory(obs=np.zeros((2, 1)), acts=[0])
    with pytest.raises(IrlhfError, match=rf"trajectories\[1\]\.{field}"):
        save_trajectories(tmp_path / "m.npz", [first, second])


def test_save_rejects_mixed_reward_dtypes(tmp_path):
    a = Trajectory(obs=[0, 1], acts=[0], rews=np.array([0.1], dtype=np.float32))
    b = Trajectory(obs=[0, 1], acts=[0], rews=np.array([0.1], dtype=np.float64))
    with pytest.raises(IrlhfError, match="rews dtypes"):
        save_trajectories(tmp_path / "r.npz", [a, b])


# ----------------------------------------------------------------------------- bad files


def test_load_missing_file(tmp_path):
    with pytest.raises(IrlhfError, match="no such file"):
        load_trajectories(tmp_path / "nope.npz")


def test_load_directory(tmp_path):
    with pytest.raises(IrlhfError, match="no such file"):
        load_trajectories(tmp_path)


def test_load_empty_file(tmp_path):
    (tmp_path / "e.npz").write_bytes(b"")
    with pytest.raises(IrlhfError, match="not a readable .npz file"):
        load_trajectories(tmp_path / "e.npz")


def test_load_garbage_bytes(tmp_path):
    (tmp_path / "g.npz").write_bytes(b"this is not a zip archive at all" * 10)
    with pytest.raises(IrlhfError, match="not a readable .npz file"):
        load_trajectories(tmp_path / "g.npz")


def test_load_plain_npy_named_npz(tmp_path):
    with open(tmp_path / "a.npz", "wb") as handle:
        np.save(handle, np.arange(3))
    with pytest.raises(IrlhfError, match="not a readable .npz file"):
        load_trajectories(tmp_path / "a.npz")


def _pickled_npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def test_load_pickled_objects_is_refused_in_plain_words(tmp_path, monkeypatch):
    """Pickled objects can run code when loaded: refused, with the user's path and no numpy loading hints."""
    monkeypatch.chdir(tmp_path)
    np.savez("objects.npz", format=np.array("irlhf.trajectories"), obs=np.array([{"a": 1}], dtype=object))
    with pytest.raises(IrlhfError) as info:
        load_trajectories("objects.npz")
    message = str(info.value)
    assert message.startswith("path='objects.npz': ") and "pickled Python objects" in message
    assert "allow_pickle" not in message and "pickle.load" not in message


@pytest.mark.parametrize("data", [b"hello world", b"PK\x03\x04 truncated zip", b"\x80\x04 pickle-like",
                                  _pickled_npy()])
def test_load_bytes_that_are_no_npz_say_so_without_numpy_hints(tmp_path, data):
    (tmp_path / "x.npz").write_bytes(data)
    with pytest.raises(IrlhfError, match="not a readable .npz file") as info:
        load_trajectories(tmp_path / "x.npz")
    assert "allow_pickle" not in str(info.value) and "Error:" not in str(info.value)


def test_load_every_single_byte_corruption_is_clean(tmp_path):
    """Flip each byte of a valid file: the load either succeeds with the exact data or raises IrlhfError."""
    trajs = mixed_trajectories()[:2]
    path = save_trajectories(tmp_path / "c.npz", trajs)
    raw = path.read_bytes()
    bad = tmp_path / "bad.npz"
    n_errors = 0
    for pos in range(len(raw)):
        flipped = bytearray(raw)
        flipped[pos] ^= 0x5A
        bad.write_bytes(bytes(flipped))
        try:
            loaded = load_trajectories(bad)
        except IrlhfError:
            n_errors += 1
        else:
            assert all(a == b for a, b in zip(loaded, trajs)) and len(loaded) == len(trajs), pos
    assert n_errors > len(raw) // 3


@pytest.mark.parametrize("keep", [0.25, 0.5, 0.9, 0.99])
def test_load_truncated_bytes(tmp_path, keep):
    path = save_trajectories(tmp_path / "t.npz", mixed_trajectories())
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(IrlhfError, match="not a readable .npz file"):
        load_trajectories(path)


def test_load_foreign_npz(tmp_path):
    np.savez(tmp_path / "foreign.npz", obs=np.zeros(3), acts=np.zeros(2))
    with pytest.raises(IrlhfError, match="not an irlhf trajectories file"):
        load_trajectories(tmp_path / "foreign.npz")


@pytest.mark.parametrize("fmt", [np.array(["irlhf.trajectories", "x"]), np.array(3), np.array("other")])
def test_load_foreign_format_marker(tmp_path, fmt):
    np.savez(tmp_path / "foreign.npz", format=fmt)
    with pytest.raises(IrlhfError, match="not an irlhf trajectories file"):
        load_trajectories(tmp_path / "foreign.npz")


def _tampered(tmp_path, **changes):
    """Write a valid file, then rewrite it with some arrays replaced (value None = removed)."""
    path = save_trajectories(tmp_path / "v.npz", mixed_trajectories())
    with np.load(path) as npz:
        data = {k: npz[k] for k in npz.files}
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    np.savez(path, **data)
    return path


def test_untampered_rewrite_still_loads(tmp_path):
    """Guard for the tamper tests below: rewriting unchanged arrays gives a valid file."""
    assert_same(load_trajectories(_tampered(tmp_path)), mixed_trajectories())


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(obs=np.zeros((3, 1))), "array lengths disagree"),
        (dict(acts=np.zeros(2, dtype=np.int64)), "array lengths disagree"),
        (dict(rews=np.zeros(2)), "array lengths disagree"),
        (dict(rews=np.zeros((7, 1))), "array lengths disagree"),
        (dict(lengths=np.array([3, 2, 0, 1, 2])), "array lengths disagree"),
        (dict(lengths=np.array([4, -1, 0, 1, 1])), "lengths"),
        (dict(lengths=np.array([3.0, 2.0, 0.0, 1.0, 1.0])), "lengths"),
        (dict(lengths=np.array(7)), "lengths"),
        (dict(terminal=np.array([True, False])), "terminal"),
        (dict(terminal=np.array([1, 0, 0, 1, 0])), "terminal"),
        (dict(has_rews=np.array([True, False, True, False])), "has_rews"),
        (dict(infos=np.array("not json")), "infos"),
        (dict(infos=np.array("[null]")), "infos"),
        (dict(infos=np.array('{"a": 1}')), "infos"),
        (dict(infos=np.array(5)), "infos"),
        (dict(infos=np.array('[5, null, null, null, null]')), "trajectory 0"),
        (dict(obs=np.full((12, 1), np.nan)), "trajectory 0.*non-finite"),
        (dict(obs=np.zeros((12, 1), dtype="U3")), "trajectory 0.*not numeric"),
        (dict(obs=np.array(1.0)), "leading time axis"),
        (dict(rews_dtype=np.array("no-such-dtype")), "rews_dtype"),
        (dict(rews_dtype=np.array("U5")), "rews_dtype"),
        (dict(version=np.array(99)), "version"),
        (dict(version=None), "version"),
        (dict(infos=None), r"missing arrays \['infos'\]"),
        (dict(obs=None, lengths=None), r"missing arrays \['lengths', 'obs'\]"),
    ],
)
def test_load_tampered_file(tmp_path, changes, message):
    path = _tampered(tmp_path, **changes)
    with pytest.raises(IrlhfError, match=message) as info:
        load_trajectories(path)
    assert str(path) in str(info.value) and "corrupt" in str(info.value)


def test_saved_layout(tmp_path):
    """The documented layout: concatenated arrays plus per-trajectory lengths/terminal/has_rews and JSON infos."""
    with np.load(save_trajectories(tmp_path / "l.npz", mixed_trajectories())) as npz:
        assert str(npz["format"]) == "irlhf.trajectories" and int(npz["version"]) == 1
        assert npz["lengths"].tolist() == [3, 2, 0, 1, 1]
        assert npz["obs"].shape == (12, 1) and npz["acts"].shape == (7,) and npz["rews"].shape == (7,)
        assert npz["terminal"].tolist() == [True, False, False, True, False]
        assert npz["has_rews"].tolist() == [True, False, True, False, True]
        assert json.loads(str(npz["infos"]))[1] is None
