"""``irlhf.label.live``: server options, their refusal for jobs that ask nobody, and a WebSession's life cycle."""

from __future__ import annotations

import argparse
import pytest

from irlhf.core.errors import IrlhfError
from irlhf.label.live import DEFAULT_PORT, WebOptions, WebSession, check_server_options, web_options


def namespace(**changes) -> argparse.Namespace:
    values = dict(db=None, host="127.0.0.1", port=DEFAULT_PORT, token=None, allow_remote=False, n_annotators=1,
                  label_timeout=None)
    return argparse.Namespace(**{**values, **changes})


@pytest.mark.parametrize("kwargs, message", [
    ({"host": ""}, "--host ''"),
    ({"port": 70000}, "--port 70000: expected an int in 0..65535"),
    ({"token": "a b"}, "--token: expected 1 to 256 letters"),
    ({"host": "10.0.0.1"}, "is not loopback"),
    ({"db": ""}, "--db ''"),
    ({"n_annotators": 0}, "--n-annotators 0: expected an int >= 1"),
    ({"timeout": -1.0}, "--label-timeout -1.0: expected seconds > 0"),
])
def test_web_options_name_the_flag(kwargs, message):
    with pytest.raises(IrlhfError) as info:
        WebOptions(**kwargs)
    assert message in str(info.value)


def test_remote_host_needs_allow_remote_and_token_is_hidden():
    check_server_options("0.0.0.0", 0, "tok", allow_remote=True)
    options = WebOptions(host="0.0.0.0", allow_remote=True, token="secret")
    assert options.to_dict()["token"] == "(set)" and WebOptions().to_dict()["token"] is None


def test_web_options_from_a_namespace():
    assert web_options(namespace(), enabled=False, choice="--expert web") is None
    options = web_options(namespace(port=0, label_timeout=5.0, n_annotators=2), enabled=True, choice="--expert web")
    assert (options.port, options.timeout, options.n_annotators) == (0, 5.0, 2)
    with pytest.raises(IrlhfError, match="--port, --label-timeout: labelling-page options only apply with "
                                         "--trainer web"):
        web_options(namespace(port=0, label_timeout=5.0), enabled=False, choice="--trainer web")


def test_session_life_cycle(tmp_path, capsys):
    session = WebSession(WebOptions(port=0), "tamer", str(tmp_path / "out"))
    with pytest.raises(IrlhfError, match="start"):
        session.session
    with session:
        run = session.start()
        assert session.session == run.path.name and (run.path / "labels.sqlite").exists()
        assert session.url.startswith("http://127.0.0.1:")
        assert session.trainer("MountainCar-v0") is not None
        name, line = session.export()
        assert name == "labels.jsonl" and (run.path / name).read_text() == "" and "0 labels on 0 queries" in line
    assert "people label at" in capsys.readouterr().out and session.server is None
    assert run.path.is_dir()  # something was written: the run is kept


def test_empty_run_directory_is_removed_on_close(tmp_path):
    with WebSession(WebOptions(port=0, db=str(tmp_path / "elsewhere.sqlite")), "dagger", str(tmp_path / "o")) as s:
        run = s.start()
    assert not run.path.exists() and (tmp_path / "elsewhere.sqlite").exists()
