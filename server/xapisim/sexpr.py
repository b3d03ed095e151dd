"""XAPI database dump encodings: S-expression values and the whitespace escapes of attribute values."""

from __future__ import annotations

_WS_ESCAPES = {".": " ", "_": "  ", "t": "\t", "n": "\n", "r": "\r", "%": "%"}


def unescape_spaces(text: str) -> str:
    """Undo xapi's attribute whitespace escapes (``%.`` space, ``%_`` two spaces, ``%n`` …, ``%%``)."""
    if "%" not in text:
        return text
    out = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "%" and i + 1 < n and text[i + 1] in _WS_ESCAPES:
            out.append(_WS_ESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def escape_spaces(text: str) -> str:
    """Apply xapi's attribute whitespace escapes (the inverse of :func:`unescape_spaces`)."""
    text = text.replace("%", "%%").replace("\t", "%t").replace("\n", "%n").replace("\r", "%r")
    return text.replace("  ", "%_")


class SExprError(ValueError):
    """A value that is not a well-formed S-expression."""


SExpr = str | list["SExpr"]


def parse_sexpr(text: str) -> SExpr:
    """Parse one S-expression: ``'atom'`` → str, ``(a b …)`` → list; ``\\'`` and ``\\\\`` escapes."""
    value, pos = _parse(text, _skip(text, 0))
    if _skip(text, pos) != len(text):
        raise SExprError(f"trailing characters at {pos}: {text[pos : pos + 20]!r}")
    return value


def _skip(text: str, pos: int) -> int:
    n = len(text)
    while pos < n and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _parse(text: str, pos: int) -> tuple[SExpr, int]:
    n = len(text)
    if pos >= n:
        raise SExprError("unexpected end of S-expression")
    ch = text[pos]
    if ch == "(":
        items: list[SExpr] = []
        pos = _skip(text, pos + 1)
        while True:
            if pos >= n:
                raise SExprError("unterminated list")
            if text[pos] == ")":
                return items, pos + 1
            item, pos = _parse(text, pos)
            items.append(item)
            pos = _skip(text, pos)
    if ch == "'":
        out = []
        pos += 1
        start = pos
        while True:
            end = text.find("'", pos)
            bs = text.find("\\", pos)
            if bs != -1 and (end == -1 or bs < end):
                out.append(text[start:bs])
                if bs + 1 >= n:
                    raise SExprError("dangling backslash")
                out.append(text[bs + 1])
                pos = start = bs + 2
                continue
            if end == -1:
                raise SExprError("unterminated string")
            out.append(text[start:end])
            return "".join(out), end + 1
    # A bare atom (older dumps write some without quotes).
    end = pos
    while end < n and text[end] not in " \t\r\n()":
        end += 1
    if end == pos:
        raise SExprError(f"unexpected character {ch!r} at {pos}")
    return text[pos:end], end


def format_sexpr(value: SExpr) -> str:
    """Write a value back as xapi does: atoms quoted with ``\\`` escapes, lists in parentheses."""
    if isinstance(value, list):
        return "(" + " ".join(format_sexpr(v) for v in value) + ")"
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
