"""`--redis @FILE` and STREAMER_REDIS keep a Redis password off the command line; a password written on the
command line is warned of, once."""

from __future__ import annotations

import pytest
from redis_fixtures import RedisServer

WARNING = "shows in `ps`"


@pytest.fixture
def locked(tmp_path):
    server = RedisServer(tmp_path, password="pw-0123456789abcdef").start()
    yield server
    server.stop()


def test_url_from_a_file_or_the_environment(tmp_path, locked, run_cli, monkeypatch):
    from streamer.cli.common import _warn_password_in_arguments

    _warn_password_in_arguments.cache_clear()  # once a process: this test's command is the first
    secret = tmp_path / "redis-url"
    secret.write_text(locked.url + "\n")
    code, out, err = run_cli("status", "--json", "--redis", f"@{secret}")
    assert code == 0 and out.startswith("{"), err
    assert WARNING not in err and "pw-0123456789abcdef" not in out + err

    code, _, err = run_cli("status", "--json", "--redis", locked.url)  # works, and says why not to
    assert code == 0 and err.count(WARNING) == 1 and "pw-0123456789abcdef" not in err
    code, _, err = run_cli("status", "--json", "--redis", locked.url)
    assert code == 0 and WARNING not in err, "once"

    for value in (locked.url, f"@{secret}"):  # STREAMER_REDIS: no warning (the environment is not in `ps`)
        monkeypatch.setenv("STREAMER_REDIS", value)
        code, out, err = run_cli("status", "--json")
        assert code == 0 and WARNING not in err, err


def test_bad_url_files_say_what_to_do(tmp_path, run_cli):
    empty, two = tmp_path / "empty", tmp_path / "two"
    empty.write_text("\n")
    two.write_text("redis://a:b@h:1/0\nredis://c:d@h:1/0\n")
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00")
    for path, words in (
        (tmp_path / "missing", "cannot read it"),
        (tmp_path, "cannot read it"),
        (tmp_path / "binary", "cannot read it"),
        (empty, "one URL"),
        (two, "one URL"),
    ):
        code, _, err = run_cli("status", "--redis", f"@{path}")
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
        assert "b@h" not in err and ":d@" not in err
