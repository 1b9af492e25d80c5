"""People as drop-in labellers: adapters that post queries to a LabelStore and block for the answers.

Each adapter speaks the protocol one learner already uses for its synthetic teacher, so a person at the
labelling page (``irlhf.label.server``) can replace that teacher without changing the learner:

- :class:`WebLabeller`: ``label`` / ``label_batch`` of ``irlhf.preference.labellers.Labeller`` (pairs of clips for
  ``irlhf.preference.trajectory.train``), plus ``collect_late`` for answers that came after the timeout;
- :class:`WebExpert`: DAgger's expert, a callable batch of observations -> actions (one PNG frame per state);
- :class:`WebTrainer`: TAMER's trainer, ``watch`` / ``poll`` (one clip per episode, key presses with times);
- :class:`WebTextRanker`: ``rank`` / ``rank_batch`` of responses to a prompt (tie groups, best first).

    store = LabelStore("labels.db")
    with start_server(store, session="run1") as server:          # irlhf.label.server.start_server
        labeller = WebLabeller(store, "CartPole-v1", session="run1", timeout=600, url=server.url)
        result = trajectory.train("CartPole-v1", labeller, trajectory.Config(n_labels=100))

Position bias: which segment is shown on the left (and the order of text responses) is drawn per query from
a seeded generator and undone when the labels are read, so a person who favours one side adds noise, not
bias; the query's ``payload["meta"]`` records the permutation (``swapped`` / ``order``).

Timeouts: ``timeout=None`` waits forever; a number is the seconds to wait for one batch. Not answered in time
(or skipped) means NaN for a pair, None for a text ranking, ``fallback(obs)`` or :class:`LabelTimeoutError` for
DAgger, and no events for TAMER. A pair answered after its timeout is returned once by ``collect_late``.
Each adapter prints one line to stderr when it posts a batch (``verbose=False`` silences it; WebExpert and
WebTrainer post often, so they print only the first time).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from irlhf.core.errors import IrlhfError, ValidationError, describe
from irlhf.core.seeding import as_generator
from irlhf.envs.gym import checked_actions
from irlhf.label import render
from irlhf.label.store import LabelStore, aggregate, check_payload, check_session
from irlhf.preference.tamer import Feedback
from irlhf.preference.trajectory import Segments

__all__ = ["LabelTimeoutError", "WebLabeller", "WebExpert", "WebTrainer", "WebTextRanker", "DEFAULT_ACTION_NAMES"]

# names shown on the DAgger buttons for the classic-control envs (index = action - action_space.start)
DEFAULT_ACTION_NAMES: dict[str, tuple[str, ...]] = {
    "CartPole-v1": ("push left", "push right"),
    "MountainCar-v0": ("accelerate left", "don't accelerate", "accelerate right"),
    "Acrobot-v1": ("torque -1", "torque 0", "torque +1"),
}
DEFAULT_STEP_SECONDS = 0.25  # TAMER's default step; used when a one-step episode leaves it uninferable


class LabelTimeoutError(IrlhfError):
    """A query was skipped or not answered within the timeout, and there is nothing to fall back on."""


# ----------------------------------------------------------------------------------------------- checks


def _check_store(store: Any) -> LabelStore:
    if not isinstance(store, LabelStore):
        raise ValidationError(f"store={describe(store)}: expected an irlhf.label.store.LabelStore")
    return store


def _check_timeout(timeout: Any) -> float | None:
    if timeout is None:
        return None
    if (isinstance(timeout, bool) or not isinstance(timeout, (int, float, np.integer, np.floating))
            or not math.isfinite(timeout) or timeout <= 0):
        raise ValidationError(f"timeout={describe(timeout)}: expected None (wait forever) or a finite number > 0 "
                              "(seconds)")
    return float(timeout)


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValidationError(f"{name}={describe(value)}: expected an int >= 1")
    return int(value)


def _check_poll(poll: Any) -> float:
    if (isinstance(poll, bool) or not isinstance(poll, (int, float)) or not math.isfinite(poll) or poll <= 0):
        raise ValidationError(f"poll_interval={describe(poll)}: expected a finite number > 0 (seconds between "
                              "store checks)")
    return float(poll)


def _check_env(env_id: Any) -> tuple[gym.Space, gym.Space]:
    """(observation_space, action_space) of an env that ``render`` can draw from observations."""
    if not isinstance(env_id, str) or env_id not in render.SUPPORTED_ENVS:
        raise ValidationError(f"env_id={describe(env_id)}: cannot draw this env for a person; supported: "
                              f"{', '.join(render.SUPPORTED_ENVS)}")
    env = gym.make(env_id)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def _check_discrete(env_id: str, space: gym.Space, who: str) -> gym.spaces.Discrete:
    if not isinstance(space, gym.spaces.Discrete):
        raise ValidationError(f"env_id={env_id!r}: action space {space}; {who} needs a Discrete action space "
                              "(a person picks one of a few actions)")
    return space


def _check_obs(name: str, obs: Any, shape: tuple[int, ...], lead: str) -> np.ndarray:
    """float64 array of shape (*lead dims, *shape), finite; ``lead`` describes the leading dims for messages."""
    try:
        arr = np.asarray(obs, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(f"{name}={describe(obs)}: expected a numeric array of shape ({lead}, "
                              f"{', '.join(map(str, shape))})") from None
    n_lead = lead.count(",") + 1
    if arr.ndim != n_lead + len(shape) or arr.shape[n_lead:] != shape:
        raise ValidationError(f"{name}: shape {arr.shape}; expected ({lead}, {', '.join(map(str, shape))})")
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0][:n_lead])
        raise ValidationError(f"{name}{list(where)}: non-finite (NaN or inf) values; expected finite observations")
    return arr


def _announce(verbose: bool, n: int, kind: str, session: str, url: str | None) -> None:
    if verbose:
        where = f" at {url}" if url else ""
        plural = "query" if n == 1 else "queries"
        print(f"irlhf label: posted {n} {kind} {plural} to session {session!r}; waiting for labels{where}",
              file=sys.stderr, flush=True)


class _Adapter:
    """Shared state: store, session, annotators per query, timeout, poll interval, URL for the message."""

    def __init__(self, store: LabelStore, *, session: str, n_annotators: int, timeout: float | None,
                 poll_interval: float, url: str | None, verbose: bool) -> None:
        self.store = _check_store(store)
        self.session = check_session(session)
        self.n_annotators = _check_positive_int("n_annotators", n_annotators)
        self.timeout = _check_timeout(timeout)
        self.poll_interval = _check_poll(poll_interval)
        if url is not None and not isinstance(url, str):
            raise ValidationError(f"url={describe(url)}: expected None or the page's URL (str)")
        self.url, self.verbose = url, bool(verbose)
        self.n_posted = 0  # queries posted so far (all batches)

    def _wait(self, qids: list[str]) -> dict[str, list[Any]]:
        """{qid: labels} once all have n_annotators labels, or when the timeout runs out."""
        if not qids:
            return {}
        return self.store.wait_labels(qids, timeout=self.timeout, poll=self.poll_interval)

    def _complete(self, labels: list[Any]) -> bool:
        return len(labels) >= self.n_annotators


# ----------------------------------------------------------------------------------------------- pairs


def _as_segments(segments: Any, name: str, obs_shape: tuple[int, ...], single: bool) -> Any:
    """A trajectory.Segments (N, L, ...) from Segments or an object with obs / acts (/ mask / true_rews).

    single: also accept one unbatched segment (obs (L, *obs_shape)) and make it N = 1.
    """
    if not all(hasattr(segments, f) for f in ("obs", "acts")):
        raise ValidationError(f"{name}={describe(segments)}: expected trajectory.Segments (obs, acts, mask; a person "
                              "needs observations to watch, true rewards alone cannot be drawn)")
    obs = np.asarray(segments.obs)
    acts, mask = np.asarray(segments.acts), getattr(segments, "mask", None)
    rews = getattr(segments, "true_rews", None)
    if single and obs.ndim == len(obs_shape) + 1:  # one segment (L, *obs_shape): add the batch axis
        obs, acts = obs[None], acts[None]
        mask = None if mask is None else np.asarray(mask)[None]
        rews = None if rews is None else np.asarray(rews)[None]
    checked = _check_obs(f"{name}.obs", obs, obs_shape, "N, L")
    n, length = checked.shape[:2]
    if n == 0 or length == 0:
        raise ValidationError(f"{name}.obs: shape {checked.shape}; expected N >= 1 segments of L >= 1 steps")
    mask = np.ones((n, length), dtype=bool) if mask is None else np.asarray(mask)
    rews = np.zeros((n, length)) if rews is None else np.asarray(rews, dtype=np.float64)
    if mask.shape != (n, length):
        raise ValidationError(f"{name}.mask: shape {mask.shape}; expected ({n}, {length})")
    return segments if isinstance(segments, Segments) and not single else Segments(obs, acts, rews, mask)


class WebLabeller(_Adapter):
    """A person comparing two clips: the ``Labeller`` protocol of ``irlhf.preference.trajectory.train``.

    env_id: one of ``render.SUPPORTED_ENVS`` (segments are drawn from their observations).  fps, width: clip
    frame rate (<= 50) and width in pixels.  seed: the left/right draws.  title: the question shown.
    poll_interval: seconds between store checks while waiting.  url, verbose: the stderr line when a batch is posted.
    """

    def __init__(self, store: LabelStore, env_id: str, *, session: str, n_annotators: int = 1,
                 timeout: float | None = None, fps: float = 20, width: int | None = 240, seed: Any = 0,
                 title: str = "Which clip shows the better behaviour?", poll_interval: float = 0.2,
                 url: str | None = None, verbose: bool = True) -> None:
        super().__init__(store, session=session, n_annotators=n_annotators, timeout=timeout,
                         poll_interval=poll_interval, url=url, verbose=verbose)
        self.observation_space, self.action_space = _check_env(env_id)
        self.env_id = env_id
        render.gif_frame_seconds(fps)  # validates fps now, not at the first batch
        self.fps, self.width, self.title = fps, width, title
        self.rng = as_generator(seed)
        self.n_batches = 0
        # queries that timed out: (query id, swapped, segment a (1, L, ...), segment b (1, L, ...))
        self._late: list[tuple[str, bool, Any, Any]] = []
        self._template: Any = None  # a 0-row Segments with the right shapes for an empty collect_late

    def label(self, segment_a: Any, segment_b: Any) -> float | None:
        """1.0 (a preferred), 0.5 (equal), 0.0 (b preferred) or None (skipped / not answered in time)."""
        shape = self.observation_space.shape
        a = _as_segments(segment_a, "segment_a", shape, single=True)
        b = _as_segments(segment_b, "segment_b", shape, single=True)
        mu = self.label_batch(a, b)[0]
        return None if np.isnan(mu) else float(mu)

    def label_batch(self, segments_a: Any, segments_b: Any) -> np.ndarray:
        """(N,) float64 mu per pair: 1.0 a preferred, 0.5 equal, 0.0 b preferred, NaN skipped / not in time.

        segments_a, segments_b: trajectory.Segments with obs (N, L, *obs_shape), acts (N, L, ...), mask (N, L).
        Every clip is drawn before any query is posted, so bad input posts nothing.
        """
        shape = self.observation_space.shape
        a = _as_segments(segments_a, "segments_a", shape, single=False)
        b = _as_segments(segments_b, "segments_b", shape, single=False)
        if len(a) != len(b):
            raise ValidationError(f"segments: {len(a)} and {len(b)} segments; expected the same number N in both")
        n = len(a)
        swapped = self.rng.random(n) < 0.5  # True: segment b is shown on the left
        clips = []
        for k in range(n):
            clip_a = render.segment_clip(self.env_id, a.obs[k], a.acts[k], a.mask[k], fps=self.fps, width=self.width)
            clip_b = render.segment_clip(self.env_id, b.obs[k], b.acts[k], b.mask[k], fps=self.fps, width=self.width)
            clips.append((clip_b, clip_a) if swapped[k] else (clip_a, clip_b))
        qids = []
        for k, (left, right) in enumerate(clips):
            payload = {"left": "left", "right": "right", "title": self.title,
                       "meta": {"adapter": "WebLabeller", "env_id": self.env_id, "batch": self.n_batches,
                                "index": k, "swapped": bool(swapped[k])}}
            qids.append(self.store.add_query("pair", payload, session=self.session,
                                             media={"left": (left, "image/gif"), "right": (right, "image/gif")},
                                             n_annotators=self.n_annotators))
        self.n_batches += 1
        self.n_posted += n
        if self._template is None:
            self._template = a[:0]
        _announce(self.verbose, n, "pair", self.session, self.url)
        got = self._wait(qids)
        mu = np.full(n, np.nan)
        for k, qid in enumerate(qids):
            labels = got[qid]
            if self._complete(labels):
                mu[k] = self._mu(qid, labels, bool(swapped[k]))
            else:  # not answered in time: remember it, collect_late hands it over once answered
                self._late.append((qid, bool(swapped[k]), a[[k]], b[[k]]))
        return mu

    def _mu(self, qid: str, labels: list[Any], swapped: bool) -> float:
        """mu for segment a from the labels of one query (consensus is about the left clip); NaN if skipped."""
        left = aggregate("pair", self.store.get_query(qid).payload, labels)
        if left is None:
            return math.nan
        return 1.0 - left if swapped else left

    def collect_late(self) -> tuple[Any, Any, np.ndarray]:
        """(segments_a, segments_b, mu (M,)) of earlier timed-out queries answered since (skips left out).

        Each such query is returned once; queries still unanswered stay pending for a later call.
        """
        still, rows_a, rows_b, mus = [], [], [], []
        for qid, swapped, seg_a, seg_b in self._late:
            labels = self.store.labels(query_id=qid)
            if not self._complete(labels):
                still.append((qid, swapped, seg_a, seg_b))
                continue
            mu = self._mu(qid, labels, swapped)
            if not np.isnan(mu):
                rows_a.append(seg_a)
                rows_b.append(seg_b)
                mus.append(mu)
        self._late = still
        if not mus:
            empty = self._template if self._template is not None else Segments(
                np.zeros((0, 1, *self.observation_space.shape)), np.zeros((0, 1, *(self.action_space.shape or ()))),
                np.zeros((0, 1)), np.zeros((0, 1), dtype=bool))
            return empty, empty, np.zeros(0)
        return Segments.concatenate(rows_a), Segments.concatenate(rows_b), np.asarray(mus, dtype=np.float64)

    @property
    def n_late(self) -> int:
        """Timed-out queries still waiting for their labels."""
        return len(self._late)

    def __repr__(self) -> str:
        return (f"WebLabeller({self.env_id!r}, session={self.session!r}, n_annotators={self.n_annotators}, "
                f"timeout={self.timeout})")


# ----------------------------------------------------------------------------------------------- DAgger


def _action_names(env_id: str, space: gym.spaces.Discrete, names: Sequence[str] | None) -> list[str]:
    n = int(space.n)
    if not 2 <= n <= 32:
        raise ValidationError(f"env_id={env_id!r}: {n} actions; a person can choose among 2 to 32")
    if names is None:
        return list(DEFAULT_ACTION_NAMES.get(env_id, [f"action {i}" for i in range(n)]))
    if isinstance(names, str) or not isinstance(names, Sequence) or len(names) != n or not all(
            isinstance(x, str) and x for x in names):
        raise ValidationError(f"action_names={describe(names)}: expected {n} non-empty strings (one per action of "
                              f"{env_id})")
    return list(names)


class WebExpert(_Adapter):
    """A person as DAgger's expert: ``expert(obs_batch (N, *obs_shape)) -> actions (N,) int``.

    One dagger query (a PNG of the state and one button per action) per state; the consensus of
    ``n_annotators`` is the majority action. A state skipped or not answered within ``timeout`` takes
    ``fallback(obs (M, *obs_shape)) -> (M,)`` when given, else raises LabelTimeoutError.
    Actions are returned in the env's numbering (``action_space.start + index``).
    """

    def __init__(self, store: LabelStore, env_id: str, *, session: str, action_names: Sequence[str] | None = None,
                 n_annotators: int = 1, timeout: float | None = None,
                 fallback: Callable[[np.ndarray], Any] | None = None, width: int | None = 240,
                 poll_interval: float = 0.2, url: str | None = None, verbose: bool = True) -> None:
        super().__init__(store, session=session, n_annotators=n_annotators, timeout=timeout,
                         poll_interval=poll_interval, url=url, verbose=verbose)
        self.observation_space, space = _check_env(env_id)
        self.action_space = _check_discrete(env_id, space, "WebExpert")
        self.env_id = env_id
        self.action_names = _action_names(env_id, self.action_space, action_names)
        if fallback is not None and not callable(fallback):
            raise ValidationError(f"fallback={describe(fallback)}: expected None or a callable obs batch -> actions")
        self.fallback, self.width = fallback, width
        self.title = f"{env_id}: which action should the agent take now?"

    def __call__(self, obs_batch: Any) -> np.ndarray:
        """(N,) int64 actions chosen by the person(s) for obs_batch (N, *obs_shape)."""
        obs = _check_obs("obs_batch", obs_batch, self.observation_space.shape, "N")
        n = len(obs)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        frames = render.render_observations(self.env_id, obs, width=self.width)
        qids = []
        for i in range(n):
            payload = {"frame": "frame", "actions": self.action_names, "title": self.title,
                       "meta": {"adapter": "WebExpert", "env_id": self.env_id, "index": i}}
            qids.append(self.store.add_query("dagger", payload, session=self.session,
                                             media={"frame": (render.encode_png(frames[i]), "image/png")},
                                             n_annotators=self.n_annotators))
        _announce(self.verbose and self.n_posted == 0, n, "dagger", self.session, self.url)
        self.n_posted += n
        got = self._wait(qids)
        actions = np.zeros(n, dtype=np.int64)
        missing = []
        for i, qid in enumerate(qids):
            choice = (aggregate("dagger", self.store.get_query(qid).payload, got[qid])
                      if self._complete(got[qid]) else None)
            if choice is None:
                missing.append(i)
            else:
                actions[i] = int(self.action_space.start) + int(choice)
        if missing:
            if self.fallback is None:
                raise LabelTimeoutError(
                    f"{len(missing)} of {n} states got no action (skipped, or not answered within timeout="
                    f"{self.timeout} s) in session {self.session!r}; expected answers, or pass fallback= (e.g. a "
                    "scripted expert) to act for them")
            actions[missing] = checked_actions(self.fallback, obs[missing], self.action_space, "fallback")
        return actions

    def __repr__(self) -> str:
        return f"WebExpert({self.env_id!r}, session={self.session!r}, n_annotators={self.n_annotators})"


# ----------------------------------------------------------------------------------------------- TAMER


class WebTrainer(_Adapter):
    """A person giving TAMER feedback on a replay of each episode: the ``tamer.Trainer`` protocol.

    ``watch(t, obs, action)`` records the step that starts at simulated time t; ``poll(t)`` returns [] for a
    finite t; ``poll(math.inf)`` (end of an episode) posts one tamer query with the episode's clip (step k shown
    during [k, k+1) * step seconds), waits, and returns the person's key presses as ``tamer.Feedback(t, h)`` with
    t in the same simulated seconds as ``watch`` (t of the first step + seconds into the clip). The step
    length is inferred from the watch times and must be a multiple of 0.01 s, at least 0.02 s (GIF delays are
    whole centiseconds); ``step_seconds`` fixes it when given (and a one-step episode uses it, else the last
    episode's, else 0.25). Not answered in time: the labels that did arrive, possibly none.
    """

    def __init__(self, store: LabelStore, env_id: str, *, session: str, n_annotators: int = 1,
                 timeout: float | None = None, width: int | None = 240, step_seconds: float | None = None,
                 poll_interval: float = 0.2, url: str | None = None, verbose: bool = True) -> None:
        super().__init__(store, session=session, n_annotators=n_annotators, timeout=timeout,
                         poll_interval=poll_interval, url=url, verbose=verbose)
        self.observation_space, space = _check_env(env_id)
        self.action_space = _check_discrete(env_id, space, "WebTrainer")
        self.env_id, self.width = env_id, width
        self.step_seconds = None if step_seconds is None else self._check_step(float(step_seconds), "step_seconds")
        self._times: list[float] = []
        self._obs: list[np.ndarray] = []
        self._last_step: float | None = None
        self.n_episodes = 0

    @staticmethod
    def _check_step(dt: float, source: str) -> float:
        """dt if it is a whole number of centiseconds >= 2 (how GIF frames are timed), else ValidationError."""
        cs = round(dt * 100)
        if not math.isfinite(dt) or abs(dt * 100 - cs) > 1e-6 or cs < 2:
            raise ValidationError(f"{source}={dt!r} seconds per step: expected a multiple of 0.01 s and at least "
                                  "0.02 s (the clip's GIF frames last whole centiseconds); e.g. "
                                  "tamer.Config(step_seconds=0.25)")
        return cs / 100

    def watch(self, t: float, obs: np.ndarray, action: int) -> None:
        """Record the step that starts at simulated time t (seconds): the agent in state obs takes action."""
        if isinstance(t, bool) or not isinstance(t, (int, float, np.integer, np.floating)) or not math.isfinite(t):
            raise ValidationError(f"t={describe(t)}: expected a finite time in seconds")
        if self._times and t <= self._times[-1]:
            raise ValidationError(f"t={t!r}: not after the previous step's {self._times[-1]!r}; expected increasing "
                                  "times within an episode (poll(math.inf) ends one)")
        row = _check_obs("obs", np.asarray(obs)[None], self.observation_space.shape, "1")[0]
        if not self.action_space.contains(np.int64(action)):
            raise ValidationError(f"action={describe(action)}: expected an action of {self.action_space}")
        self._times.append(float(t))
        self._obs.append(row)

    def poll(self, t: float) -> list[Any]:
        """[] for a finite t; for t = math.inf the person's feedback on the episode watched so far."""
        if isinstance(t, bool) or not isinstance(t, (int, float, np.integer, np.floating)) or math.isnan(t):
            raise ValidationError(f"t={describe(t)}: expected a time in seconds or math.inf (episode end)")
        if not math.isinf(t):
            return []  # feedback comes after the episode: the person watches its replay
        try:
            return self._episode_feedback()
        finally:
            self._times, self._obs = [], []

    def _episode_dt(self, times: np.ndarray) -> float:
        if len(times) >= 2:
            dt = self._check_step(float(times[1] - times[0]), "step seconds inferred from watch times")
            if self.step_seconds is not None and dt != self.step_seconds:
                raise ValidationError(f"watch times step {dt} s; expected step_seconds={self.step_seconds}")
            expected = times[0] + dt * np.arange(len(times))
            if not np.allclose(times, expected, rtol=0, atol=1e-6):
                k = int(np.argmax(np.abs(times - expected) > 1e-6))
                raise ValidationError(f"watch times: step {k} at {times[k]!r} s; expected evenly spaced steps "
                                      f"({expected[k]!r} s with {dt} s per step)")
            return dt
        for dt in (self.step_seconds, self._last_step):
            if dt is not None:
                return dt
        return DEFAULT_STEP_SECONDS

    def _episode_feedback(self) -> list[Any]:
        if not self._times:
            return []
        times = np.asarray(self._times)
        dt = self._episode_dt(times)
        self._last_step = dt
        fps = 1.0 / dt
        frames = render.render_observations(self.env_id, np.stack(self._obs), width=self.width)
        clip = render.encode_gif(frames, fps=fps)
        t0 = float(times[0])
        payload = {"clip": "clip", "n_steps": len(times), "step_seconds": render.gif_frame_seconds(fps),
                   "title": f"{self.env_id} episode {self.n_episodes}: press + (good) or - (bad) as it plays",
                   "meta": {"adapter": "WebTrainer", "env_id": self.env_id, "episode": self.n_episodes, "t0": t0}}
        qid = self.store.add_query("tamer", payload, session=self.session, media={"clip": (clip, "image/gif")},
                                   n_annotators=self.n_annotators)
        self.n_episodes += 1
        _announce(self.verbose and self.n_posted == 0, 1, "tamer", self.session, self.url)
        self.n_posted += 1
        labels = self._wait([qid])[qid]
        events = aggregate("tamer", self.store.get_query(qid).payload, labels) or []
        return [Feedback(t0 + float(e["t"]), float(e["h"])) for e in events]

    def __repr__(self) -> str:
        return f"WebTrainer({self.env_id!r}, session={self.session!r}, n_annotators={self.n_annotators})"


# ----------------------------------------------------------------------------------------------- text


class WebTextRanker(_Adapter):
    """A person ranking responses to a prompt: ``rank(prompt, responses) -> tie groups | None``.

    Tie groups are lists of indices into ``responses``, best first (``[[1], [0, 2]]``: 1 best, 0 and 2 tied);
    None when skipped or not answered in time. Responses are shown in a seeded random order per query.
    """

    def __init__(self, store: LabelStore, *, session: str, n_annotators: int = 1, timeout: float | None = None,
                 seed: Any = 0, poll_interval: float = 0.2, url: str | None = None, verbose: bool = True) -> None:
        super().__init__(store, session=session, n_annotators=n_annotators, timeout=timeout,
                         poll_interval=poll_interval, url=url, verbose=verbose)
        self.rng = as_generator(seed)

    def rank(self, prompt: str, responses: Sequence[str]) -> list[list[int]] | None:
        """Tie groups of indices into ``responses`` (2..9 strings), best first; None if skipped / not in time."""
        return self.rank_batch([prompt], [responses])[0]

    def rank_batch(self, prompts: Sequence[str], responses_lists: Sequence[Sequence[str]]
                   ) -> list[list[list[int]] | None]:
        """One ``rank`` result per prompt; all queries are posted first, then waited for together."""
        if isinstance(prompts, str) or not isinstance(prompts, Sequence):
            raise ValidationError(f"prompts={describe(prompts)}: expected a list of strings")
        if isinstance(responses_lists, str) or not isinstance(responses_lists, Sequence) or len(
                responses_lists) != len(prompts):
            raise ValidationError(f"responses_lists={describe(responses_lists)}: expected a list of {len(prompts)} "
                                  "response lists (one per prompt)")
        payloads, orders = [], []
        for k, (prompt, responses) in enumerate(zip(prompts, responses_lists)):
            try:
                check_payload("text", {"prompt": prompt, "responses": responses})
            except ValidationError as err:
                raise ValidationError(f"query {k}: {err}") from None
            order = self.rng.permutation(len(responses))  # shown position j holds responses[order[j]]
            orders.append(order)
            payloads.append({"prompt": prompt, "responses": [responses[i] for i in order],
                             "meta": {"adapter": "WebTextRanker", "index": k, "order": order.tolist()}})
        qids = [self.store.add_query("text", p, session=self.session, n_annotators=self.n_annotators)
                for p in payloads]
        if qids:
            _announce(self.verbose, len(qids), "text", self.session, self.url)
        self.n_posted += len(qids)
        got = self._wait(qids)
        out: list[list[list[int]] | None] = []
        for qid, payload, order in zip(qids, payloads, orders):
            labels = got[qid]
            groups = aggregate("text", payload, labels) if self._complete(labels) else None
            out.append(None if groups is None else [sorted(int(order[j]) for j in g) for g in groups])
        return out

    def __repr__(self) -> str:
        return f"WebTextRanker(session={self.session!r}, n_annotators={self.n_annotators})"
