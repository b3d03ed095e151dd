import pytest
from hypothesis import given
from hypothesis import strategies as st

from xapisim.sexpr import SExprError, escape_spaces, format_sexpr, parse_sexpr, unescape_spaces


def test_sexpr_parses_sets_and_maps():
    assert parse_sexpr("('a' 'b')") == ["a", "b"]
    assert parse_sexpr("(('k' 'v') ('k2' ''))") == [["k", "v"], ["k2", ""]]
    assert parse_sexpr("()") == []


def test_sexpr_unescapes_quotes_and_backslashes():
    assert parse_sexpr(r"('it\'s' 'C:\\dir')") == ["it's", "C:\\dir"]


@pytest.mark.parametrize("bad", ["(", "('a'", "'abc", "('a' 'b'))", ")", "('a\\"])
def test_sexpr_rejects_malformed_values(bad):
    with pytest.raises(SExprError):
        parse_sexpr(bad)


sexprs = st.recursive(st.text(), lambda inner: st.lists(inner, max_size=5), max_leaves=20)


@given(sexprs)
def test_sexpr_roundtrips_any_value(value):
    assert parse_sexpr(format_sexpr(value)) == value


def test_spaces_unescape_xapi_escapes():
    assert unescape_spaces("CPU%_%_ X3450%_@ 2.67GHz") == "CPU     X3450  @ 2.67GHz"
    assert unescape_spaces("a%nb%tc%rd%.e%%f") == "a\nb\tc\rd e%f"
    assert unescape_spaces("100%") == "100%"


@given(st.text())
def test_spaces_roundtrip_any_text(text):
    assert unescape_spaces(escape_spaces(text)) == text
