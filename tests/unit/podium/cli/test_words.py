"""The ``podium`` command line's words and configuration file, without a server."""

from __future__ import annotations

import json
import os

import pytest

from podium.cli import _command_key, parse_globals
from podium.cli.config import Config, config_path, load, save
from podium.cli.errors import UsageError
from podium.cli.params import expand_braces, match_names, parse_params
from podium.cli.rpc import api_url, check_url


def test_params_are_strings_booleans_or_json_as_xo_cli_reads_them() -> None:
    assert parse_params(["a=x", "b=true", "c=false", "d=json:[1, 2, 3]", 'e=json:"true"', "f=", "g=a=b"]) == {
        "a": "x",
        "b": True,
        "c": False,
        "d": [1, 2, 3],
        "e": "true",
        "f": "",
        "g": "a=b",
    }
    assert parse_params(["@=true"]) == {"@": "true"}  # a file may be called true
    assert parse_params(["n=json:42", 'o=json:{"k": null}']) == {"n": 42, "o": {"k": None}}
    with pytest.raises(UsageError, match="'force' is not NAME=VALUE"):
        parse_params(["force"])
    with pytest.raises(UsageError, match="x: the value after json: is not valid JSON"):
        parse_params(["x=json:[1"])


@pytest.mark.parametrize(
    ("pattern", "expanded"),
    [
        ("{user,group}.*", ["user.*", "group.*"]),
        ("vm.{start,stop}", ["vm.start", "vm.stop"]),
        ("{a,b{c,d}}x", ["ax", "bcx", "bdx"]),
        ("{a,b}{1,2}", ["a1", "a2", "b1", "b2"]),
        ("{single}", ["{single}"]),
        ("no.braces", ["no.braces"]),
        ("{unclosed,", ["{unclosed,"]),
    ],
)
def test_braces_expand_like_micromatch(pattern: str, expanded: list[str]) -> None:
    assert expand_braces(pattern) == expanded


def test_names_match_globs_and_negations() -> None:
    names = ["user.create", "user.getAll", "group.create", "vm.start", "vm.getAll"]
    assert match_names(names, ["{user,group}.*"]) == ["user.create", "user.getAll", "group.create"]
    assert match_names(names, ["*.create", "vm.start"]) == ["user.create", "group.create", "vm.start"]
    assert match_names(names, ["!*.getAll"]) == ["user.create", "group.create", "vm.start"]
    assert match_names(names, ["vm.*", "!vm.get*"]) == ["vm.start"]
    assert match_names(names, ["vm.[^s]*"]) == ["vm.getAll"]  # micromatch's negated class
    with pytest.raises(UsageError, match="extended globs"):
        match_names(names, ["!(vm.*)"])


def test_every_spelling_names_the_same_command() -> None:
    for word in ("--register", "register"):
        assert _command_key(word) == "register"
    for word in ("--createToken", "create-token", "--create-token"):
        assert _command_key(word) == "create-token"
    assert _command_key("--listObjects") == _command_key("list-objects") == "list-objects"
    assert _command_key("vm.start") == "vm.start"


def test_global_options_come_before_the_command() -> None:
    g, command, args = parse_globals(["--au", "--url", "https://t@h/", "vm.start", "id=1", "--traceback"])
    assert (g.allow_unauthorized, g.url, g.traceback, command, args) == (
        True,
        "https://t@h/",
        True,
        "vm.start",
        ["id=1"],
    )
    assert parse_globals(["-h", "vm.start"])[1] == "help"
    with pytest.raises(UsageError, match="--url needs a value"):
        parse_globals(["--url"])


def test_urls_are_checked_and_the_api_found_as_xo_lib_finds_it() -> None:
    assert api_url("https://podium.example.net") == "wss://podium.example.net/api/"
    assert api_url("http://127.0.0.1:8000/") == "ws://127.0.0.1:8000/api/"
    assert api_url("https://example.net/xo/") == "wss://example.net/xo/api/"
    for bad in ("podium.example.net", "ftp://x", "https://"):
        with pytest.raises(UsageError):
            check_url(bad)
    with pytest.raises(UsageError) as e:
        check_url("s3cret-token@podium.example.net")
    assert "s3cret" not in e.value.message and "https://podium.example.net" in e.value.message


def test_configuration_is_private_atomic_and_keeps_unknown_keys(tmp_path, capsys) -> None:
    assert config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "podium" / "config.json"
    assert config_path({"HOME": "/home/ann"}) == tmp_path.__class__("/home/ann/.config/podium/config.json")
    path = tmp_path / "podium" / "config.json"
    assert load(path) == Config()
    save(path, Config(server="https://p", token="t", clientId="c", other={"future": 1}))
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert json.loads(path.read_text()) == {"future": 1, "server": "https://p", "token": "t", "clientId": "c"}
    config = load(path)
    assert (config.server, config.token, config.other) == ("https://p", "t", {"future": 1})
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temporary file left
    os.chmod(path, 0o644)
    load(path)
    assert "others may read it" in capsys.readouterr().err
    path.write_text("{not json")
    with pytest.raises(UsageError, match="is not a valid configuration"):
        load(path)
