"""Issue 21's active mode on the labelling page: a scripted person in real chromium teaches the driving reward.

Skipped, with the reason, when playwright or chromium is missing (the ``browser`` fixture in conftest.py).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("PIL")

from irlhf.core.errors import ValidationError  # noqa: E402
from irlhf.envs import driving  # noqa: E402
from irlhf.eval import active_preferences  # noqa: E402
from irlhf.label.active import WebActiveAnswerer, check_web_env, run_web_curve  # noqa: E402
from irlhf.label.kinds import check_payload  # noqa: E402
from irlhf.label.people import LabelTimeoutError  # noqa: E402
from irlhf.label.server import create_app  # noqa: E402
from irlhf.label.store import LabelStore  # noqa: E402

SESSION = "active1"
N_QUERIES = 10
EQUAL_BELOW = 0.02  # |w* . (phi_l - phi_r)| under this: "about equal"


def _config(n_queries: int = N_QUERIES) -> active_preferences.Config:
    return active_preferences.Config(env="driving", acquisitions=("information",), seeds=(0,), n_queries=n_queries,
                                     pool_size=60, n_candidates=500, n_samples=60)


def test_bars_payload_checked() -> None:
    ok = {"left": "l", "right": "r", "bars": {"names": ["a", "b"], "values": [0.5, -1]}}
    assert check_payload("pair", ok)["bars"] == {"names": ["a", "b"], "values": [0.5, -1.0]}
    for bars in ({"names": ["a"], "values": [2.0]}, {"names": ["a"], "values": [0.1, 0.2]}, {"names": []},
                 {"names": ["a"], "values": [float("nan")]}, "bars"):
        with pytest.raises(ValidationError, match="bars"):
            check_payload("pair", {"left": "l", "right": "r", "bars": bars})


def test_web_refuses_envs_it_cannot_draw() -> None:
    for env in ("lds", "mountaincar"):
        with pytest.raises(ValidationError, match="--answerer web"):
            check_web_env(env)


def test_unanswered_questions_stop_with_a_clear_error(tmp_path: Path) -> None:
    store = LabelStore(tmp_path / "labels.db")
    answerer = WebActiveAnswerer(store, session=SESSION, timeout=0.05, verbose=False)
    with pytest.raises(LabelTimeoutError, match="in a row skipped or not answered"):
        run_web_curve(driving, "information", 0, _config(3), answerer, max_unanswered=2, clip_width=48)
    assert answerer.n_skipped == 2
    store.close()


@pytest.mark.heavy
def test_scripted_person_teaches_w_on_the_page(tmp_path: Path, browser: Any,
                                               live_server: Callable[[Any], str]) -> None:
    from playwright.sync_api import expect

    store = LabelStore(tmp_path / "labels.db")
    base = live_server(create_app(store, session=SESSION))
    answerer = WebActiveAnswerer(store, session=SESSION, timeout=30, seed=1, verbose=False)
    out: dict[str, Any] = {}

    def learn() -> None:
        try:
            out["row"] = run_web_curve(driving, "information", 0, _config(), answerer, clip_width=48)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            out["error"] = exc

    thread = threading.Thread(target=learn, daemon=True)
    thread.start()
    w_star = np.asarray(driving.TRUE_W)
    page = browser.new_page()
    page.set_default_timeout(20_000)
    try:
        page.goto(base + "/")
        page.fill("#annotator", "Scripted")
        page.click("button[type=submit]")
        for k in range(1, N_QUERIES + 1):
            deadline = time.monotonic() + 20
            while len(store.queries(SESSION)) < k and time.monotonic() < deadline and thread.is_alive():
                time.sleep(0.05)
            if k > 1:
                page.reload()  # the idle page re-polls every 2 s; reloading shows the new question at once
            title = page.locator("h2.qtitle")
            expect(title).to_contain_text(f"(question {k})", timeout=20_000)
            expect(page.locator(".bars .barrow")).to_have_count(len(driving.FEATURE_NAMES))
            meta = next(q.payload["meta"] for q in store.queries(SESSION) if q.payload["meta"]["index"] == k - 1)
            margin = float(w_star @ (np.asarray(meta["phi_left"]) - np.asarray(meta["phi_right"])))
            name = "Equal" if abs(margin) < EQUAL_BELOW else "Left" if margin > 0 else "Right"
            page.get_by_role("button", name=name).click()
        thread.join(timeout=30)
    finally:
        page.close()
    assert not thread.is_alive()
    assert "error" not in out, out.get("error")
    row = out["row"]
    assert row["n_asked"] == N_QUERIES and row["n_skipped"] == 0
    assert row["alignment"][-1] > 0.8, row["alignment"]
    bars = store.queries(SESSION)[-1].payload["bars"]
    assert bars["names"] == list(driving.FEATURE_NAMES)
    store.close()


def test_job_with_web_answerer_writes_the_run(tmp_path: Path) -> None:
    """``irlhf prefs active --answerer web`` end to end (no browser: a thread answers through the store)."""
    from irlhf.jobs.prefs import ActiveJobConfig, run_active
    from irlhf.label.live import WebOptions, WebSession

    job = ActiveJobConfig(queries=3, pool=20, candidates=50, answerer="web")
    with WebSession(WebOptions(port=0, timeout=20), "prefs-active", str(tmp_path)) as web:
        stop = threading.Event()

        def person() -> None:
            while not stop.is_set():
                store = web.store
                q = store.next_query("Bot", web.session) if store is not None else None
                if q is None:
                    time.sleep(0.02)
                    continue
                meta = q.payload["meta"]
                margin = float(np.asarray(driving.TRUE_W) @ (np.asarray(meta["phi_left"]) - meta["phi_right"]))
                store.add_label(q.id, "Bot", "left" if margin > 0 else "right")

        helper = threading.Thread(target=person, daemon=True)
        helper.start()
        try:
            run, summary = run_active(job, str(tmp_path), web=web)
        finally:
            stop.set()
            helper.join(timeout=5)
    names = {p.name for p in run.path.iterdir()}
    assert {"config.json", "w.json", "labels.jsonl", "report.html", "alignment.png"} <= names
    assert any("3 asked, 0 skipped" in line for line in summary)
