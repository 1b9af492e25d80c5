"""irlhf.core.io.atomic_open: nothing is half-written, nothing is left behind."""

import pytest

from irlhf.core.io import atomic_open, atomic_write_text


def _names(directory):
    return sorted(p.name for p in directory.iterdir())


def test_writes_new_file_and_creates_parents(tmp_path):
    target = tmp_path / "a" / "b" / "out.bin"
    with atomic_open(target, "wb") as handle:
        handle.write(b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert _names(target.parent) == ["out.bin"]


def test_replaces_existing_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert _names(tmp_path) == ["out.txt"]


def test_body_raising_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old contents")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_open(target, "w") as handle:
            handle.write("partial new contents")
            handle.flush()
            assert target.read_text() == "old contents"  # nothing visible while writing
            raise RuntimeError("boom")
    assert target.read_text() == "old contents"
    assert _names(tmp_path) == ["out.txt"]


def test_body_raising_without_old_file_leaves_nothing(tmp_path):
    target = tmp_path / "new.txt"
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(target, "w") as handle:
            handle.write("x")
            raise KeyboardInterrupt
    assert _names(tmp_path) == []


def test_errors_name_the_target_not_the_temp_file(tmp_path):
    """A failure to put the file in place names the path the user asked for; the temp file is gone."""
    target = tmp_path / "out.txt"
    target.mkdir()  # a directory where the file should go
    with pytest.raises(OSError) as info:
        atomic_write_text(target, "new")
    assert info.value.filename == str(target) and info.value.filename2 is None
    assert ".tmp" not in str(info.value) and _names(tmp_path) == ["out.txt"]
