"""The four kinds of labelling query: what a payload holds, what a label value may be, and their checks.

Every value that reaches the store (from Python or from the web page) is checked here, once, by
``check_payload`` (a query's payload), ``check_label`` (an answer), ``check_media`` and the name checks
(``check_annotator``, ``check_session``, ``check_query_id``); each raises ValidationError (LabelError for
answers and annotator names) naming the bad field, the value and what is expected.

- ``pair``: payload ``{"left": MEDIA, "right": MEDIA, "title"?, "meta"?, "bars"?}`` (bars:
  ``{"names": [str], "values": [float in [-1, 1]]}``, e.g. the current reward estimate, drawn under the clips);
  value "left" | "right" | "equal" | "skip"
- ``text``: payload ``{"prompt": str, "responses": [str] (2..9), "meta"?}``; value ``{"ranking": [[i, ...], ...]}``
  (tie groups, best first, every index once) or "skip"
- ``dagger``: payload ``{"frame": MEDIA, "actions": [str] (2..32), "title"?, "meta"?}``;
  value ``{"action": i}`` or "skip"
- ``tamer``: payload ``{"clip": MEDIA, "n_steps": int >= 1, "step_seconds": float > 0, "title"?, "meta"?}``;
  value ``{"events": [{"t": seconds from the clip's start, "h": 1 | -1}, ...]}`` (no skip: no events is the answer)

MEDIA is the name of an entry of the ``media`` dict given to ``LabelStore.add_query``; the stored payload holds
the media id (32 lowercase hex) instead, which ``LabelStore.media`` resolves to ``(bytes, mime)``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from irlhf.core.errors import IrlhfError, ValidationError, describe

KINDS = ("pair", "text", "dagger", "tamer")
MIME_TYPES = ("image/gif", "image/png", "image/jpeg", "video/mp4")
PAIR_VALUES = ("left", "right", "equal", "skip")
SKIP = "skip"
MAX_STR = 20000
MAX_EVENTS = 10000
TAMER_SLACK_SECONDS = 5.0  # feedback may arrive a little after the clip ends (human reaction time)

ANNOTATOR_RE = re.compile(r"[A-Za-z0-9_.\- ]{1,40}")
SESSION_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
QUERY_ID_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")  # also matches the default uuid4().hex ids
MEDIA_ID_RE = re.compile(r"[0-9a-f]{32}")

# payload fields that name a media entry (ids once stored), per kind
MEDIA_FIELDS = {"pair": ("left", "right"), "text": (), "dagger": ("frame",), "tamer": ("clip",)}
_OPTIONAL_FIELDS = {"pair": ("title", "meta", "bars"), "text": ("meta",), "dagger": ("title", "meta"),
                    "tamer": ("title", "meta")}
_REQUIRED_FIELDS = {"pair": ("left", "right"), "text": ("prompt", "responses"), "dagger": ("frame", "actions"),
                    "tamer": ("clip", "n_steps", "step_seconds")}


class LabelError(ValidationError):
    """A label value (or annotator name) does not fit its query's kind and payload."""


def is_int(x: Any) -> bool:
    """An int and not a bool."""
    return isinstance(x, int) and not isinstance(x, bool)  # True is an int in Python, never an index here


