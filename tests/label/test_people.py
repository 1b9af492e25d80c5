"""People as drop-in labellers, with a simulated person: a thread that takes queries from the store and
answers them by a rule (no browser). The person sees only what a real one would (the media), except where
a test says otherwise."""

from __future__ import annotations

import math
import socket
import threading
import time
import urllib.request
from types import SimpleNamespace
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from irlhf.core.errors import ValidationError
from irlhf.label import render
from irlhf.label.people import LabelTimeoutError, WebExpert, WebLabeller, WebTextRanker, WebTrainer
from irlhf.label.server import start_server
from irlhf.label.store import LabelStore, Query
from irlhf.preference.trajectory import Segments

FAST = dict(poll_interval=0.01, verbose=False)  # check the store often: the simulated person answers in milliseconds
WIDTH = 32  # small clips keep rendering fast


class Person:
    """A thread answering ``store.next_query(name, session)`` with ``rule(query)`` (None = leave it open)."""

    def __init__(self, store: LabelStore, name: str, rule: Callable[[Query], Any], session: str | None = None):
        self.store, self.name, self.rule, self.session = store, name, rule, session
        self.stop = threading.Event()
        self.answered = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                query = self.store.next_query(self.name, self.session)
                value = None if query is None else self.rule(query)
                if value is None:
                    time.sleep(0.005)
                    continue
                self.store.add_label(query.id, self.name, value)
                self.answered += 1
        except BaseException as err:  # surfaced by __exit__: a failing rule must fail the test
            self.error = err

    def __enter__(self) -> "Person":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        if self.error is not None:
            raise self.error


@pytest.fixture
def store(tmp_path):
    with LabelStore(tmp_path / "labels.db") as s:
        yield s


# ----------------------------------------------------------------------------------------------- pairs


def cartpole_segments(n: int, length: int, seed: int) -> Segments:
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-0.2, 0.2, size=(n, length, 4)).astype(np.float32)
    acts = rng.integers(0, 2, size=(n, length))
    rews = rng.integers(0, 3, size=(n, length)).astype(np.float64)
    return Segments(obs, acts, rews, np.ones((n, length), dtype=bool))


def clip_returns(*parts: Segments) -> dict[bytes, float]:
    """What the person 'knows': the true return of each clip they may be shown (clips are deterministic)."""
    out = {}
    for seg in parts:
        for k in range(len(seg)):
            clip = render.segment_clip("CartPole-v1", seg.obs[k], seg.acts[k], seg.mask[k], fps=20, width=WIDTH)
            out[clip] = float(seg.true_rews[k].sum())
    return out


def return_rule(store: LabelStore, returns: dict[bytes, float], tie: str = "left") -> Callable[[Query], str]:
    """Prefers the clip with the higher true return; on a tie answers ``tie`` (a position bias by default)."""

    def rule(query: Query) -> str:
        left = returns[store.media(query.payload["left"])[0]]
        right = returns[store.media(query.payload["right"])[0]]
        return "left" if left > right else "right" if right > left else tie

    return rule


def swapped_flags(store: LabelStore, session: str) -> np.ndarray:
    return np.array([q.payload["meta"]["swapped"] for q in store.queries(session)])


def test_label_batch_undoes_the_random_sides(store):
    a, b = cartpole_segments(12, 4, 0), cartpole_segments(12, 4, 1)
    b.true_rews[:3] = a.true_rews[:3]  # equal returns: the person's position bias decides these
    returns = clip_returns(a, b)
    labeller = WebLabeller(store, "CartPole-v1", session="s", width=WIDTH, timeout=20, seed=3, **FAST)
    with Person(store, "ann", return_rule(store, returns)):
        mu = labeller.label_batch(a, b)
    swapped = swapped_flags(store, "s")
    assert swapped.any() and not swapped.all()  # both orders happen
    ra, rb = a.returns(), b.returns()
    truth = np.where(ra > rb, 1.0, np.where(ra < rb, 0.0, np.where(swapped, 0.0, 1.0)))  # ties: left wins
    np.testing.assert_array_equal(mu, truth)
    assert labeller.collect_late()[2].shape == (0,)


def test_always_left_person_is_not_a_preference_for_a(store):
    a, b = cartpole_segments(16, 3, 2), cartpole_segments(16, 3, 3)
    labeller = WebLabeller(store, "CartPole-v1", session="s", width=WIDTH, timeout=20, seed=0, **FAST)
    with Person(store, "lefty", lambda q: "left"):
        mu = labeller.label_batch(a, b)
    np.testing.assert_array_equal(mu, np.where(swapped_flags(store, "s"), 0.0, 1.0))
    assert 0 < mu.mean() < 1


