"""End-to-end tests of the labelling page in a real headless chromium (Playwright).

Skipped, with the reason, when playwright or chromium is missing (the ``browser`` fixture in conftest.py).
The store holds real media: CartPole / MountainCar GIFs and a PNG from ``irlhf.label.render``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("pygame")  # draws the env frames of the clips

sys.path.insert(0, str(Path(__file__).parent))  # browser_data is shared with docs/img/make_label_screenshots.py

import browser_data as data  # noqa: E402

from irlhf.label import render  # noqa: E402
from irlhf.label.server import create_app  # noqa: E402
from irlhf.label.store import LabelStore  # noqa: E402

ANNOTATOR = "Ada Lovelace"
TIMEOUT_MS = 10_000


@pytest.fixture
def expect(browser: Any) -> Any:
    """Playwright's ``expect`` (imported lazily, after ``browser`` has skipped when playwright is missing)."""
    from playwright.sync_api import expect as _expect

    _expect.set_options(timeout=TIMEOUT_MS)
    return _expect


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser context (own cookies) with the screenshot viewport."""
    ctx = browser.new_context(viewport={"width": 1100, "height": 760})
    ctx.set_default_timeout(TIMEOUT_MS)
    yield ctx
    ctx.close()


def _values(store: LabelStore, query_id: str) -> list[tuple[str, Any]]:
    """(annotator, value) of every label stored for ``query_id``."""
    return [(label.annotator, label.value) for label in store.labels(query_id=query_id)]


def _row_order(page: Any) -> list[int]:
    """Response indices of the ranking rows, top to bottom."""
    return [int(i) for i in page.eval_on_selector_all("ol.rank > li", "rows => rows.map(r => r.dataset.index)")]


def _row(page: Any, index: int) -> Any:
    """The ranking row showing response ``index``."""
    return page.locator(f"ol.rank > li[data-index='{index}']")


@pytest.mark.heavy
def test_walkthrough_every_kind(tmp_path: Path, context: Any, live_server: Callable[[Any], str],
                                expect: Any) -> None:
    """One annotator labels a query of every kind by mouse and keyboard; the store gets exactly those labels."""
    store, ids = data.build_store(tmp_path / "labels.db")
    base = live_server(create_app(store, session=data.SESSION))
    page = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)

    # start page: type the name, submit
    page.goto(base + "/")
    page.fill("#annotator", ANNOTATOR)
    page.click("button[type=submit]")
    expect(page.locator(".who strong")).to_have_text(ANNOTATOR)

    # pair 1: click Left
    expect(page.locator("h2.qtitle")).to_contain_text("Pair 1")
    expect(page.locator(".pair img")).to_have_count(2)
    page.wait_for_function("() => Array.from(document.querySelectorAll('.pair img'))"
                           ".every(i => i.complete && i.naturalWidth > 0)")  # the GIFs really load
    page.get_by_role("button", name="Left").click()
    expect(page.locator("h2.qtitle")).to_contain_text("Pair 2")
    assert _values(store, ids.pair_click) == [(ANNOTATOR, "left")]

    # pair 2: ArrowRight
    page.keyboard.press("ArrowRight")
    expect(page.locator(".prompt")).to_contain_text(data.TEXT2_PROMPT)
    assert _values(store, ids.pair_key) == [(ANNOTATOR, "right")]

    # text with 2 responses: "3" = equal
    expect(page.locator(".two .rtext")).to_have_text(list(data.TEXT2_RESPONSES))
    page.keyboard.press("3")
    expect(page.locator(".prompt")).to_contain_text(data.TEXT4_PROMPT)
    assert _values(store, ids.text2) == [(ANNOTATOR, {"ranking": [[0, 1]]})]

    # text with 4 responses: shown literally (the hostile one is text, not HTML) ...
    expect(page.locator("ol.rank > li")).to_have_count(4)
    for i, text in enumerate(data.TEXT4_RESPONSES):
        assert _row(page, i).locator(".rtext").text_content() == text  # leading blanks and newlines kept
    assert data.HOSTILE in (page.text_content("#main") or "")
    hostile_nodes = page.evaluate(
        """hostile => ({
            scripts: Array.from(document.scripts).filter(s => s.textContent.includes('alert')).length,
            imgs: document.querySelectorAll('img[src="x"], img[onerror]').length,
            text: Array.from(document.querySelectorAll('.rtext')).filter(n => n.textContent === hostile).length,
        })""",
        data.HOSTILE,
    )
    assert hostile_nodes == {"scripts": 0, "imgs": 0, "text": 1}
    assert _row_order(page) == [0, 1, 2, 3]

    # ... ranked by drag and drop, the ▲ ▼ buttons and a tie checkbox
    _row(page, 3).drag_to(_row(page, 0), target_position={"x": 40, "y": 4})  # drop on the top edge: before
    page.wait_for_function("() => document.querySelector('ol.rank > li').dataset.index === '3'")
    assert _row_order(page) == [3, 0, 1, 2]
    _row(page, 1).locator("button.down").click()
    assert _row_order(page) == [3, 0, 2, 1]
    _row(page, 2).locator("button.up").click()
    assert _row_order(page) == [3, 2, 0, 1]
    expect(_row(page, 3).locator("input.tie")).to_be_disabled()  # the top row has no row above to tie with
    _row(page, 2).locator("input.tie").check()  # 2 ties with 3
    _row(page, 1).locator("input.tie").check()  # 1 ties with 0
    page.locator("#main .actions button", has_text="Submit").click()
    expect(page.locator("h2.qtitle")).to_contain_text("CartPole")
    assert _values(store, ids.text4) == [(ANNOTATOR, {"ranking": [[2, 3], [0, 1]]})]  # groups sorted inside

    # DAgger: "2" = the second action
    expect(page.locator("#main .actions button")).to_contain_text(list(data.DAGGER_ACTIONS) + ["Can't tell"])
    page.wait_for_function("() => { const i = document.querySelector('.frame img'); "
                           "return i && i.complete && i.naturalWidth > 0; }")
    page.keyboard.press("2")
    expect(page.locator("h2.qtitle")).to_contain_text("MountainCar")
    assert _values(store, ids.dagger) == [(ANNOTATOR, {"action": 1})]

    # TAMER: Start, G, G, B while the clip plays, Submit after it ends
    good = page.locator("#main .actions button.good")
    submit_button = page.locator("#main .actions button", has_text="Submit")
    page.locator("#main .actions button", has_text="Start").click()
    expect(good).to_be_enabled()  # the clip is on screen: t = 0
    for key in ("g", "g", "b"):
        page.keyboard.press(key)
        page.wait_for_timeout(150)  # spacing between presses (their times are the data), not a sync point
    expect(page.locator(".counts")).to_have_text("+2 good · −1 bad")
    duration = data.TAMER_STEPS * render.gif_frame_seconds(data.TAMER_FPS)
    expect(submit_button).to_be_enabled(timeout=int(duration * 1000) + TIMEOUT_MS)
    submit_button.click()
    expect(page.get_by_text("Nothing to label right now")).to_be_visible()
    (label,) = store.labels(query_id=ids.tamer)
    assert label.annotator == ANNOTATOR
    events = label.value["events"]
    assert [ev["h"] for ev in events] == [1, 1, -1]
    times = [ev["t"] for ev in events]
    assert times == sorted(times) and len(set(times)) == 3, times
    assert 0 <= times[0] and times[-1] <= duration, times

    # exactly one label per query, all from this annotator; no dialog ever opened
    assert {lab.query_id for lab in store.labels(session=data.SESSION)} == set(vars(ids).values())
    assert {lab.annotator for lab in store.labels()} == {ANNOTATOR}
    assert store.stats(data.SESSION)["n_complete"] == 6
    assert dialogs == []


def test_two_annotators_share_a_query(tmp_path: Path, browser: Any, live_server: Callable[[Any], str],
                                      expect: Any) -> None:
    """With n_annotators=2 two people (two browser contexts) both get the query and both labels are stored.

    Alice opens the page before the query exists: it polls the server and shows the query once it is posted
    (as while a learner computes its next batch)."""
    store = LabelStore(tmp_path / "labels.db")
    base = live_server(create_app(store))
    contexts = [browser.new_context() for _ in range(2)]
    try:
        early = contexts[0].new_page()
        early.goto(f"{base}/label?annotator=alice")
        expect(early.get_by_text("Nothing to label right now")).to_be_visible()
        qid = data.add_pair(store, "shared-pair", title="Shared pair", n_annotators=2)
        expect(early.locator("h2.qtitle")).to_have_text("Shared pair")  # the page's poll (every 2 s) found it
        pages = [early]
        late = contexts[1].new_page()
        late.goto(f"{base}/label?annotator=bob")
        expect(late.locator("h2.qtitle")).to_have_text("Shared pair")
        pages.append(late)
        pages[0].keyboard.press("1")
        pages[1].get_by_role("button", name="Right").click()
        for page in pages:
            expect(page.get_by_text("Nothing to label right now")).to_be_visible()
    finally:
        for ctx in contexts:
            ctx.close()
    assert sorted(_values(store, qid)) == [("alice", "left"), ("bob", "right")]
    assert store.stats()["n_complete"] == 1


def test_cross_origin_post_is_refused(tmp_path: Path, context: Any, live_server: Callable[[Any], str],
                                      expect: Any) -> None:
    """A page on another origin (another port: same site, so SameSite cookies go along) cannot store a label."""
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

    store = LabelStore(tmp_path / "labels.db")
    qid = data.add_pair(store, "target-pair", title="Target")
    base = live_server(create_app(store))
    attacker = FastAPI()

    @attacker.get("/")
    def evil() -> HTMLResponse:
        """The attacker's page (the attack runs through page.evaluate, i.e. as this page's own script)."""
        return HTMLResponse("<!doctype html><title>attacker</title><p>win a prize</p>")

    evil_base = live_server(attacker)
    # the victim has the labelling page open: the CSRF cookie is set in this browser
    victim = context.new_page()
    victim.goto(f"{base}/label?annotator=victim")
    expect(victim.locator("h2.qtitle")).to_have_text("Target")
    assert any(c["name"] == "irlhf_csrf" for c in context.cookies(base))

    page = context.new_page()
    statuses: list[int] = []  # what the server answered to the attacker's POSTs that reached it
    page.on("response", lambda r: statuses.append(r.status) if r.url.endswith("/api/label") else None)
    page.goto(evil_base + "/")
    body = '{"query_id": "target-pair", "annotator": "victim", "value": "left"}'
    outcome = page.evaluate(
        """async ([url, body]) => {
            const out = {};
            // a "simple" request: no preflight, the browser sends it (with cookies) but the reply is opaque
            const simple = await fetch(url, {method: "POST", mode: "no-cors", credentials: "include",
                                             headers: {"Content-Type": "text/plain"}, body: body});
            out.simple = simple.type;
            // with the CSRF header (a guess: the cookie is HttpOnly) the browser must preflight
            try {
                const r = await fetch(url, {method: "POST", credentials: "include",
                    headers: {"Content-Type": "application/json", "X-CSRF-Token": "x".repeat(43)}, body: body});
                out.cors = r.status;
            } catch (e) {
                out.cors = "blocked";
            }
            return out;
        }""",
        [base + "/api/label", body],
    )
    assert outcome == {"simple": "opaque", "cors": "blocked"}
    assert statuses == [403]  # the simple POST got through the browser and the server refused it
    assert store.labels() == []
    # a cross-site <img src=".../api/next"> leases nothing: no GET changes state (405)
    bait = data.add_pair(store, "bait-pair", title="Bait")
    page.evaluate("url => new Promise(done => { const i = new Image(); i.onload = i.onerror = done; i.src = url; })",
                  base + "/api/next?annotator=mallory")
    assert store.next_query("bystander").id == bait  # still free: not leased to mallory

    # the same request from about:blank (an opaque "null" origin): refused by chromium or by the server
    blank = context.new_page()
    blank.goto("about:blank")
    kind = blank.evaluate(
        """async ([url, body]) => {
            try {
                const r = await fetch(url, {method: "POST", mode: "no-cors", credentials: "include",
                                            headers: {"Content-Type": "text/plain"}, body: body});
                return r.type;
            } catch (e) {
                return "blocked";
            }
        }""",
        [base + "/api/label", body],
    )
    assert kind in ("opaque", "blocked")
    assert store.labels() == []
    assert store.get_query(qid).n_labels == 0

    # the victim's own page still labels (the refusals above were about the origin, not a broken server)
    victim.keyboard.press("1")
    expect(victim.get_by_text("Nothing to label right now")).to_be_visible()
    assert _values(store, qid) == [("victim", "left")]


@pytest.mark.slow  # covered faster: test_people.py::test_trajectory_train_with_a_person (the loop) and the tests
# above (keyboard answers to clip pairs; the page polling for queries posted after it opened)
def test_preference_loop_with_a_person_in_the_browser(tmp_path: Path, context: Any) -> None:
    """Christiano et al.'s loop end to end: trajectory.train asks WebLabeller, which posts clip pairs; a person
    in the browser answers them by keyboard while the learner waits; the reward model is fit on those labels."""
    from irlhf.label.people import WebLabeller
    from irlhf.label.server import start_server
    from irlhf.preference import trajectory

    store = LabelStore(tmp_path / "labels.sqlite")
    config = trajectory.Config(total_timesteps=128, n_labels=4, rounds=2, segment_length=5, ensemble_size=1,
                               candidates_factor=1, reward_epochs=1, random_rollout_steps=60, progress=False,
                               rl_kwargs=dict(n_envs=1, n_steps=64, batch_size=64, n_epochs=1))
    results: list[Any] = []
    with start_server(store, session="prefs") as server:
        labeller = WebLabeller(store, "CartPole-v1", session="prefs", width=120, timeout=60, url=server.url,
                               verbose=False)
        learner = threading.Thread(target=lambda: results.append(trajectory.train("CartPole-v1", labeller, config)))
        learner.start()
        page = context.new_page()
        page.goto(f"http://{server.host}:{server.port}/label?annotator=Ada")
        answered: list[str] = []
        deadline = time.monotonic() + 120
        while learner.is_alive() and time.monotonic() < deadline:
            shown = "#main[data-query]" + "".join(f":not([data-query='{q}'])" for q in answered)
            try:  # the next query not yet answered (the page polls every 2 s while the learner trains)
                page.wait_for_selector(shown + " .pair img", timeout=1000)
            except Exception:
                continue
            answered.append(page.get_attribute("#main", "data-query"))
            page.keyboard.press("ArrowLeft")
        learner.join(timeout=60)
    assert results and not learner.is_alive()
    labels = store.labels(session="prefs")
    assert sorted(label.query_id for label in labels) == sorted(answered) and len(answered) == 4
    assert {label.value for label in labels} == {"left"} and len(results[0].dataset) == 4


def test_dns_rebinding_page_is_refused(tmp_path: Path, rebinding_browser: Any,
                                       live_server: Callable[[Any], str]) -> None:
    """evil.example resolves to 127.0.0.1: the browser treats the page as evil.example's own, the server does not."""
    store = LabelStore(tmp_path / "labels.db")
    data.add_pair(store, "target-pair", title="Target")
    port = int(live_server(create_app(store)).rsplit(":", 1)[1])
    context = rebinding_browser.new_context()
    try:
        page = context.new_page()
        response = page.goto(f"http://evil.example:{port}/label?annotator=mallory")
        assert response is not None and response.status == 421
        assert "evil.example" in response.json()["error"]
        assert context.cookies() == []  # no CSRF cookie for the attacker's page
    finally:
        context.close()
    assert store.next_query("someone", session=None).id == "target-pair"  # nothing leased to mallory


