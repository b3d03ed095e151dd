"""The appliance's nginx, for real: redirects, TLS, security headers, both modes, the API's WebSocket, a
2 GiB VM import streamed through it, and a certificate replaced under open connections."""

from __future__ import annotations

import asyncio
import http.client
import json
import shutil
import socket
import ssl
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from podium_appliance.box import tls_check, tls_install
from podium_appliance.box.proxy import Proxy
from podium_appliance.errors import ApplianceError
from podium_appliance.layout import Layout

from ..harness.nginxproc import MB, NGINX, GiB, Nginx, ProxiedApi, start_nginx, trusting, vm_round_trip
from ..harness.serverproc import ADMIN_EMAIL, Server, connected, disk_sr, free_port, pool_ids, start_server
from ..harness.simproc import Sim

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not shutil.which(NGINX), reason="nginx is not installed"),
]

SECURITY_HEADERS = (
    "X-Content-Type-Options",
    "X-Frame-Options",
    "Referrer-Policy",
    "Content-Security-Policy",
    "Permissions-Policy",
)


# Clients


def unverified() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def fetch(
    nginx: Nginx,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    https: bool = True,
    port: int | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request, redirects not followed: status, headers, body."""
    conn: http.client.HTTPConnection
    if https:
        conn = http.client.HTTPSConnection(
            "127.0.0.1", port or nginx.https_port, context=trusting(nginx.layout), timeout=30
        )
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port or nginx.http_port, timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


# Fixtures


def host_port(server: Server) -> str:
    """Where ``server`` listens, as nginx's upstream."""
    return server.url.removeprefix("http://")


def nowhere() -> str:
    """A loopback address nothing listens on: the upstream a test does not use."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def ready(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    """A server (no pool) behind nginx in ready mode, for tests that only read."""
    root = tmp_path_factory.mktemp("ready")
    server = start_server(root / "data")
    try:
        layout = Layout(root / "root")
        nginx = start_nginx(
            root, layout, mode="ready", server_listen=host_port(server), wizard_listen=nowhere()
        )
        yield nginx
        nginx.stop()
    finally:
        server.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path / "data")
    yield srv
    srv.stop()


@pytest.fixture
def proxied(tmp_path: Path, server: Server) -> Iterator[Nginx]:
    """nginx in ready mode in front of this test's server."""
    layout = Layout(tmp_path / "root")
    nginx = start_nginx(
        tmp_path, layout, mode="ready", server_listen=host_port(server), wizard_listen=nowhere()
    )
    yield nginx
    nginx.stop()


@pytest.fixture
async def wizard_port() -> AsyncIterator[int]:
    """A stand-in for the wizard: it answers what it was asked, and a large page at /big."""

    async def echo(request: web.Request) -> web.Response:
        seen = {"stub": "wizard", "path": request.path_qs, "headers": dict(request.headers)}
        return web.json_response(seen)

    async def big(request: web.Request) -> web.Response:
        return web.Response(text="<p>setup</p>\n" * 1000, content_type="text/html")

    app = web.Application()
    app.router.add_get("/big", big)
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port
    await runner.cleanup()


@pytest.fixture
def in_setup(tmp_path: Path, wizard_port: int) -> Iterator[Nginx]:
    """nginx in setup mode in front of the wizard stand-in."""
    wizard = f"127.0.0.1:{wizard_port}"
    nginx = start_nginx(
        tmp_path, Layout(tmp_path / "root"), mode="setup", server_listen=nowhere(), wizard_listen=wizard
    )
    yield nginx
    nginx.stop()


# Plain HTTP and TLS


def test_http_redirects_to_https_keeping_host_port_and_path(ready):
    for method in ("GET", "POST"):
        host = {"Host": f"podium.example.net:{ready.http_port}"}
        status, headers, _ = fetch(ready, "/some/path?a=1&b=2", method=method, https=False, headers=host)
        assert status == 301
        assert headers["Location"] == f"https://podium.example.net:{ready.https_port}/some/path?a=1&b=2"
        assert headers["Server"] == "nginx"  # no version


def test_plain_http_on_the_https_port_is_redirected_too(ready):
    status, headers, _ = fetch(ready, "/x?y", https=False, port=ready.https_port)
    assert status == 301
    assert headers["Location"] == f"https://127.0.0.1:{ready.https_port}/x?y"


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_tls_1_2_and_1_3_are_accepted(ready, version):
    ctx = trusting(ready.layout)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion[version]
    with (
        socket.create_connection(("127.0.0.1", ready.https_port), timeout=10) as sock,
        ctx.wrap_socket(sock, server_hostname="127.0.0.1") as conn,
    ):
        assert conn.version() == version.replace("_", ".")


def test_http2_is_offered(ready):
    ctx = trusting(ready.layout)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", ready.https_port), timeout=10) as sock,
        ctx.wrap_socket(sock, server_hostname="127.0.0.1") as conn,
    ):
        assert conn.selected_alpn_protocol() == "h2"


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_tls_before_1_2_is_refused_by_the_server(ready, version):
    ctx = unverified()
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # the client would offer it: nginx is the one that refuses
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion[version]
    with (
        socket.create_connection(("127.0.0.1", ready.https_port), timeout=10) as sock,
        pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION"),
    ):
        ctx.wrap_socket(sock)


