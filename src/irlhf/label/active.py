"""A person answers active preference learning's queries on the labelling page (issue 21, "active mode").

:class:`WebActiveAnswerer` posts one ``pair`` query per question: the two trajectories as GIF clips, shown in a
seeded random left/right order (undone on reading), with ``meta`` holding each shown clip's features
(``phi_left`` / ``phi_right``, after the swap) and optional ``bars`` (the learner's current estimate of w).
:func:`run_web_curve` is ``irlhf.eval.active_preferences.run_curve`` with that person instead of a simulated
one: the learner picks each pair live from the answers so far; "equal" becomes ``Answer.pair(.., "equal")``;
a skip or a timeout asks the next query (counted, at most ``max_unanswered`` in a row).

Only ``irlhf.envs.driving`` can be drawn (``render_clip``); other envs are refused by :func:`check_web_env`.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from irlhf.core.errors import ValidationError, describe
from irlhf.core.seeding import as_generator
from irlhf.label.people import LabelTimeoutError, _Adapter, _announce
from irlhf.label.store import LabelStore, aggregate
from irlhf.preference import active

__all__ = ["WebActiveAnswerer", "run_web_curve", "check_web_env", "WEB_ENVS"]

WEB_ENVS = ("driving",)  # envs whose trajectories can be drawn for a person


def check_web_env(name: str) -> None:
    """Refuse an env whose trajectories cannot be shown on the page."""
    if name not in WEB_ENVS:
        raise ValidationError(f"--env {name}: --answerer web needs trajectories a person can watch; only "
                              f"{', '.join(WEB_ENVS)} can be drawn (use --answerer simulated for {name})")


def driving_clip(env: ModuleType, controls: np.ndarray, width: int = 96) -> bytes:
    """GIF bytes of one driving trajectory (``env.render_clip`` of ``env.simulate(controls)``)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.gif"
        env.render_clip(env.simulate(controls), path, width=width)
        return path.read_bytes()


class WebActiveAnswerer(_Adapter):
    """``ask(phi_a, phi_b, clip_a, clip_b, bars=None) -> "A" | "B" | "equal" | None`` (None: skipped / no answer)."""

    def __init__(self, store: LabelStore, *, session: str, n_annotators: int = 1, timeout: float | None = None,
                 seed: Any = 0, title: str = "Which car drives better?", poll_interval: float = 0.1,
                 url: str | None = None, verbose: bool = True) -> None:
        super().__init__(store, session=session, n_annotators=n_annotators, timeout=timeout,
                         poll_interval=poll_interval, url=url, verbose=verbose)
        self.rng = as_generator(seed)
        self.title = title
        self.n_skipped = 0  # queries skipped or not answered in time

    def ask(self, phi_a: Any, phi_b: Any, clip_a: bytes, clip_b: bytes,
            bars: dict[str, Any] | None = None) -> str | None:
        phi_a, phi_b = np.asarray(phi_a, dtype=float), np.asarray(phi_b, dtype=float)
        swapped = bool(self.rng.random() < 0.5)  # True: B is shown on the left
        (pl, cl), (pr, cr) = ((phi_b, clip_b), (phi_a, clip_a)) if swapped else ((phi_a, clip_a), (phi_b, clip_b))
        payload: dict[str, Any] = {
            "left": "left", "right": "right", "title": f"{self.title} (question {self.n_posted + 1})",
            "meta": {"adapter": "WebActiveAnswerer", "index": self.n_posted, "swapped": swapped,
                     "phi_left": [float(x) for x in pl], "phi_right": [float(x) for x in pr]}}
        if bars is not None:
            payload["bars"] = bars
        qid = self.store.add_query("pair", payload, session=self.session, n_annotators=self.n_annotators,
                                   media={"left": (cl, "image/gif"), "right": (cr, "image/gif")})
        _announce(self.verbose and self.n_posted == 0, 1, "pair", self.session, self.url)
        self.n_posted += 1
        labels = self._wait([qid])[qid]
        left = aggregate("pair", self.store.get_query(qid).payload, labels) if self._complete(labels) else None
        if left is None:
            self.n_skipped += 1
            return None
        if left == 0.5:
            return "equal"
        return ("A" if left == 1.0 else "B") if not swapped else ("B" if left == 1.0 else "A")


def _bars(names: Any, w: np.ndarray) -> dict[str, Any]:
    return {"names": [str(n) for n in names], "values": [float(np.clip(v, -1.0, 1.0)) for v in w]}


def run_web_curve(env: ModuleType, acquisition: str, seed: int, config: Any, answerer: WebActiveAnswerer, *,
                  beta: float = 10.0, max_unanswered: int = 5, clip_width: int = 96) -> dict[str, Any]:
    """``config.n_queries`` answers from a person (an ``active_preferences.Config``); the row of ``run_curve``
    plus ``n_asked`` / ``n_skipped``. Alignment is measured against ``env.TRUE_W`` (the person's own w is unknown).
    ``max_unanswered`` skips / timeouts in a row end the run with LabelTimeoutError."""
    if not isinstance(answerer, WebActiveAnswerer):
        raise ValidationError(f"answerer={describe(answerer)}: expected a WebActiveAnswerer")
    check_web_env(env.__name__.rsplit(".", 1)[-1])
    controls, Phi = env.sample_pool(config.pool_size, seed=seed)
    w_star = np.asarray(env.TRUE_W, dtype=np.float64)
    rng = np.random.default_rng([seed, 1])
    model = active.Config(answer_model="weak", beta=beta, delta=config.delta, n_samples=config.n_samples)
    posterior = active.Posterior(Phi.shape[1], config=model, seed=seed)
    alignment = [active.posterior_alignment(posterior.samples, w_star)]
    seconds: list[float] = []
    in_a_row = 0
    while len(seconds) < config.n_queries:
        start = time.perf_counter()
        i, j = active.select_query(posterior, Phi, acquisition, rng, n_candidates=config.n_candidates)
        clips = driving_clip(env, controls[i], clip_width), driving_clip(env, controls[j], clip_width)
        think = time.perf_counter() - start
        answer = answerer.ask(Phi[i], Phi[j], *clips, bars=_bars(env.FEATURE_NAMES, posterior.mean_direction))
        if answer is None:
            in_a_row += 1
            if in_a_row >= max_unanswered:
                raise LabelTimeoutError(f"{in_a_row} questions in a row skipped or not answered in time (session "
                                        f"{answerer.session!r}); stopping after {len(seconds)} answers")
            continue
        in_a_row = 0
        start = time.perf_counter()
        posterior = posterior.update(active.Answer.pair(Phi[i], Phi[j], answer))
        seconds.append(think + time.perf_counter() - start)
        alignment.append(active.posterior_alignment(posterior.samples, w_star))
    return {"env": env.__name__.rsplit(".", 1)[-1], "acquisition": acquisition, "beta": beta, "seed": seed,
            "alignment": [float(a) for a in alignment], "seconds": seconds,
            "w": posterior.mean_direction.tolist(), "acceptance_rate": float(posterior.acceptance_rate),
            "n_asked": answerer.n_posted, "n_skipped": answerer.n_skipped}
