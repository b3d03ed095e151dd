"""The command line's words: ``NAME=VALUE`` parameters, ``--flag`` lists and command-name globs, as xo-cli reads them."""

from __future__ import annotations

import fnmatch
import itertools
import json
import re
from typing import Any

from .errors import UsageError

_PARAM = re.compile(r"^([^=]+)=(.*)$", re.DOTALL)


def parse_params(args: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` words into parameters: ``true`` / ``false`` are booleans, ``json:…`` is parsed as JSON,
    anything else is a string; ``@`` (the file to send or receive) is kept as written."""
    params: dict[str, Any] = {}
    for arg in args:
        m = _PARAM.match(arg)
        if m is None:
            raise UsageError(
                f"{arg!r} is not NAME=VALUE (quote values with spaces: name='a b'; see podium --help)"
            )
        name, value = m.group(1), m.group(2)
        parsed: Any = value
        if value.startswith("json:"):
            try:
                parsed = json.loads(value[5:])
            except ValueError as e:
                raise UsageError(f"{name}: the value after json: is not valid JSON ({e})") from None
        elif name != "@" and value in ("true", "false"):
            parsed = value == "true"
        params[name] = parsed
    return params


def expand_braces(pattern: str) -> list[str]:
    """``{user,group}.*`` into ``user.*`` and ``group.*`` (nested groups too), as shells and micromatch do."""
    depth = 0
    start = -1
    commas: list[int] = []
    for i, c in enumerate(pattern):
        if c == "{":
            if depth == 0:
                start, commas = i, []
            depth += 1
        elif c == "}" and depth:
            depth -= 1
            if depth == 0 and commas:
                head, tail = pattern[:start], pattern[i + 1 :]
                bounds = [start, *commas, i]
                options = [pattern[a + 1 : b] for a, b in itertools.pairwise(bounds)]
                return [x for o in options for x in expand_braces(head + o + tail)]
        elif c == "," and depth == 1:
            commas.append(i)
    return [pattern]


def _glob(pattern: str) -> str:
    """A micromatch glob as fnmatch reads it: ``[^…]`` is ``[!…]``."""
    return pattern.replace("[^", "[!")


def match_names(names: list[str], patterns: list[str]) -> list[str]:
    """The names that match any pattern and no ``!pattern``; every name when only negations are given."""
    for pattern in patterns:
        if re.search(r"[@!+*?]\(", pattern):
            raise UsageError(
                f"{pattern!r}: extended globs are not supported (use *, ?, [...], {{a,b}}, !PATTERN)"
            )
    include = [_glob(p) for pat in patterns if not pat.startswith("!") for p in expand_braces(pat)]
    exclude = [_glob(p) for pat in patterns if pat.startswith("!") for p in expand_braces(pat[1:])]
    return [
        n
        for n in names
        if (not include or any(fnmatch.fnmatchcase(n, p) for p in include))
        and not any(fnmatch.fnmatchcase(n, p) for p in exclude)
    ]