def is_number(x: Any) -> bool:
    """An int or a float and not a bool (finiteness is checked by the caller)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_name(field: str, value: Any, pattern: re.Pattern[str], expected: str,
                error: type[IrlhfError] = ValidationError) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise error(f"{field}={describe(value)}: expected {expected}")
    return value


def check_annotator(annotator: Any) -> str:
    """``annotator`` if it matches ``^[A-Za-z0-9_.\\- ]{1,40}$``, else LabelError."""
    return _check_name("annotator", annotator, ANNOTATOR_RE,
                       "1 to 40 letters, digits, spaces or _ . -", LabelError)


def check_session(session: Any) -> str:
    """``session`` if it matches ``^[A-Za-z0-9_.\\-]{1,64}$``, else ValidationError."""
    return _check_name("session", session, SESSION_RE, "1 to 64 letters, digits or _ . -")


def check_query_id(query_id: Any) -> str:
    """``query_id`` if it matches ``^[A-Za-z0-9_.\\-]{1,64}$``, else ValidationError."""
    return _check_name("query_id", query_id, QUERY_ID_RE, "1 to 64 letters, digits or _ . -")


def _check_strings(field: str, value: Any, error: type[IrlhfError], depth: int = 0) -> None:
    """Every string in a JSON value (keys too) is at most MAX_STR characters."""
    if depth > 64:  # deeper nesting is no real metadata and would blow the recursion limit
        raise error(f"{field}: nested more than 64 levels; expected shallower JSON")
    if isinstance(value, str):
        if len(value) > MAX_STR:
            raise error(f"{field}: a string of {len(value)} characters; expected at most {MAX_STR}")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise error(f"{field}: key {describe(key)}; expected string keys (JSON objects)")
            _check_strings(f"{field}[{key[:40]!r}]", key, error, depth + 1)
            _check_strings(f"{field}[{key[:40]!r}]", item, error, depth + 1)
    elif isinstance(value, (list, tuple)):
        for k, item in enumerate(value):
            _check_strings(f"{field}[{k}]", item, error, depth + 1)


def canonical_json(value: Any) -> str:
    """Canonical JSON text (sorted keys, no NaN) so equal values store as equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def _check_str(field: str, value: Any, *, non_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{field}={describe(value)}: expected a string")
    if non_empty and not value:
        raise ValidationError(f"{field}: empty string; expected a non-empty string")
    if len(value) > MAX_STR:
        raise ValidationError(f"{field}: a string of {len(value)} characters; expected at most {MAX_STR}")
    return value


def _check_str_list(field: str, value: Any, lo: int, hi: int) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not lo <= len(value) <= hi:
        raise ValidationError(f"{field}={describe(value)}: expected a list of {lo} to {hi} strings")
    return [_check_str(f"{field}[{k}]", item, non_empty=True) for k, item in enumerate(value)]


def check_payload(kind: Any, payload: Any, media: Iterable[str] | None = None) -> dict[str, Any]:
    """Validated copy of a query payload of ``kind``; raises ValidationError naming the bad field.

    ``media``: the names of the query's media; every MEDIA field must name one of them. ``None`` checks MEDIA
    fields only as strings (e.g. a stored payload, where they already hold media ids).
    """
    if kind not in KINDS:
        raise ValidationError(f"kind={describe(kind)}: expected one of {', '.join(KINDS)}")
    if not isinstance(payload, Mapping):
        raise ValidationError(f"payload={describe(payload)}: expected a dict for kind {kind!r}")
    allowed = _REQUIRED_FIELDS[kind] + _OPTIONAL_FIELDS[kind]
    unknown = sorted(str(k) for k in payload if k not in allowed)
    if unknown:
        raise ValidationError(f"payload: unknown field(s) {unknown} for kind {kind!r}; expected {list(allowed)}")
    missing = [k for k in _REQUIRED_FIELDS[kind] if k not in payload]
    if missing:
        raise ValidationError(f"payload: missing field(s) {missing} for kind {kind!r}; "
                              f"required {list(_REQUIRED_FIELDS[kind])}")
    out: dict[str, Any] = {}
    names = None if media is None else set(media)
    for field in MEDIA_FIELDS[kind]:
        name = _check_str(f"payload[{field!r}]", payload[field], non_empty=True)
        if names is not None and name not in names:
            raise ValidationError(f"payload[{field!r}]={name!r}: no such media; expected one of {sorted(names)}")
        out[field] = name
    if "title" in payload:
        out["title"] = _check_str("payload['title']", payload["title"])
    if kind == "text":
        out["prompt"] = _check_str("payload['prompt']", payload["prompt"])
        out["responses"] = _check_str_list("payload['responses']", payload["responses"], 2, 9)
    elif kind == "dagger":
        out["actions"] = _check_str_list("payload['actions']", payload["actions"], 2, 32)
    elif kind == "tamer":
        n_steps, step = payload["n_steps"], payload["step_seconds"]
        if not is_int(n_steps) or n_steps < 1:
            raise ValidationError(f"payload['n_steps']={describe(n_steps)}: expected an int >= 1")
        if not is_number(step) or not math.isfinite(step) or step <= 0:
            raise ValidationError(f"payload['step_seconds']={describe(step)}: expected a finite number > 0 (seconds)")
        out["n_steps"], out["step_seconds"] = int(n_steps), float(step)
    if kind == "pair" and "bars" in payload:
        out["bars"] = _check_bars(payload["bars"])
    if "meta" in payload:
        _check_strings("payload['meta']", payload["meta"], ValidationError)
        try:
            out["meta"] = json.loads(canonical_json(payload["meta"]))  # a deep copy that is sure to be plain JSON
        except (TypeError, ValueError) as err:
            raise ValidationError(f"payload['meta']={describe(payload['meta'])}: not JSON ({err}); "
                                  "expected dicts, lists, strings, finite numbers, booleans or None") from None
    return out


def _check_bars(bars: Any) -> dict[str, list[Any]]:
    """A pair's optional ``bars``: {"names": [str] (1..32), "values": [number in [-1, 1]]} of the same length."""
    if not isinstance(bars, Mapping) or set(bars) != {"names", "values"}:
        raise ValidationError(f"payload['bars']={describe(bars)}: expected {{'names': [str], 'values': [float in "
                              "[-1, 1]]}")
    names = _check_str_list("payload['bars']['names']", bars["names"], 1, 32)
    values = bars["values"]
    if (isinstance(values, str) or not isinstance(values, (list, tuple)) or len(values) != len(names)
            or not all(is_number(v) and math.isfinite(v) and -1 <= v <= 1 for v in values)):
        raise ValidationError(f"payload['bars']['values']={describe(values)}: expected {len(names)} numbers in "
                              "[-1, 1] (one per name)")
    return {"names": names, "values": [float(v) for v in values]}


def _check_index(field: str, value: Any, n: int) -> int:
    if not is_int(value) or not 0 <= value < n:
        raise LabelError(f"{field}={describe(value)}: expected an int in 0..{n - 1}")
    return int(value)


def _only_key(value: Any, key: str, kind: str, example: str) -> Any:
    if not isinstance(value, Mapping) or set(value) != {key}:
        raise LabelError(f"value={describe(value)}: expected {example} or 'skip' for kind {kind!r}")
    return value[key]


def check_label(kind: Any, payload: Mapping[str, Any], value: Any) -> Any:
    """Validated, normalised copy of a label ``value`` for a query of ``kind`` with ``payload``; else LabelError.

    Normal forms: text tie groups sorted inside (``[[1, 0]]`` -> ``[[0, 1]]``), tamer ``t`` as float and ``h`` as
    int, so that equal answers compare equal.
    """
    if kind not in KINDS:
        raise LabelError(f"kind={describe(kind)}: expected one of {', '.join(KINDS)}")
    if kind == "pair":
        if value not in PAIR_VALUES or not isinstance(value, str):
            raise LabelError(f"value={describe(value)}: expected one of {', '.join(PAIR_VALUES)} for kind 'pair'")
        return value
    if value == SKIP and kind != "tamer" and isinstance(value, str):
        return SKIP
    if kind == "text":
        n = len(payload["responses"])
        groups = _only_key(value, "ranking", kind, '{"ranking": [[i, ...], ...]}')
        if isinstance(groups, str) or not isinstance(groups, (list, tuple)) or not groups:
            raise LabelError(f"value['ranking']={describe(groups)}: expected a non-empty list of tie groups "
                             "(lists of response indices), best first")
        out, seen = [], set()
        for g, group in enumerate(groups):
            if isinstance(group, str) or not isinstance(group, (list, tuple)) or not group:
                raise LabelError(f"value['ranking'][{g}]={describe(group)}: expected a non-empty list of "
                                 "response indices")
            indices = [_check_index(f"value['ranking'][{g}][{k}]", i, n) for k, i in enumerate(group)]
            for i in indices:
                if i in seen:
                    raise LabelError(f"value['ranking']: response index {i} appears twice; expected every "
                                     f"index 0..{n - 1} exactly once")
                seen.add(i)
            out.append(sorted(indices))
        if len(seen) != n:
            missing = sorted(set(range(n)) - seen)
            raise LabelError(f"value['ranking']: response index(es) {missing} missing; expected every index "
                             f"0..{n - 1} exactly once")
        return {"ranking": out}
    if kind == "dagger":
        action = _only_key(value, "action", kind, '{"action": i}')
        return {"action": _check_index("value['action']", action, len(payload["actions"]))}
    # tamer
    if not isinstance(value, Mapping) or set(value) != {"events"}:
        raise LabelError(f"value={describe(value)}: expected {{'events': [{{'t': seconds, 'h': 1 or -1}}, ...]}} "
                         "for kind 'tamer'")
    events = value["events"]
    if isinstance(events, str) or not isinstance(events, (list, tuple)):
        raise LabelError(f"value['events']={describe(events)}: expected a list of {{'t', 'h'}} events")
    if len(events) > MAX_EVENTS:
        raise LabelError(f"value['events']: {len(events)} events; expected at most {MAX_EVENTS}")
    t_max = payload["n_steps"] * payload["step_seconds"] + TAMER_SLACK_SECONDS
    out_events = []
    for k, event in enumerate(events):
        if not isinstance(event, Mapping) or set(event) != {"t", "h"}:
            raise LabelError(f"value['events'][{k}]={describe(event)}: expected {{'t': seconds, 'h': 1 or -1}}")
        t, h = event["t"], event["h"]
        if not is_number(t) or not math.isfinite(t) or not 0 <= t <= t_max:
            raise LabelError(f"value['events'][{k}]['t']={describe(t)}: expected a finite number of seconds in "
                             f"[0, {t_max:g}] (clip length + {TAMER_SLACK_SECONDS:g} s)")
        if not is_int(h) or h not in (1, -1):
            raise LabelError(f"value['events'][{k}]['h']={describe(h)}: expected 1 or -1")
        out_events.append({"t": float(t), "h": int(h)})
    return {"events": out_events}


def check_media(media: Any) -> dict[str, tuple[bytes, str]]:
    """``{name: (bytes, mime)}`` of a query's media (None: none), non-empty bytes of a MIME_TYPES type."""
    if media is None:
        return {}
    if not isinstance(media, Mapping):
        raise ValidationError(f"media={describe(media)}: expected a dict {{name: (bytes, mime)}}")
    out = {}
    for name, entry in media.items():
        if not isinstance(name, str) or not name or len(name) > MAX_STR:
            raise ValidationError(f"media name {describe(name)}: expected a non-empty string")
        if not isinstance(entry, (tuple, list)) or len(entry) != 2:
            raise ValidationError(f"media[{name!r}]={describe(entry)}: expected a (bytes, mime) pair")
        data, mime = entry
        if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) == 0:
            raise ValidationError(f"media[{name!r}] data {describe(data)}: expected non-empty bytes")
        if mime not in MIME_TYPES:
            raise ValidationError(f"media[{name!r}] mime={describe(mime)}: expected one of {', '.join(MIME_TYPES)}")
        out[name] = (bytes(data), mime)
    return out