def test_label_single_pair_and_skip(store):
    a, b = cartpole_segments(1, 4, 4), cartpole_segments(1, 4, 5)
    labeller = WebLabeller(store, "CartPole-v1", session="s", width=WIDTH, timeout=20, **FAST)
    with Person(store, "ann", lambda q: "equal"):
        assert labeller.label(a, b) == 0.5
        single = SimpleNamespace(obs=a.obs[0], acts=a.acts[0], mask=a.mask[0])  # one unbatched (L, ...) segment
        assert labeller.label(single, b) == 0.5
    with Person(store, "ann", lambda q: "skip"):
        assert labeller.label(a, b) is None
    assert labeller.collect_late()[2].shape == (0,)  # a skip is an answer, not a late label


def test_timeout_then_late_labels_come_back_once(store):
    a, b = cartpole_segments(4, 3, 6), cartpole_segments(4, 3, 7)
    returns = clip_returns(a, b)
    labeller = WebLabeller(store, "CartPole-v1", session="s", width=WIDTH, timeout=0.2, seed=1, **FAST)
    mu = labeller.label_batch(a, b)
    assert np.isnan(mu).all() and labeller.n_late == 4
    assert labeller.collect_late()[2].shape == (0,)  # nobody answered yet
    with Person(store, "ann", return_rule(store, returns, tie="equal")) as person:
        while person.answered < 4:
            time.sleep(0.01)
    late_a, late_b, late_mu = labeller.collect_late()
    ra, rb = late_a.returns(), late_b.returns()
    np.testing.assert_array_equal(late_mu, np.where(ra > rb, 1.0, np.where(ra < rb, 0.0, 0.5)))
    assert sorted(ra.tolist()) == sorted(a.returns().tolist())
    assert labeller.collect_late()[2].shape == (0,) and labeller.n_late == 0  # exactly once


def test_two_annotators_aggregate(store):
    a, b = cartpole_segments(10, 3, 8), cartpole_segments(10, 3, 9)
    returns = clip_returns(a, b)
    labeller = WebLabeller(store, "CartPole-v1", session="s", n_annotators=2, width=WIDTH, timeout=20, **FAST)
    with Person(store, "lefty", lambda q: "left"), Person(store, "fair", return_rule(store, returns, "equal")):
        mu = labeller.label_batch(a, b)
    swapped = swapped_flags(store, "s")
    ra, rb = a.returns(), b.returns()
    fair_left = np.where(swapped, np.sign(rb - ra), np.sign(ra - rb))  # +1: fair prefers the left clip
    left_mu = np.where(fair_left > 0, 1.0, 0.5)  # mean of lefty's 1 and fair's 1 / 0.5 / 0 -> 1, .75 -> .5, .5
    np.testing.assert_array_equal(mu, np.where(swapped, 1.0 - left_mu, left_mu))
    assert len(store.labels(session="s")) == 20


def test_weblabeller_rejects_bad_input(store):
    with pytest.raises(ValidationError, match="cannot draw"):
        WebLabeller(store, "LunarLander-v3", session="s")
    with pytest.raises(ValidationError, match="timeout"):
        WebLabeller(store, "CartPole-v1", session="s", timeout=-1)
    labeller = WebLabeller(store, "CartPole-v1", session="s", width=WIDTH, timeout=1, **FAST)
    a = cartpole_segments(2, 3, 0)
    bad = Segments(a.obs.copy(), a.acts, a.true_rews, a.mask)
    bad.obs[1, 2, 0] = np.nan
    with pytest.raises(ValidationError, match=r"segments_b.obs\[1, 2\].*non-finite"):
        labeller.label_batch(a, bad)
    with pytest.raises(ValidationError, match="shape"):
        labeller.label_batch(a, Segments(a.obs[..., :3], a.acts, a.true_rews, a.mask))
    with pytest.raises(ValidationError, match="same number"):
        labeller.label_batch(a, a[[0]])
    with pytest.raises(ValidationError, match="observations"):
        labeller.label_batch(a.true_rews, a.true_rews)
    assert store.queries("s") == []  # nothing posted on bad input


def test_trajectory_train_with_a_person(store):
    from irlhf.preference import trajectory

    config = trajectory.Config(total_timesteps=128, n_labels=4, rounds=2, segment_length=5, ensemble_size=1,
                               candidates_factor=1, reward_epochs=1, random_rollout_steps=60, progress=False,
                               rl_kwargs=dict(n_envs=1, n_steps=64, batch_size=64, n_epochs=1))
    labeller = WebLabeller(store, "CartPole-v1", session="prefs", width=WIDTH, timeout=30, **FAST)
    with Person(store, "ann", lambda q: "left"):
        result = trajectory.train("CartPole-v1", labeller, config)
    assert len(store.labels(session="prefs")) == 4
    assert result.history[-1]["queries"] == 4 and len(result.dataset) == 4
    np.testing.assert_array_equal(np.sort(result.dataset.mu), np.sort(np.where(swapped_flags(store, "prefs"),
                                                                               0.0, 1.0)))


