"""The setup wizard's steps, each on the wizard's own application in this process (aiohttp's test server)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from podium_appliance.box import addresses, tls_check
from podium_appliance.layout import Layout

from ....harness.applianceproc import wizard_client
from ..pki import NOW, Pki, key_pem, make_cert, p256, pem

# The certificate step


@pytest.fixture
def wizard_layout(appliance: Layout) -> Layout:
    """The unit tests' appliance, nginx's test and reload standing in as `true`."""
    with appliance.appliance_toml.open("a") as f:
        f.write('proxy_test = ["true"]\nproxy_reload = ["true"]\n')
    return appliance


def _files(cert: bytes, key: bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("cert", cert, filename="c.pem", content_type="application/x-pem-file")
    form.add_field("key", key, filename="k.pem", content_type="application/x-pem-file")
    return form


async def test_wizard_shows_the_warnings_of_an_uploaded_certificate(
    wizard_layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(addresses, "local_addresses", lambda: ["192.0.2.2", "2001:db8::2"])
    key = p256()
    soon = datetime.now(UTC) + timedelta(days=10, hours=1)
    cert = make_cert("elsewhere.example.com", key, names=["elsewhere.example.com"], not_after=soon)
    done = ("admin", "network", "hostname", "time")
    async with wizard_client(wizard_layout, done) as (client, session):
        session.values["hostname"] = "podium.example.com"
        form = _files(pem(cert), key_pem(key))
        form.add_field("csrf", session.csrf)
        form.add_field("choice", "upload")
        async with client.post("/setup/tls", data=form, allow_redirects=False) as resp:
            page = html.unescape(await resp.text())
        assert resp.status == 200, page  # installed, but shown before going on
        assert wizard_layout.tls_cert.read_bytes() == pem(cert)
        warnings = re.findall(r'<p class="warning" role="status">(.*?)</p>', page, re.S)
        assert len(warnings) == 4, warnings
        assert f"expires on {soon:%Y-%m-%d %H:%M} UTC (in 10 days)" in warnings[0]
        assert "does not name podium.example.com (it names elsewhere.example.com)" in warnings[1]
        assert "self-signed" in warnings[2]
        assert "does not name the appliance's addresses 192.0.2.2, 2001:db8::2" in warnings[3]
        assert "https://192.0.2.2/ will show a warning" in warnings[3]
        assert 'id="installed"' in page and 'href="/setup/pool" id="continue"' in page
        assert "tls" in session.done  # going on is allowed: the warnings are not errors
        async with client.get("/setup/pool", allow_redirects=False) as resp:
            assert resp.status == 200

        # A generated certificate goes on at once; its self-signed warning is the choice just made.
        generate = {"csrf": session.csrf, "choice": "generate"}
        async with client.post("/setup/tls", data=generate, allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/setup/pool"
        # An uploaded certificate without anything to say about it goes on at once too.
        pki = Pki(names=["podium.example.com", "192.0.2.2", "2001:db8::2"])
        form = _files(pem(pki.leaf) + pem(pki.inter), pki.key())
        form.add_field("csrf", session.csrf)
        form.add_field("choice", "upload")
        monkeypatch.setattr(tls_check, "utc", lambda now: NOW if now is None else now)
        async with client.post("/setup/tls", data=form, allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()
