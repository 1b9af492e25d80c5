"""irlhf.data.types: Trajectory / Transitions validation, read-only arrays, flatten_trajectories."""

import numpy as np
import pytest

from irlhf.core.errors import IrlhfError
from irlhf.data import Trajectory, Transitions, flatten_trajectories


def make_traj(T=3, terminal=True, rews=True, infos=False, obs_dim=2):
    obs = np.arange((T + 1) * obs_dim, dtype=np.float64).reshape(T + 1, obs_dim)
    return Trajectory(
        obs=obs,
        acts=np.arange(T),
        rews=np.arange(T, dtype=np.float64) / 2 if rews else None,
        infos=[{"t": t} for t in range(T)] if infos else None,
        terminal=terminal,
    )


# ----------------------------------------------------------------------------- Trajectory


def test_valid_trajectory_fields():
    traj = Trajectory(obs=[[0, 1], [2, 3], [4, 5]], acts=[1, 0], rews=[1, 2], infos=[{}, {"a": 1}], terminal=False)
    assert len(traj) == 2
    assert traj.obs.shape == (3, 2) and traj.obs.dtype == np.int64
    assert traj.rews.dtype == np.float64  # integer rewards become float
    np.testing.assert_array_equal(traj.rews, [1.0, 2.0])
    assert traj.infos == [{}, {"a": 1}] and traj.terminal is False


def test_arrays_are_read_only_copies():
    obs = np.zeros((3, 2))
    traj = Trajectory(obs=obs, acts=np.zeros(2, dtype=int), rews=np.zeros(2))
    for array in (traj.obs, traj.acts, traj.rews):
        assert not array.flags.writeable
        with pytest.raises(ValueError):
            array[0] = 1
    obs[0, 0] = 7  # the caller's array is not aliased
    assert traj.obs[0, 0] == 0


def test_numpy_bool_terminal_becomes_python_bool():
    traj = Trajectory(obs=[0, 1], acts=[0], terminal=np.bool_(False))
    assert traj.terminal is False


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(obs=[0, 1, 2], acts=[0, 0, 0]), "obs"),
        (dict(obs=[0, 1], acts=[0, 0]), "obs"),
        (dict(obs=5, acts=[]), "obs"),
        (dict(obs=[0.0, np.nan], acts=[0]), "Trajectory.obs"),
        (dict(obs=[0.0, np.inf], acts=[0]), "Trajectory.obs"),
        (dict(obs=[0, 1], acts=[-np.inf]), "Trajectory.acts"),
        (dict(obs=[0, 1], acts=[0], rews=[np.nan]), "Trajectory.rews"),
        (dict(obs=[0, 1], acts=[0], rews=[np.inf]), "Trajectory.rews"),
        (dict(obs=np.array([0, 1], dtype=object), acts=[0]), "Trajectory.obs"),
        (dict(obs=["a", "b"], acts=[0]), "Trajectory.obs"),
        (dict(obs=[0, 1], acts=["left"]), "Trajectory.acts"),
        (dict(obs=[0, 1], acts=[0], rews=["1"]), "Trajectory.rews"),
        (dict(obs=[0, 1], acts=[0], rews=[1.0, 2.0]), "Trajectory.rews"),
        (dict(obs=[0, 1], acts=[0], rews=[[1.0]]), "Trajectory.rews"),
        (dict(obs=[0, 1], acts=[0], rews=1.0), "Trajectory.rews"),
        (dict(obs=[0, 1], acts=[0], infos=[]), "Trajectory.infos"),
        (dict(obs=[0, 1], acts=[0], infos=[{}, {}]), "Trajectory.infos"),
        (dict(obs=[0, 1], acts=[0], infos=["x"]), "Trajectory.infos"),
        (dict(obs=[0, 1], acts=[0], infos={"a": 1}), "Trajectory.infos"),
        (dict(obs=[0, 1], acts=[0], infos=3), "Trajectory.infos"),
        (dict(obs=[0, 1], acts=[0], terminal=1), "Trajectory.terminal"),
        (dict(obs=[0, 1], acts=[0], terminal="yes"), "Trajectory.terminal"),
        (dict(obs=[0, 1], acts=[0], terminal=None), "Trajectory.terminal"),
        (dict(obs=[[0, 1], [2]], acts=[0]), "Trajectory.obs"),
    ],
)
def test_bad_trajectory_raises_naming_field(kwargs, field):
    with pytest.raises(IrlhfError, match=field.replace(".", r"\.")):
        Trajectory(**kwargs)


def test_trajectory_error_is_value_error():
    with pytest.raises(ValueError):
        Trajectory(obs=[0, 1], acts=[0, 1])


def test_non_finite_message_gives_index():
    with pytest.raises(IrlhfError, match=r"Trajectory\.obs: non-finite value nan at index \(.*2.*1.*\)"):
        Trajectory(obs=[[0.0, 0.0], [0.0, 0.0], [0.0, np.nan]], acts=[0, 0])