def test_trajectory_adds_late_labels():
    from irlhf.preference.trajectory import Preferences, _add_late

    a, b = cartpole_segments(2, 3, 0), cartpole_segments(3, 3, 1)
    new = Preferences(a, b[:2], np.array([1.0, 0.0]), np.zeros(2, dtype=np.int64))
    out = _add_late(new, (a, b[1:], np.array([0.5, np.nan])), 3)
    assert len(out) == 3 and out.mu.tolist() == [1.0, 0.0, 0.5] and out.round.tolist() == [0, 0, 3]
    assert _add_late(new, (a[:0], a[:0], np.zeros(0)), 3) is new
    with pytest.raises(ValidationError, match="collect_late"):
        _add_late(new, (a, b[1:], np.array([0.3, 1.0])), 3)


# ----------------------------------------------------------------------------------------------- DAgger


def test_webexpert_matches_the_scripted_expert(store):
    from irlhf.rl.experts import make_expert

    expert = make_expert("CartPole-v1")
    obs = np.random.default_rng(0).uniform(-0.1, 0.1, size=(6, 4)).astype(np.float32)
    web = WebExpert(store, "CartPole-v1", session="d", width=WIDTH, timeout=20, **FAST)
    # the simulated person knows the state behind each frame (the meta index into this batch)
    rule = lambda q: {"action": int(expert(obs[[q.payload["meta"]["index"]]])[0])}  # noqa: E731
    with Person(store, "ann", rule):
        actions = web(obs)
    np.testing.assert_array_equal(actions, expert(obs))
    assert actions.dtype == np.int64
    assert store.queries("d")[0].payload["actions"] == ["push left", "push right"]


def test_webexpert_skip_fallback_and_timeout(store):
    obs = np.zeros((3, 4), dtype=np.float32)
    fallback = lambda o: np.ones(len(o), dtype=np.int64)  # noqa: E731
    web = WebExpert(store, "CartPole-v1", session="d", width=WIDTH, timeout=20, fallback=fallback, **FAST)
    rule = lambda q: "skip" if q.payload["meta"]["index"] == 1 else {"action": 0}  # noqa: E731
    with Person(store, "ann", rule):
        assert web(obs).tolist() == [0, 1, 0]
    strict = WebExpert(store, "CartPole-v1", session="d2", width=WIDTH, timeout=0.1, **FAST)
    with pytest.raises(LabelTimeoutError, match="fallback"):
        strict(obs)
    with pytest.raises(ValidationError, match="Discrete"):
        WebExpert(store, "Pendulum-v1", session="d")
    with pytest.raises(ValidationError, match="action_names"):
        WebExpert(store, "CartPole-v1", session="d", action_names=["only one"])
    with pytest.raises(ValidationError, match="obs_batch"):
        strict(np.zeros((2, 3)))


def test_dagger_train_with_a_person(store):
    from irlhf.rl.experts import make_expert
    from irlhf.imitation import bc, dagger

    expert = make_expert("CartPole-v1")
    web = WebExpert(store, "CartPole-v1", session="dagger", width=WIDTH, timeout=30, **FAST)
    seen: list[np.ndarray] = []

    def watched(obs: np.ndarray) -> np.ndarray:  # lets the simulated person know the states on screen
        seen.append(np.asarray(obs))
        return web(obs)

    rule = lambda q: {"action": int(expert(seen[-1][[q.payload["meta"]["index"]]])[0])}  # noqa: E731
    config = dagger.Config(rounds=2, episodes_per_round=1, max_steps=8, progress=False,
                           bc=bc.Config(hidden_sizes=(8,), batch_size=16, epochs=2, patience=1))
    with Person(store, "ann", rule):
        result = dagger.train("CartPole-v1", watched, config)
    assert len(result.dataset.obs) == 16
    np.testing.assert_array_equal(result.dataset.acts, expert(result.dataset.obs))
    assert len(store.labels(session="dagger")) == sum(len(o) for o in seen)


# ----------------------------------------------------------------------------------------------- TAMER


