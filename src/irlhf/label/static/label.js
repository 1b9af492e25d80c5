// irlhf label page: POSTs to /api/next for a query, renders one query per kind, POSTs the label to /api/label.
// Both are POSTs with a JSON body and the CSRF header: no GET changes state on the server.
// All text from the server (prompts, responses, titles, action names) goes through textContent /
// createTextNode only; nothing built from data is ever assigned to innerHTML.
"use strict";

(function () {
  const csrf = metaContent("csrf-token");
  const annotator = metaContent("annotator");
  const main = document.getElementById("main");
  const errorBox = document.getElementById("error");
  const progressBox = document.getElementById("progress");
  const helpBox = document.getElementById("help");

  let current = null;      // the query on screen (null when none)
  let posting = false;     // a POST is in flight: ignore further submits
  let keyHandler = null;   // per-kind keyboard handler
  let pollTimer = null;    // re-poll timer while nothing is left to label
  let cleanup = null;      // per-kind teardown (timers of the tamer clip)

  function metaContent(name) {
    const m = document.querySelector('meta[name="' + name + '"]');
    return m ? m.getAttribute("content") : "";
  }

  // el("div", {class: "x"}, ["text", childNode]) -- strings become text nodes, never HTML.
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const key of Object.keys(attrs)) {
        const v = attrs[key];
        if (v === null || v === undefined || v === false) continue;
        if (key === "class") node.className = v;
        else if (key === "text") node.textContent = v;
        else if (key.startsWith("on")) node.addEventListener(key.slice(2), v);
        else node.setAttribute(key, v === true ? "" : String(v));
      }
    }
    for (const child of children || []) {
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function button(label, key, onclick, cls) {
    const b = el("button", {type: "button", class: cls || "", onclick: onclick}, [label]);
    if (key) b.appendChild(el("kbd", null, [key]));
    return b;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function setHelp(text) {
    helpBox.textContent = text;
  }

  function showError(message, retry) {
    clear(errorBox);
    errorBox.appendChild(el("span", null, [message]));
    if (retry) errorBox.appendChild(button("Retry", null, retry, "primary"));
    errorBox.hidden = false;
  }

  function clearError() {
    clear(errorBox);
    errorBox.hidden = true;
  }

  function setBusy(busy) {
    for (const b of main.querySelectorAll("button, input")) {
      if (busy) {
        b.dataset.wasDisabled = b.disabled ? "1" : "";
        b.disabled = true;
      } else {
        b.disabled = b.dataset.wasDisabled === "1";
      }
    }
    main.classList.toggle("busy", busy);
  }

  function showProgress(p) {
    if (!p) return;
    progressBox.textContent = p.done_by_you + " labelled by you · " + p.total +
      " in this session · " + p.pending + " waiting";
  }

  async function readError(resp) {
    try {
      const data = await resp.json();
      if (data && typeof data.error === "string") return data.error;
    } catch (e) { /* not JSON: fall back to the status line */ }
    return "HTTP " + resp.status + " " + resp.statusText;
  }

  function reset() {
    if (cleanup) cleanup();
    cleanup = null;
    keyHandler = null;
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = null;
    current = null;
    delete main.dataset.query;
    main.classList.remove("busy");
    clear(main);
  }

  function postJson(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      cache: "no-store",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify(body),
    });
  }

  async function loadNext() {
    let data;
    try {
      const resp = await postJson("/api/next", {annotator: annotator});
      if (!resp.ok) throw new Error(await readError(resp));
      data = await resp.json();
    } catch (e) {
      reset();
      main.appendChild(el("p", {class: "status"}, ["Could not load the next query."]));
      showError("Could not load the next query: " + e.message, function () { clearError(); loadNext(); });
      return;
    }
    clearError();
    reset();
    showProgress(data.progress);
    if (!data.query) {
      renderNone();
      return;
    }
    current = data.query;
    const render = {pair: renderPair, text: renderText, dagger: renderDagger, tamer: renderTamer}[current.kind];
    if (!render) {
      main.appendChild(el("p", {class: "status"}, ["This page cannot show queries of kind " + current.kind + "."]));
      return;
    }
    render(current);
    main.dataset.query = current.id;   // which query is on screen (for scripts and tests driving the page)
    window.scrollTo(0, 0);
  }

  async function submit(value) {
    if (posting || !current) return;   // double clicks and key repeats: one label per query
    posting = true;
    setBusy(true);
    const queryId = current.id;
    try {
      const resp = await postJson("/api/label", {query_id: queryId, annotator: annotator, value: value});
      if (!resp.ok) throw new Error(await readError(resp));
      await resp.json();
    } catch (e) {
      posting = false;
      setBusy(false);
      // Keep the query on screen; a resend of the same label is harmless (the server stores it once).
      showError("The label was not saved: " + e.message, function () { clearError(); submit(value); });
      return;
    }
    clearError();
    await loadNext();
    posting = false;
  }

  function mediaNode(url, mime, alt) {
    if (mime && mime.startsWith("video/")) {
      return el("video", {src: url, autoplay: true, loop: true, muted: true, playsinline: true,
        class: "media", "aria-label": alt});
    }
    return el("img", {src: url, alt: alt, class: "media"});
  }

  function appendIf(parent, node) {
    if (node) parent.appendChild(node);
  }

  function titleNode(payload) {
    return typeof payload.title === "string" && payload.title !== ""
      ? el("h2", {class: "qtitle"}, [payload.title]) : null;
  }

  // optional pair bars {names, values in [-1, 1]}: text via el(), widths from numbers only
  function barsNode(bars) {
    if (!bars || !Array.isArray(bars.names) || !Array.isArray(bars.values)) return null;
    const rows = bars.names.map(function (name, i) {
      const v = Math.max(-1, Math.min(1, Number(bars.values[i]) || 0));
      const fill = el("span", {class: "bar " + (v < 0 ? "neg" : "pos")});
      fill.style.width = (50 * Math.abs(v)).toFixed(1) + "%";
      fill.style.left = (v < 0 ? 50 - 50 * Math.abs(v) : 50).toFixed(1) + "%";
      return el("div", {class: "barrow"}, [
        el("span", {class: "barname"}, [String(name)]),
        el("span", {class: "bartrack"}, [fill]),
        el("span", {class: "barvalue"}, [(v >= 0 ? "+" : "") + v.toFixed(2)]),
      ]);
    });
    return el("div", {class: "bars"}, [el("div", {class: "barhead"}, ["Current estimate"])].concat(rows));
  }

  // ---- pair: two clips side by side ----
  function renderPair(q) {
    const p = q.payload, types = q.media_types || {};
    appendIf(main, titleNode(p));
    main.appendChild(el("p", {class: "ask"}, ["Which clip shows the better behaviour?"]));
    main.appendChild(el("div", {class: "pair"}, [
      el("figure", null, [mediaNode(p.left, types.left, "left clip"), el("figcaption", null, ["Left"])]),
      el("figure", null, [mediaNode(p.right, types.right, "right clip"), el("figcaption", null, ["Right"])]),
    ]));
    appendIf(main, barsNode(p.bars));
    main.appendChild(el("div", {class: "actions"}, [
      button("Left", "← / 1", function () { submit("left"); }, "primary"),
      button("Right", "→ / 2", function () { submit("right"); }, "primary"),
      button("Equal", "= / 3", function () { submit("equal"); }),
      button("Can't tell", "Space / 0 / C", function () { submit("skip"); }, "quiet"),
    ]));
    setHelp("Keys: ← or 1 = left is better · → or 2 = right is better · = or 3 = equal · Space, 0 or C = can't tell");
    keyHandler = function (e) {
      const k = e.key;
      if (k === "ArrowLeft" || k === "1") return submit("left");
      if (k === "ArrowRight" || k === "2") return submit("right");
      if (k === "=" || k === "3") return submit("equal");
      if (k === " " || k === "0" || k === "c" || k === "C") return submit("skip");
      return false;
    };
  }

  // ---- text: prompt and 2..9 responses ----
  const LETTERS = "ABCDEFGHI";

  function responseBox(text, i) {
    return el("div", {class: "response"}, [
      el("div", {class: "rlabel"}, ["Response " + LETTERS[i]]),
      el("div", {class: "rtext"}, [text]),
    ]);
  }

  function renderText(q) {
    const p = q.payload;
    const n = p.responses.length;
    main.appendChild(el("div", {class: "prompt"}, [
      el("div", {class: "rlabel"}, ["Prompt"]), el("div", {class: "rtext"}, [p.prompt]),
    ]));
    if (n === 2) {
      main.appendChild(el("div", {class: "two"}, [responseBox(p.responses[0], 0), responseBox(p.responses[1], 1)]));
      main.appendChild(el("div", {class: "actions"}, [
        button("A is better", "1", function () { submit({ranking: [[0], [1]]}); }, "primary"),
        button("B is better", "2", function () { submit({ranking: [[1], [0]]}); }, "primary"),
        button("Equal", "3", function () { submit({ranking: [[0, 1]]}); }),
        button("Can't tell", "0", function () { submit("skip"); }, "quiet"),
      ]));
      setHelp("Keys: 1 = A is better · 2 = B is better · 3 = equal · 0 or C = can't tell");
      keyHandler = function (e) {
        const k = e.key;
        if (k === "1") return submit({ranking: [[0], [1]]});
        if (k === "2") return submit({ranking: [[1], [0]]});
        if (k === "3") return submit({ranking: [[0, 1]]});
        if (k === "0" || k === "c" || k === "C") return submit("skip");
        return false;
      };
      return;
    }
    renderRanking(p.responses);
  }

  function renderRanking(responses) {
    main.appendChild(el("p", {class: "ask"}, [
      "Order the responses best first: drag them, or use ▲ ▼. Tick \"tie\" when a response is as good as the one above.",
    ]));
    const list = el("ol", {class: "rank"}, []);
    let dragged = null;

    function renumber() {
      const rows = Array.from(list.children);
      rows.forEach(function (row, pos) {
        row.querySelector(".pos").textContent = String(pos + 1);
        const tie = row.querySelector("input.tie");
        if (pos === 0) { tie.checked = false; tie.disabled = true; } else { tie.disabled = false; }
        row.classList.toggle("tied", tie.checked);   // tied rows are drawn joined to the row above
        row.querySelector("button.up").disabled = pos === 0;
        row.querySelector("button.down").disabled = pos === rows.length - 1;
      });
    }

    function move(row, delta) {
      if (delta < 0 && row.previousElementSibling) list.insertBefore(row, row.previousElementSibling);
      else if (delta > 0 && row.nextElementSibling) list.insertBefore(row.nextElementSibling, row);
      renumber();
      row.focus();   // the row, not the button: Enter then submits, as the help line says
    }

    responses.forEach(function (text, i) {
      const tieId = "tie-" + i;
      const row = el("li", {class: "rrow", draggable: "true", tabindex: "0", "data-index": String(i)}, [
        el("div", {class: "rside"}, [
          el("span", {class: "handle", "aria-hidden": "true"}, ["⋮⋮"]),
          el("span", {class: "pos"}, [""]),
          el("button", {type: "button", class: "up small", "aria-label": "move up"}, ["▲"]),
          el("button", {type: "button", class: "down small", "aria-label": "move down"}, ["▼"]),
          el("label", {class: "tielabel", for: tieId}, [
            el("input", {type: "checkbox", class: "tie", id: tieId}, []), " tie with the one above",
          ]),
        ]),
        responseBox(text, i),
      ]);
      row.querySelector("button.up").addEventListener("click", function () { move(row, -1); });
      row.querySelector("button.down").addEventListener("click", function () { move(row, 1); });
      row.querySelector("input.tie").addEventListener("change", renumber);
      row.addEventListener("keydown", function (e) {
        // Alt+↑/↓ on a focused row moves it (keyboard alternative to dragging).
        if (e.altKey && (e.key === "ArrowUp" || e.key === "ArrowDown")) {
          e.preventDefault();
          e.stopPropagation();
          move(row, e.key === "ArrowUp" ? -1 : 1);
        }
      });
      row.addEventListener("dragstart", function (e) {
        dragged = row;
        row.classList.add("dragging");
        e.dataTransfer.effectAllowed = "move";
        e.dataTransfer.setData("text/plain", String(i));   // Firefox needs some data to start a drag
      });
      row.addEventListener("dragend", function () {
        row.classList.remove("dragging");
        dragged = null;
        renumber();
      });
      row.addEventListener("dragover", function (e) {
        if (!dragged || dragged === row) return;
        e.preventDefault();
        const box = row.getBoundingClientRect();
        const after = e.clientY > box.top + box.height / 2;
        list.insertBefore(dragged, after ? row.nextElementSibling : row);
      });
      row.addEventListener("drop", function (e) { e.preventDefault(); renumber(); });
      list.appendChild(row);
    });
    renumber();
    main.appendChild(list);

    function ranking() {
      const groups = [];
      for (const row of list.children) {
        const idx = Number(row.dataset.index);
        if (row.querySelector("input.tie").checked && groups.length) groups[groups.length - 1].push(idx);
        else groups.push([idx]);
      }
      return {ranking: groups};
    }

    main.appendChild(el("div", {class: "actions"}, [
      button("Submit", "Enter", function () { submit(ranking()); }, "primary"),
      button("Can't tell", "0", function () { submit("skip"); }, "quiet"),
    ]));
    setHelp("Drag rows or use ▲ ▼ (Alt+↑/↓ on a focused row) · tick \"tie\" for equal responses · Enter = submit · 0 or C = can't tell");
    keyHandler = function (e) {
      if (e.key === "Enter") return submit(ranking());
      if (e.key === "0" || e.key === "c" || e.key === "C") return submit("skip");
      return false;
    };
  }

  // ---- dagger: the state frame and one button per action ----
  function renderDagger(q) {
    const p = q.payload, types = q.media_types || {};
    appendIf(main, titleNode(p));
    main.appendChild(el("p", {class: "ask"}, ["What should the agent do in this state?"]));
    main.appendChild(el("div", {class: "frame"}, [mediaNode(p.frame, types.frame, "state")]));
    const buttons = p.actions.map(function (name, i) {
      return button(name, i < 9 ? String(i + 1) : null, function () { submit({action: i}); }, "primary");
    });
    buttons.push(button("Can't tell", "0 / C", function () { submit("skip"); }, "quiet"));
    main.appendChild(el("div", {class: "actions"}, buttons));
    setHelp("Keys: 1–" + Math.min(9, p.actions.length) + " = the action with that number · 0, C or Space = can't tell");
    keyHandler = function (e) {
      const k = e.key;
      if (k.length === 1 && k >= "1" && k <= "9") {
        const i = Number(k) - 1;
        if (i < p.actions.length) return submit({action: i});
        return false;
      }
      if (k === "0" || k === "c" || k === "C" || k === " ") return submit("skip");
      return false;
    };
  }

  // ---- tamer: play the clip, record good/bad presses with their time ----
  function renderTamer(q) {
    const p = q.payload, types = q.media_types || {};
    const duration = p.n_steps * p.step_seconds;
    const isVideo = (types.clip || "").startsWith("video/");
    const MAX_EVENTS = 10000;
    let events = [];
    let state = "ready";     // ready -> playing -> done
    let t0 = null;           // performance.now() when the clip started showing
    let tick = null, stopTimer = null;

    appendIf(main, titleNode(p));
    main.appendChild(el("p", {class: "ask"}, [
      "Press Start, then while the clip plays press G / ↑ when the agent does well and B / ↓ when it does badly.",
    ]));
    const stage = el("div", {class: "frame stage"}, [el("div", {class: "placeholder"}, ["Press Start to play the clip"])]);
    main.appendChild(stage);
    const clock = el("span", {class: "clock"}, ["0.0 s / " + duration.toFixed(1) + " s"]);
    const counts = el("span", {class: "counts"}, ["+0 good · −0 bad"]);
    main.appendChild(el("div", {class: "meter"}, [clock, counts]));

    const startBtn = button("Start", "S", start, "primary");
    const goodBtn = button("Good", "G / ↑", function () { record(1); }, "good");
    const badBtn = button("Bad", "B / ↓", function () { record(-1); }, "bad");
    const submitBtn = button("Submit", "Enter", function () { submit({events: events.slice()}); }, "primary");
    goodBtn.disabled = true; badBtn.disabled = true; submitBtn.disabled = true;
    main.appendChild(el("div", {class: "actions"}, [startBtn, goodBtn, badBtn, submitBtn]));

    function elapsed() {
      if (t0 === null) return 0;
      return (performance.now() - t0) / 1000;
    }

    function showCounts() {
      const good = events.filter(function (ev) { return ev.h === 1; }).length;
      counts.textContent = "+" + good + " good · −" + (events.length - good) + " bad";
    }

    function record(h) {
      if (state !== "playing" || t0 === null || events.length >= MAX_EVENTS) return;
      const t = Math.min(elapsed(), duration);
      events.push({t: Math.round(t * 1000) / 1000, h: h});
      showCounts();
      const btn = h === 1 ? goodBtn : badBtn;
      btn.classList.add("flash");
      setTimeout(function () { btn.classList.remove("flash"); }, 150);
    }

    function stopClock() {
      if (tick) clearInterval(tick);
      if (stopTimer) clearTimeout(stopTimer);
      tick = null; stopTimer = null;
    }

    function finish() {
      stopClock();
      state = "done";
      clear(stage);
      stage.appendChild(el("div", {class: "placeholder"}, ["Clip finished. Submit, or Start to redo it."]));
      clock.textContent = duration.toFixed(1) + " s / " + duration.toFixed(1) + " s";
      goodBtn.disabled = true; badBtn.disabled = true;
      startBtn.disabled = false; submitBtn.disabled = false;
      startBtn.firstChild.textContent = "Restart";
      submitBtn.focus();
    }

    function begin() {
      // The clip is on screen now: this is t = 0 for the events.
      t0 = performance.now();
      state = "playing";
      goodBtn.disabled = false; badBtn.disabled = false;
      tick = setInterval(function () {
        clock.textContent = Math.min(elapsed(), duration).toFixed(1) + " s / " + duration.toFixed(1) + " s";
      }, 100);
      stopTimer = setTimeout(finish, duration * 1000);
    }

    function start() {
      if (state === "playing" || posting) return;
      stopClock();
      events = [];
      showCounts();
      t0 = null;
      state = "loading";
      startBtn.disabled = true; submitBtn.disabled = true;
      clear(stage);
      // A fresh URL restarts an animated GIF from its first frame.
      const url = p.clip + "?play=" + Date.now();
      let media;
      if (isVideo) {
        media = el("video", {src: url, muted: true, playsinline: true, class: "media", "aria-label": "clip"});
        media.addEventListener("playing", begin, {once: true});
        media.addEventListener("canplay", function () { media.play(); }, {once: true});
      } else {
        media = el("img", {alt: "clip", class: "media"});
        media.addEventListener("load", begin, {once: true});
        media.src = url;
      }
      media.addEventListener("error", function () {
        state = "ready";
        startBtn.disabled = false;
        showError("The clip could not be loaded.", function () { clearError(); start(); });
      }, {once: true});
      stage.appendChild(media);
    }

    cleanup = stopClock;
    setHelp("Keys: S = start · G or ↑ = good · B or ↓ = bad (while the clip plays) · Enter = submit after the clip ends");
    keyHandler = function (e) {
      const k = e.key;
      if (k === "s" || k === "S") { if (state === "ready" || state === "done") start(); return true; }
      if (k === "g" || k === "G" || k === "ArrowUp") { record(1); return state === "playing"; }
      if (k === "b" || k === "B" || k === "ArrowDown") { record(-1); return state === "playing"; }
      if (k === "Enter" && state === "done") return submit({events: events.slice()});
      return false;
    };
    startBtn.focus();
  }

  // ---- nothing to label: poll again every 2 s ----
  function renderNone() {
    main.appendChild(el("div", {class: "none"}, [
      el("p", {class: "big"}, ["Nothing to label right now"]),
      el("p", {class: "status"}, ["Waiting for new queries… this page checks again every 2 seconds."]),
    ]));
    setHelp("");
    pollTimer = setTimeout(loadNext, 2000);
  }

  document.addEventListener("keydown", function (e) {
    if (!keyHandler || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.repeat) return;   // a held key must not label the next query as well
    const t = e.target;
    const tag = t && t.tagName;
    if ((tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") && e.key === " ") return;   // let checkboxes toggle
    if ((tag === "BUTTON" || tag === "A") && (e.key === " " || e.key === "Enter")) return;   // native activation
    if (posting) { e.preventDefault(); return; }
    const handled = keyHandler(e);
    if (handled !== false) e.preventDefault();
  });

  loadNext();
})();
