"""irlhf.data.preferences: Comparisons and Rankings validation, files, rank breaking."""

import numpy as np
import pytest

from irlhf.core.errors import ValidationError
from irlhf.data.preferences import ComparisonGraphError, Comparisons, Rankings, check_strongly_connected, pair_counts


def test_comparisons_basic_and_read_only():
    data = Comparisons([0, 2], [1, 0], [1, 0.5])
    assert data.n_items == 3 and len(data) == 2
    assert data.i.dtype == np.int64 and data.mu.dtype == np.float64
    with pytest.raises(ValueError):
        data.mu[0] = 0.0


def test_from_pairs_is_winner_loser():
    data = Comparisons.from_pairs([(2, 0), (1, 2)], n_items=4)
    assert data.i.tolist() == [2, 1] and data.j.tolist() == [0, 2] and data.mu.tolist() == [1, 1]
    assert data.n_items == 4


@pytest.mark.parametrize(
    "i, j, mu, n_items, match",
    [
        ([0], [1], [0.7], None, r"mu\[0\] = 0.7"),
        ([0], [1], [np.nan], None, r"mu\[0\] = nan"),
        ([0, 1], [0, 2], [1, 1], None, "i = j = 0"),
        ([0], [5], [1], 3, r"j\[0\] = 5: item id out of range"),
        ([-1], [1], [1], None, r"i\[0\] = -1"),
        ([0.5], [1], [1], None, "integer item id"),
        ([0, 1], [1], [1, 1], None, "three"),
        ([], [], [], None, "empty"),
        (["a"], [1], [1], None, "dtype"),
        ([0], [1], [1], 1, "n_items=1"),
    ],
)
def test_comparisons_bad_input(i, j, mu, n_items, match):
    with pytest.raises(ValidationError, match=match):
        Comparisons(i, j, mu, n_items)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_comparisons_file_round_trip(tmp_path, suffix):
    data = Comparisons([0, 2, 1], [1, 0, 2], [1, 0.5, 0], n_items=3)
    path = data.save(tmp_path / f"prefs{suffix}")
    back = Comparisons.load(path)
    for name in ("i", "j", "mu"):
        np.testing.assert_array_equal(getattr(back, name), getattr(data, name))


def test_comparisons_load_errors_name_file_and_line(tmp_path):
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"i": 0, "j": 1, "mu": 1}\n{"i": 0, "j": 1\n')
    with pytest.raises(ValidationError, match="line 2: not valid JSON"):
        Comparisons.load(bad_json)
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"i": 0, "j": 1}\n')
    with pytest.raises(ValidationError, match=r"line 1: .*keys \['i', 'j', 'mu'\]"):
        Comparisons.load(missing)
    bad_label = tmp_path / "label.csv"
    bad_label.write_text("i,j,mu\n0,1,1\n1,2,2\n")
    with pytest.raises(ValidationError, match=r"label.csv.*mu\[1\] = 2.0"):
        Comparisons.load(bad_label)
    bad_cell = tmp_path / "cell.csv"
    bad_cell.write_text("i,j,mu\n0,x,1\n")
    with pytest.raises(ValidationError, match="line 2"):
        Comparisons.load(bad_cell)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValidationError, match="header"):
        Comparisons.load(empty)
    with pytest.raises(ValidationError, match="no such file"):
        Comparisons.load(tmp_path / "nope.jsonl")
    with pytest.raises(ValidationError, match="extension"):
        Comparisons.load(tmp_path / "prefs.txt")


def test_save_is_atomic_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "prefs.jsonl"
    Comparisons([0], [1], [1]).save(path)
    before = path.read_text()
    import irlhf.data.preferences as module

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(module, "atomic_write_text", boom)
    with pytest.raises(OSError):
        Comparisons([1], [0], [1]).save(path)
    assert path.read_text() == before


def test_rankings_validation_and_breaking():
    ranks = Rankings([[2, 0, 1], [3, 1]])
    assert ranks.n_items == 4 and len(ranks) == 2
    pairs = ranks.to_comparisons()
    assert sorted(zip(pairs.i.tolist(), pairs.j.tolist())) == [(2, 0), (2, 1), (0, 1), (3, 1)] or \
        sorted(zip(pairs.i.tolist(), pairs.j.tolist())) == sorted([(2, 0), (2, 1), (0, 1), (3, 1)])
    assert np.all(pairs.mu == 1)
    with pytest.raises(ValidationError, match="appears twice"):
        Rankings([[0, 1, 0]])
    with pytest.raises(ValidationError, match="at least 2"):
        Rankings([[0]])
    with pytest.raises(ValidationError, match="out of range"):
        Rankings([[0, 4]], n_items=3)
    with pytest.raises(ValidationError, match="empty"):
        Rankings([])


def test_rankings_file_round_trip(tmp_path):
    ranks = Rankings([[2, 0, 1], [3, 1]])
    back = Rankings.load(ranks.save(tmp_path / "r.jsonl"))
    assert [r.tolist() for r in back.rankings] == [[2, 0, 1], [3, 1]]


def test_pair_counts_collapse_onto_ordered_pairs_with_ties_as_half():
    data = Comparisons(i=[2, 0, 1, 0], j=[0, 2, 0, 1], mu=[1, 0.5, 0, 1], n_items=3)
    a, b, count, wins = pair_counts(data)
    assert a.tolist() == [0, 0] and b.tolist() == [1, 2]
    assert count.tolist() == [2.0, 2.0]
    assert wins.tolist() == [2.0, 0.5]  # 0 beat 1 twice; 2 beat 0 once and they tied once


def test_strongly_connected_check_names_the_item():
    check_strongly_connected(3, *pair_counts(Comparisons.from_pairs([(0, 1), (1, 2), (2, 0)])))
    with pytest.raises(ComparisonGraphError, match=r"item\(s\) 0 never lose"):
        check_strongly_connected(3, *pair_counts(Comparisons.from_pairs([(0, 1), (1, 2), (2, 1), (0, 2)])))