def test_webtrainer_returns_the_person_events(store):
    from irlhf.preference.tamer import Feedback

    trainer = WebTrainer(store, "MountainCar-v0", session="t", width=WIDTH, timeout=20, **FAST)
    events = [{"t": 0.3, "h": 1}, {"t": 1.1, "h": -1}, {"t": 2.6, "h": 1}]
    for k in range(10):
        trainer.watch(k * 0.25, np.array([-0.5 + 0.01 * k, 0.0]), k % 3)
        assert trainer.poll(k * 0.25) == []
    with Person(store, "ann", lambda q: {"events": events}):
        feedback = trainer.poll(math.inf)
    assert feedback == [Feedback(0.3, 1.0), Feedback(1.1, -1.0), Feedback(2.6, 1.0)]
    payload = store.queries("t")[0].payload
    assert payload["n_steps"] == 10 and payload["step_seconds"] == 0.25
    assert trainer.poll(math.inf) == []  # started afresh: nothing watched


def test_webtrainer_step_checks(store):
    with pytest.raises(ValidationError, match="multiple of 0.01"):
        WebTrainer(store, "MountainCar-v0", session="t", step_seconds=0.015)
    trainer = WebTrainer(store, "MountainCar-v0", session="t", width=WIDTH, timeout=0.1, **FAST)
    for k in range(3):
        trainer.watch(k * 0.015, np.zeros(2), 0)
    with pytest.raises(ValidationError, match="multiple of 0.01"):
        trainer.poll(math.inf)
    assert store.queries("t") == []
    with pytest.raises(ValidationError, match="Discrete"):
        WebTrainer(store, "MountainCarContinuous-v0", session="t")
    trainer.watch(0.0, np.zeros(2), 0)
    assert trainer.poll(math.inf) == []  # one step, nobody answers in time: no feedback
    with pytest.raises(ValidationError, match="obs"):
        trainer.watch(0.0, np.zeros(3), 0)


def test_tamer_train_with_a_person(store):
    from irlhf.preference import tamer

    trainer = WebTrainer(store, "MountainCar-v0", session="tamer", width=WIDTH, timeout=30, **FAST)
    with Person(store, "ann", lambda q: {"events": [{"t": 1.0, "h": 1}, {"t": 3.0, "h": -1}]}):
        result = tamer.train("MountainCar-v0", trainer, tamer.Config(episodes=1, max_steps=20))
    assert result.history[0]["steps"] == 20 and result.history[0]["feedback"] == 2
    assert store.queries("tamer")[0].payload["n_steps"] == 20


# ----------------------------------------------------------------------------------------------- text


def by_length(query: Query) -> dict:
    """Longest response best; equal lengths tie."""
    responses = query.payload["responses"]
    lengths = sorted({len(r) for r in responses}, reverse=True)
    return {"ranking": [[j for j, r in enumerate(responses) if len(r) == n] for n in lengths]}


def test_text_ranker_undoes_the_shuffle(store):
    ranker = WebTextRanker(store, session="x", timeout=20, seed=0, **FAST)
    responses = [["a", "bbb", "cc", "dd"], ["xx", "y"], ["one", "three", "fifteen", "no"], ["pp", "qqqq", "r"]]
    with Person(store, "ann", by_length):
        ranks = ranker.rank_batch(["p0", "p1", "p2", "p3"], responses)
        assert ranker.rank("p", ["zz", "z", "zzz"]) == [[2], [0], [1]]
    assert ranks == [[[1], [2, 3], [0]], [[0], [1]], [[2], [1], [0], [3]], [[1], [0], [2]]]
    orders = [q.payload["meta"]["order"] for q in store.queries("x")]
    assert any(o != sorted(o) for o in orders)  # shown in a shuffled order
    with Person(store, "ann", lambda q: "skip"):
        assert ranker.rank("p", ["a", "b"]) is None
    timed = WebTextRanker(store, session="y", timeout=0.1, **FAST)
    assert timed.rank("p", ["a", "b"]) is None
    with pytest.raises(ValidationError, match="query 0"):
        timed.rank("p", ["only one"])


# ----------------------------------------------------------------------------------------------- server


def test_start_server_answers_and_frees_its_port(store):
    store.add_query("text", {"prompt": "p", "responses": ["a", "b"]}, session="s")
    with start_server(store, session="s") as server:
        assert server.url == f"http://127.0.0.1:{server.port}/" and server.running
        with urllib.request.urlopen(server.url + "api/stats", timeout=5) as response:
            assert b'"n_queries":1' in response.read()
    assert not server.running
    with socket.socket() as sock:  # nobody listens there any more (SO_REUSEADDR: the client's TIME_WAIT is fine)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", server.port))
        sock.listen()
    with start_server(store, port=server.port, token="secret") as again:  # the same port serves again
        assert again.url == f"http://127.0.0.1:{server.port}/?token=secret"
    with pytest.raises(ValidationError, match="loopback"):
        start_server(store, host="0.0.0.0")
