import pytest

from podium.net import Endpoint, format_fingerprint, ssl_option
from podium.xapi.client import is_write


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("10.0.0.1", "https://10.0.0.1:443"),
        ("10.0.0.1:8080", "https://10.0.0.1:8080"),
        ("http://127.0.0.5:8080", "http://127.0.0.5:8080"),
        ("https://pool.example", "https://pool.example:443"),
        ("[fe80::1]:8443", "https://[fe80::1]:8443"),
        ("http://[2001:db8::5]", "http://[2001:db8::5]:80"),
    ],
)
def test_endpoint_parses_every_way_of_writing_a_host(text, url):
    assert Endpoint.parse(text).url == url


def test_endpoint_follows_an_ipv6_master_in_brackets():
    assert Endpoint.parse("https://10.0.0.1:8443").with_host("fe80::2").url == "https://[fe80::2]:8443"


@pytest.mark.parametrize("bad", ["", "ftp://x", "http://", "host:notaport"])
def test_endpoint_rejects_bad_addresses(bad):
    with pytest.raises(ValueError):
        Endpoint.parse(bad)


def test_fingerprint_must_be_sha256():
    with pytest.raises(ValueError, match="SHA-256"):
        ssl_option(False, "AB:CD")


@pytest.mark.parametrize(
    ("method", "write"),
    [
        ("VM.get_record", False),
        ("event.from", False),
        ("session.logout", False),
        ("VM.start", True),
        ("Async.VM.get_all", False),
        ("Async.VM.clone", True),
        ("VM.set_name_label", True),
    ],
)
def test_read_only_tells_writes_from_reads(method, write):
    assert is_write(method) is write


def test_a_fingerprint_reads_the_same_from_bytes_hex_and_colons():
    digest = bytes(range(32))
    shown = "00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F"
    assert format_fingerprint(digest) == shown
    assert format_fingerprint(digest.hex()) == shown
    assert format_fingerprint(shown.lower()) == shown