def test_token_leaves_the_address_bar(tmp_path: Path, context: Any, live_server: Callable[[Any], str],
                                      expect: Any) -> None:
    """The printed URL's ?token= is exchanged for a cookie on the first visit and is gone from the address bar."""
    store = LabelStore(tmp_path / "labels.db")
    qid = data.add_pair(store, "token-pair", title="With a token")
    base = live_server(create_app(store, token="s3cret-Token"))
    page = context.new_page()
    page.goto(f"{base}/label?annotator=Ada&token=s3cret-Token")
    expect(page.locator("h2.qtitle")).to_have_text("With a token")
    assert page.url == f"{base}/label?annotator=Ada"
    assert "s3cret" not in page.evaluate("() => history.length + location.href + document.referrer")
    page.keyboard.press("1")
    expect(page.get_by_text("Nothing to label right now")).to_be_visible()
    assert _values(store, qid) == [("Ada", "left")]


def test_token_link_on_another_site(tmp_path: Path, context: Any, live_server: Callable[[Any], str],
                                    expect: Any) -> None:
    """The URL with ?token= shared as a link on another site (a web mail): the page opens, the token leaves the
    address bar and the history, and the SameSite=Strict cookie carries it from then on (reload included)."""
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

    store = LabelStore(tmp_path / "labels.db")
    data.add_pair(store, "linked-pair", title="Linked")
    base = live_server(create_app(store, token="s3cret-Token"))
    mail = FastAPI()

    @mail.get("/")
    def inbox() -> HTMLResponse:
        """Another site (localhost is not the site 127.0.0.1) showing the printed URL as a link."""
        return HTMLResponse(f'<!doctype html><a id="link" href="{base}/label?annotator=Ada&token=s3cret-Token">'
                            "label here</a>")

    inbox_url = live_server(mail).replace("127.0.0.1", "localhost") + "/"
    page = context.new_page()
    page.goto(inbox_url)
    page.click("#link")
    expect(page.locator("h2.qtitle")).to_have_text("Linked")
    assert page.url == f"{base}/label?annotator=Ada"
    page.reload()
    expect(page.locator("h2.qtitle")).to_have_text("Linked")
    page.go_back()
    assert page.url == inbox_url  # the URL with the token is not in the history