def test_zero_length_trajectory():
    traj = Trajectory(obs=[[1.0, 2.0]], acts=np.zeros((0,), dtype=np.int64), rews=[])
    assert len(traj) == 0 and traj.rews.shape == (0,)


def test_equality():
    assert make_traj() == make_traj()
    assert make_traj() != make_traj(terminal=False)
    assert make_traj() != make_traj(rews=False)
    assert make_traj() != make_traj(infos=True)
    a = make_traj()
    b = Trajectory(obs=a.obs.astype(np.float32), acts=a.acts, rews=a.rews)
    assert a != b  # same values, different dtype


# ----------------------------------------------------------------------------- Transitions


def test_valid_transitions_coerces_dones_to_bool():
    tr = Transitions(obs=np.zeros((3, 2)), acts=[0, 1, 2], next_obs=np.ones((3, 2)), dones=[0, 0, 1], rews=[1, 2, 3])
    assert len(tr) == 3
    assert tr.dones.dtype == np.bool_ and tr.dones.tolist() == [False, False, True]
    assert tr.rews.dtype == np.float64
    for array in (tr.obs, tr.acts, tr.next_obs, tr.dones, tr.rews):
        assert not array.flags.writeable


@pytest.mark.parametrize(
    "changes, field",
    [
        (dict(acts=[0, 1]), "Transitions.acts"),
        (dict(next_obs=np.zeros((2, 2))), "Transitions.next_obs"),
        (dict(next_obs=np.zeros((3, 3))), "Transitions.next_obs"),
        (dict(dones=[False, True]), "Transitions.dones"),
        (dict(dones=[0, 2, 1]), "Transitions.dones"),
        (dict(dones=[[0], [0], [1]]), "Transitions.dones"),
        (dict(dones=[0.0, np.nan, 1.0]), "Transitions.dones"),
        (dict(obs=np.full((3, 2), np.nan)), "Transitions.obs"),
        (dict(obs=1.0), "Transitions.obs"),
        (dict(next_obs=np.full((3, 2), -np.inf)), "Transitions.next_obs"),
        (dict(acts=[0, np.inf, 1]), "Transitions.acts"),
        (dict(acts=["a", "b", "c"]), "Transitions.acts"),
        (dict(obs=np.zeros((3, 2), dtype=object)), "Transitions.obs"),
        (dict(rews=[1.0, 2.0]), "Transitions.rews"),
        (dict(rews=[1.0, np.nan, 2.0]), "Transitions.rews"),
        (dict(rews=np.zeros((3, 1))), "Transitions.rews"),
    ],
)
def test_bad_transitions_raise_naming_field(changes, field):
    kwargs = dict(obs=np.zeros((3, 2)), acts=[0, 1, 2], next_obs=np.ones((3, 2)), dones=[False, False, True])
    kwargs.update(changes)
    with pytest.raises(IrlhfError, match=field.replace(".", r"\.")):
        Transitions(**kwargs)


# ----------------------------------------------------------------------------- flatten


def test_flatten_dones_and_rewards():
    a = Trajectory(obs=[[0], [1], [2]], acts=[10, 11], rews=[1.0, 2.0], terminal=True)
    b = Trajectory(obs=[[5], [6], [7], [8]], acts=[12, 13, 14], rews=[3.0, 4.0, 5.0], terminal=False)
    c = Trajectory(obs=[[9], [10]], acts=[15], rews=[6.0], terminal=True)
    tr = flatten_trajectories([a, b, c])
    assert isinstance(tr, Transitions) and len(tr) == 6
    np.testing.assert_array_equal(tr.obs[:, 0], [0, 1, 5, 6, 7, 9])
    np.testing.assert_array_equal(tr.next_obs[:, 0], [1, 2, 6, 7, 8, 10])
    np.testing.assert_array_equal(tr.acts, [10, 11, 12, 13, 14, 15])
    assert tr.dones.tolist() == [False, True, False, False, False, True]  # truncated b has no done
    np.testing.assert_array_equal(tr.rews, [1, 2, 3, 4, 5, 6])


def test_flatten_drops_rewards_unless_all_have_them():
    with_rews, without = make_traj(rews=True), make_traj(rews=False)
    assert flatten_trajectories([with_rews, without]).rews is None
    assert flatten_trajectories([with_rews, with_rews]).rews is not None


def test_flatten_zero_length_terminal_trajectory_has_no_rows():
    empty = Trajectory(obs=[[3.0, 3.0]], acts=np.zeros(0, dtype=np.int64), terminal=True)
    tr = flatten_trajectories([make_traj(T=2, rews=False), empty])
    assert len(tr) == 2 and tr.dones.tolist() == [False, True]


@pytest.mark.parametrize("bad", [[], [object()], [make_traj(), "x"]])
def test_flatten_bad_input(bad):
    with pytest.raises(IrlhfError, match="trajectories"):
        flatten_trajectories(bad)
