"""``irlhf.label.live``: server options, their refusal for jobs that ask nobody, and a WebSession's life cycle."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from irlhf.core.errors import IrlhfError
from irlhf import cli
from irlhf.label.live import (DEFAULT_PORT, TOKEN_ENV, WebOptions, WebSession, check_server_options, resolve_token,
                              web_options)


def namespace(**changes) -> argparse.Namespace:
    values = dict(db=None, host="127.0.0.1", port=DEFAULT_PORT, token=None, allow_remote=False, n_annotators=1,
                  label_timeout=None, token_file=None)
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


# ------------------------------------------------------------------- the token, kept out of `ps` (issue 19)


def test_token_from_a_file_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    secret = tmp_path / "token"
    secret.write_text("s3cret-Token\n")
    assert resolve_token(None, None) is None
    assert resolve_token(None, str(secret)) == "s3cret-Token"
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert resolve_token(None, None) == "from-env"
    assert resolve_token(None, str(secret)) == "s3cret-Token"  # an option given beats the environment
    assert resolve_token("given", None) == "given"


@pytest.mark.parametrize("token, content, message", [
    ("tok", "other", "--token, --token-file: expected one of them"),
    (None, None, "--token-file '{path}': cannot read it"),
    (None, " \n", "--token-file '{path}' is empty: expected the token on its first line"),
])
def test_bad_token_sources_name_the_option(tmp_path, monkeypatch, token, content, message):
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    with pytest.raises(IrlhfError) as info:
        resolve_token(token, str(path))
    assert str(info.value).startswith(message.format(path=path))


def test_label_job_takes_the_token_from_a_file_or_the_environment(tmp_path, monkeypatch):
    from irlhf.label import server

    calls = []
    monkeypatch.setattr(server, "serve", lambda store, **kw: calls.append(kw["token"]))
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    example = Path(__file__).resolve().parents[2] / "examples" / "label_texts.jsonl"
    argv = ["label", "--db", str(tmp_path / "l.sqlite"), "--task", str(example)]
    (tmp_path / "token").write_text("from-file\n")
    assert cli.main([*argv, "--token-file", str(tmp_path / "token")]) == 0
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert cli.main(argv) == 0
    assert calls == ["from-file", "from-env"]


def test_live_jobs_take_the_token_file_too(tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    (tmp_path / "token").write_text("from-file")
    options = web_options(namespace(token_file=str(tmp_path / "token")), enabled=True, choice="--expert web")
    assert options.token == "from-file"
    monkeypatch.setenv(TOKEN_ENV, "from-env")  # the environment alone is no option given to a job asking nobody
    assert web_options(namespace(), enabled=False, choice="--expert web") is None
    assert web_options(namespace(), enabled=True, choice="--expert web").token == "from-env"
    with pytest.raises(IrlhfError, match="--token-file: labelling-page options only apply with --expert web"):
        web_options(namespace(token_file="t"), enabled=False, choice="--expert web")