# Ready mode


def test_ready_mode_serves_the_server_with_security_headers_and_hsts(ready):
    status, headers, body = fetch(ready, "/api/health")
    assert status == 200
    assert json.loads(body)["status"] == "ok"
    for name in SECURITY_HEADERS:
        assert headers[name], name
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    csp = headers["Content-Security-Policy"]
    for part in (
        "default-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'self'",
        f"connect-src 'self' wss://127.0.0.1:{ready.https_port}",
        "img-src 'self' data:",
    ):
        assert part in csp
    assert headers["Strict-Transport-Security"] == "max-age=31536000"
    status, headers, _ = fetch(ready, "/no/such/page")  # the server's 404: the headers come along
    assert status == 404 and headers["Strict-Transport-Security"] and headers["X-Frame-Options"]


@pytest.mark.parametrize("path", ["/setup", "/setup/", "/setup/anything?step=2", "/setup/tls"])
def test_ready_mode_sends_the_wizards_addresses_home(ready, path):
    for method in ("GET", "POST"):
        status, headers, _ = fetch(ready, path, method=method)
        assert (status, headers["Location"]) == (303, "/")
        assert headers["Strict-Transport-Security"]


def test_ready_mode_leaves_other_paths_alone(ready):
    assert fetch(ready, "/setupfoo")[0] == 404  # the server's answer, not the redirect


def test_request_bodies_are_limited_outside_transfers(ready):
    status, _, _ = fetch(ready, "/api/health", method="POST", headers={"Content-Length": str(17 * MB)})
    assert status == 413


# Setup mode


async def test_setup_mode_sends_everything_to_the_wizard_without_hsts(in_setup):
    for path in ("/", "/setup/tls?x=1", "/api/health"):
        status, headers, body = await asyncio.to_thread(
            fetch, in_setup, path, headers={"X-Forwarded-For": "203.0.113.66"}
        )
        assert status == 200
        seen = json.loads(body)
        assert seen["stub"] == "wizard" and seen["path"] == path
        assert "Strict-Transport-Security" not in headers
        for name in SECURITY_HEADERS:
            assert headers[name], name
        got = seen["headers"]
        assert got["Host"] == got["X-Forwarded-Host"] == f"127.0.0.1:{in_setup.https_port}"
        assert got["X-Forwarded-Proto"] == "https"
        assert got["X-Real-IP"] == got["X-Forwarded-For"] == "127.0.0.1"  # what the client claimed is dropped


