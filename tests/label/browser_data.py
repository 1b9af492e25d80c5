"""A LabelStore with real media for the browser tests and for ``docs/img/make_label_screenshots.py``.

One query of every kind the page shows, in this (serving) order: two CartPole pairs, a text query with
2 responses, a text query with 4 responses (one hostile HTML string, one with leading blanks), a DAgger
state of CartPole and a TAMER clip of MountainCar.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

from irlhf.label import render
from irlhf.label.store import LabelStore

SESSION = "demo"
PAIR_FPS = 10
TAMER_FPS = 10
TAMER_STEPS = 25  # 2.5 s at 10 fps: time for three key presses, short enough for a fast test
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"
SPACED = "   \n\n  Indented answer\n    with a second, indented line"
TEXT2_PROMPT = "Is 17 a prime number?"
TEXT2_RESPONSES = ("Yes: its only divisors are 1 and 17.", "Yes, 17 is prime.")
TEXT4_PROMPT = "What is the capital of France?"
TEXT4_RESPONSES = ("Paris.", HOSTILE, SPACED, "The capital of France is Paris, on the Seine.")
DAGGER_ACTIONS = ("push left", "push right")


@dataclass(frozen=True)
class DemoIds:
    """Query ids of the demo store, in the order the page serves them."""

    pair_click: str = "pair-click"
    pair_key: str = "pair-key"
    text2: str = "text-two"
    text4: str = "text-four"
    dagger: str = "dagger-state"
    tamer: str = "tamer-clip"


def rollout(env_id: str, n_steps: int, *, seed: int, action: int | None = None) -> np.ndarray:
    """Observations (n_steps, *obs_shape) of one episode of ``env_id``: a fixed action, or random ones."""
    env = gym.make(env_id)
    try:
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        out = [obs]
        while len(out) < n_steps:
            act = env.action_space.sample() if action is None else action
            obs, _, terminated, truncated, _ = env.step(act)
            out.append(obs)
            if terminated or truncated:
                break
        return np.asarray(out, dtype=np.float32)
    finally:
        env.close()


@functools.lru_cache(maxsize=None)
def pair_clip(seed: int) -> bytes:
    """A short CartPole GIF (8 steps) from ``render.segment_clip``; cached, rendering is the slow part."""
    return render.segment_clip("CartPole-v1", rollout("CartPole-v1", 8, seed=seed), fps=PAIR_FPS)


@functools.lru_cache(maxsize=None)
def dagger_frame() -> bytes:
    """PNG of one CartPole state (``render_observations`` + ``encode_png``)."""
    obs = rollout("CartPole-v1", 4, seed=3, action=1)[-1:]
    return render.encode_png(render.render_observations("CartPole-v1", obs)[0])


@functools.lru_cache(maxsize=None)
def tamer_clip() -> bytes:
    """A MountainCar GIF of ``TAMER_STEPS`` steps pushing right."""
    obs = rollout("MountainCar-v0", TAMER_STEPS, seed=0, action=2)
    assert len(obs) == TAMER_STEPS  # MountainCar runs 200 steps before truncation
    return render.segment_clip("MountainCar-v0", obs, fps=TAMER_FPS)


def add_pair(store: LabelStore, query_id: str, *, session: str = SESSION, title: str | None = None,
             n_annotators: int = 1) -> str:
    """Add a CartPole pair query (two different clips) and return its id."""
    payload: dict[str, object] = {"left": "a", "right": "b"}
    if title is not None:
        payload["title"] = title
    media = {"a": (pair_clip(0), "image/gif"), "b": (pair_clip(1), "image/gif")}
    return store.add_query("pair", payload, session=session, media=media, n_annotators=n_annotators,
                           query_id=query_id)


def build_store(path: str | Path, *, session: str = SESSION) -> tuple[LabelStore, DemoIds]:
    """A new LabelStore at ``path`` holding one query of each kind (see the module docstring)."""
    store = LabelStore(path)
    ids = DemoIds()
    add_pair(store, ids.pair_click, session=session, title="Pair 1: which cart balances the pole better?")
    add_pair(store, ids.pair_key, session=session, title="Pair 2: which cart balances the pole better?")
    store.add_query("text", {"prompt": TEXT2_PROMPT, "responses": list(TEXT2_RESPONSES)}, session=session,
                    query_id=ids.text2)
    store.add_query("text", {"prompt": TEXT4_PROMPT, "responses": list(TEXT4_RESPONSES)}, session=session,
                    query_id=ids.text4)
    store.add_query("dagger", {"frame": "state", "actions": list(DAGGER_ACTIONS),
                               "title": "CartPole: which way should the cart be pushed?"},
                    session=session, media={"state": (dagger_frame(), "image/png")}, query_id=ids.dagger)
    store.add_query("tamer", {"clip": "clip", "n_steps": TAMER_STEPS,
                              "step_seconds": render.gif_frame_seconds(TAMER_FPS),
                              "title": "MountainCar: press G for good moves, B for bad ones"},
                    session=session, media={"clip": (tamer_clip(), "image/gif")}, query_id=ids.tamer)
    return store, ids
