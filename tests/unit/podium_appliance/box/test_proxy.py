"""nginx's configuration as rendered (both modes checked by the real ``nginx -t``), and Proxy's rules:
test before reload, undo what nginx refuses."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from podium_appliance.box.proxy import Proxy, listen_addresses, render
from podium_appliance.box.tls_install import write_pair
from podium_appliance.errors import ApplianceError
from podium_appliance.layout import Layout, Settings

from ....harness.nginxproc import NGINX, Nginx
from .conftest import configure, log_of, recorded

LOOPBACK = ["127.0.0.1"]


# Rendering


def test_setup_mode_sends_everything_to_the_wizard_without_hsts(layout):
    text = render(layout, Settings(wizard_listen="127.0.0.1:9001"), "setup", addresses=LOOPBACK)
    assert text.splitlines()[0] == "# podium-proxy mode=setup"
    assert "Strict-Transport-Security" not in text.replace("proxy_hide_header Strict-Transport-Security", "")
    assert "proxy_pass http://127.0.0.1:9001;" in text
    assert "127.0.0.1:8000" not in text and "return 303" not in text
    confirm = text[text.index("location = /setup/network/confirm") :]
    assert "access_log off;" in confirm.split("}")[0]  # its one-time token stays out of the log
    assert "X-Frame-Options" in text and "frame-ancestors 'none'" in text


def test_ready_mode_sends_everything_to_the_server_with_hsts(layout):
    text = render(layout, Settings(server_listen="127.0.0.1:9000"), "ready", addresses=LOOPBACK)
    assert text.splitlines()[0] == "# podium-proxy mode=ready"
    assert 'add_header Strict-Transport-Security "max-age=31536000" always;' in text
    assert "proxy_pass http://127.0.0.1:9000;" in text and "8001" not in text
    assert "location = /setup {\n        return 303 /;" in text
    assert "location ^~ /setup/ {\n        return 303 /;" in text
    transfers = text.split("location /api/transfers/ {")[1].split("}")[0]
    for line in (
        "client_max_body_size 0;",
        "proxy_request_buffering off;",
        "proxy_buffering off;",
        "proxy_max_temp_file_size 0;",
        "gzip off;",
    ):
        assert line in transfers
    websocket = text.split("location /api/ {")[1].split("}")[0]
    assert "proxy_set_header Upgrade $http_upgrade;" in websocket
    assert "proxy_set_header Connection $connection_upgrade;" in websocket


def test_tls_settings_and_absolute_certificate_paths(tmp_path):
    layout = Layout(Path("relative-root"))
    text = render(layout, Settings(), "ready", addresses=LOOPBACK)
    assert f"ssl_certificate {(Path.cwd() / 'relative-root/etc/podium/tls/podium.crt')};" in text
    assert f"ssl_certificate_key {(Path.cwd() / 'relative-root/etc/podium/tls/podium.key')};" in text
    for line in (
        "ssl_protocols TLSv1.2 TLSv1.3;",
        "ssl_prefer_server_ciphers off;",
        "ssl_session_cache shared:podium_ssl:10m;",
        "ssl_session_tickets off;",
        "server_tokens off;",
    ):
        assert line in text


def test_redirect_keeps_a_port_other_than_443(layout):
    text = render(layout, Settings(http_port=8080, https_port=8443), "ready", addresses=LOOPBACK)
    assert "listen 127.0.0.1:8080 default_server;" in text
    assert "listen 127.0.0.1:8443 ssl http2 default_server;" in text
    assert "return 301 https://$host:8443$request_uri;" in text
    text = render(layout, Settings(), "ready", addresses=LOOPBACK)
    assert "return 301 https://$host$request_uri;" in text


def test_unknown_mode_and_unsafe_values_are_refused(layout):
    with pytest.raises(ApplianceError, match="unknown proxy mode"):
        render(layout, Settings(), "maintenance")
    with pytest.raises(ApplianceError, match="server name"):
        render(layout, Settings(), "ready", server_name="x; include /etc/shadow")
    with pytest.raises(ApplianceError, match="listen address"):
        render(layout, Settings(server_listen="127.0.0.1:8000; }"), "ready")
    with pytest.raises(ApplianceError, match="https_port"):
        render(layout, Settings(https_port=0), "ready")


def test_listen_addresses_come_from_appliance_toml_or_are_all(layout):
    configure(layout)
    assert listen_addresses(layout.settings()) == ["127.0.0.1"]
    layout.appliance_toml.write_text("[proxy]\nhttps_port = 8443\n")
    assert listen_addresses(layout.settings())[0] == "0.0.0.0"
    assert "listen 0.0.0.0:8443 ssl http2" in render(layout, layout.settings(), "ready")


@pytest.mark.skipif(not shutil.which(NGINX), reason="nginx is not installed")
@pytest.mark.parametrize("mode", ["setup", "ready"])
def test_nginx_accepts_the_configuration_in_a_debian_like_main_conf(tmp_path, layout, pair, mode):
    nginx = Nginx(tmp_path / "nginx", tmp_path / "nginx" / "nginx.conf", layout, 8080, 8443)
    nginx.write_appliance_toml()
    write_pair(layout, *pair)
    layout.nginx_conf.parent.mkdir(parents=True)
    layout.nginx_conf.write_text(render(layout, layout.settings(), mode))
    nginx.prefix.mkdir()
    nginx.conf.write_text(nginx.main_conf())
    done = subprocess.run(nginx.commands()["proxy_test"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "[warn]" not in done.stderr


# Proxy


def test_apply_writes_tests_then_reloads_and_knows_its_mode(layout):
    proxy = Proxy(layout, configure(layout))
    assert proxy.mode() is None
    proxy.apply("setup")
    assert proxy.mode() == "setup"
    proxy.apply("ready")
    assert proxy.mode() == "ready"
    assert log_of(layout) == ["test", "reload", "test", "reload"]
    assert layout.nginx_conf.read_text() == render(layout, layout.settings(), "ready")


def test_a_foreign_configuration_has_no_mode(layout):
    layout.nginx_conf.parent.mkdir(parents=True)
    layout.nginx_conf.write_text("server { listen 80; }\n")
    assert Proxy(layout, Settings()).mode() is None
    layout.nginx_conf.write_text("# podium-proxy mode=bogus\n")
    assert Proxy(layout, Settings()).mode() is None


def test_a_refused_configuration_puts_the_previous_one_back(layout):
    Proxy(layout, configure(layout)).apply("setup")
    before = layout.nginx_conf.read_bytes()
    proxy = Proxy(layout, configure(layout, test=["false"]))
    with pytest.raises(ApplianceError, match="nginx refused the configuration"):
        proxy.apply("ready")
    assert layout.nginx_conf.read_bytes() == before
    assert proxy.mode() == "setup"
    assert log_of(layout) == ["test", "reload"]  # no reload after the refusal
    assert [p.name for p in layout.nginx_conf.parent.iterdir()] == ["podium.conf"]  # no temporary left


def test_a_refused_first_configuration_leaves_none(layout):
    proxy = Proxy(layout, configure(layout, test=["false"]))
    with pytest.raises(ApplianceError):
        proxy.apply("setup")
    assert not layout.nginx_conf.exists()
    assert proxy.mode() is None


def test_the_error_quotes_what_nginx_said_not_its_last_line(layout):
    said = (
        '2026/01/01 10:00:00 [emerg] 42#42: unknown directive "bogus" in /etc/nginx/conf.d/podium.conf:3\n'
        "nginx: configuration file /etc/nginx/nginx.conf test failed\n"
    )
    proxy = Proxy(layout, configure(layout, test=recorded(layout, "test", 1, said)))
    with pytest.raises(ApplianceError) as e:
        proxy.apply("ready")
    assert e.value.message == (
        'nginx refused the configuration: unknown directive "bogus" in /etc/nginx/conf.d/podium.conf:3'
    )


def test_a_missing_nginx_is_said_plainly(layout):
    proxy = Proxy(layout, configure(layout, test=["/nonexistent/nginx", "-t"]))
    with pytest.raises(ApplianceError, match="not installed"):
        proxy.apply("ready")


def test_a_failed_reload_is_an_error_after_the_file_is_in_place(layout):
    proxy = Proxy(layout, configure(layout, reload=recorded(layout, "reload", 1, "nginx is not running")))
    with pytest.raises(ApplianceError, match="reloading nginx: nginx is not running"):
        proxy.apply("ready")
    assert proxy.mode() == "ready"  # it passed the test: the next start or reload takes it