async def test_text_is_compressed(in_setup):
    _, headers, body = await asyncio.to_thread(fetch, in_setup, "/big", headers={"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip" and len(body) < 2000


async def test_apply_switches_a_running_nginx_to_ready_and_refusals_keep_it(tmp_path, in_setup, server):
    layout = in_setup.layout
    in_setup.write_appliance_toml(server_listen=host_port(server))
    proxy = Proxy(layout, layout.settings())
    await asyncio.to_thread(proxy.apply, "ready")
    assert proxy.mode() == "ready"
    # the wizard answers until the reload takes effect, shortly after it returns
    status, headers, body = await until(lambda: fetch(in_setup, "/api/health"), lambda r: b"stub" not in r[2])
    assert status == 200 and json.loads(body)["status"] == "ok" and headers["Strict-Transport-Security"]
    # a configuration nginx's test refuses: the file stays, nginx keeps serving it
    in_setup.write_appliance_toml(server_listen=host_port(server), commands={"proxy_test": ["false"]})
    before = layout.nginx_conf.read_bytes()
    with pytest.raises(ApplianceError, match="nginx refused"):
        Proxy(layout, layout.settings()).apply("setup")
    assert layout.nginx_conf.read_bytes() == before
    assert (await asyncio.to_thread(fetch, in_setup, "/api/health"))[0] == 200


async def until(probe: Any, done: Any, seconds: float = 10) -> Any:
    """Call ``probe`` in a thread until ``done(result)`` (a reload takes effect shortly after it returns)."""
    deadline = time.monotonic() + seconds
    while True:
        result = await asyncio.to_thread(probe)
        if done(result) or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.05)


# The API's WebSocket


async def test_the_api_websocket_works_through_the_proxy(proxied, sim: Sim):
    async with ProxiedApi(proxied, trusting(proxied.layout)) as api:
        assert (await api.sign_in())["email"] == ADMIN_EMAIL
        await connected(api, sim)
        assert (await api.call("session.getUser"))["email"] == ADMIN_EMAIL
        pools = await pool_ids(api)
        assert len(pools) == 1


async def test_a_new_certificate_is_served_while_open_websockets_stay_up(proxied):
    layout = proxied.layout
    old = tls_check.read_info(layout.tls_cert).fingerprint
    assert proxied.served_fingerprint() == old
    cert, key = tls_install.generate_self_signed("localhost", ["127.0.0.1"])  # a new key too
    async with ProxiedApi(proxied, trusting(layout)) as api:
        await api.sign_in()
        info = await asyncio.to_thread(tls_install.install, layout, layout.settings(), cert, key)
        assert info.fingerprint != old
        assert (
            await until(lambda: proxied.served_fingerprint(), lambda f: f == info.fingerprint)
            == info.fingerprint
        )
        # the open WebSocket is served on by the previous worker, which finishes once it closes
        assert (await api.call("session.getUser"))["email"] == ADMIN_EMAIL
        # (an old worker is titled "shutting down" once it has read the master's QUIT: a moment after the new
        # workers answer, so this is waited for too)
        every, current = await until(
            lambda: (proxied.worker_pids(include_old=True), proxied.worker_pids()),
            lambda p: set(p[0]) > set(p[1]),
        )
        assert set(every) > set(current), (every, current)
        async with ProxiedApi(proxied, trusting(layout)) as again:  # new connections trust the new one
            assert (await again.sign_in())["email"] == ADMIN_EMAIL
        other_cert, _ = tls_install.generate_self_signed("localhost", ["127.0.0.1"])
        with pytest.raises(tls_check.TlsError, match="does not belong"):
            tls_install.install(layout, layout.settings(), other_cert, key)
        assert layout.tls_cert.read_bytes() == cert
        assert proxied.served_fingerprint() == info.fingerprint
        assert (await api.call("session.getUser"))["email"] == ADMIN_EMAIL


# A VM import of 2 GiB


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_a_2_gib_vm_import_and_export_stream_through_nginx_in_flat_memory(proxied, sim: Sim, capsys):
    size = 2 * GiB
    async with ProxiedApi(proxied, trusting(proxied.layout)) as api:
        await api.sign_in()
        await connected(api, sim)
        sr = await disk_sr(api, (await pool_ids(api))[0])
        done = await vm_round_trip(api, proxied, sr["id"], size, "through nginx")
    with capsys.disabled():
        print(f"\n{done.up.line()}\n{done.down.line()}")
    assert done.up.length > size and done.down.length > size
    assert done.vm["type"] == "VM" and done.vm["name_label"] == "through nginx"
    assert done.disk_sizes == [size]
    assert done.up.rss_growth_mb < 32 and done.down.rss_growth_mb < 32
    assert (
        done.up.written < MB and done.down.written < MB
    )  # the access log's lines at most, nothing of the streams
    assert not list(proxied.body_temp.iterdir()) and not list((proxied.prefix / "proxy_temp").iterdir())
    assert "temporary file" not in proxied.error_log()
