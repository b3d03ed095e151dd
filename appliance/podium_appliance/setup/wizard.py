"""The first-boot web wizard (aiohttp + jinja2), behind nginx, on loopback only.

Each step is validated against reality before the next (a config flow, as Home Assistant's): the setup code
against the file only the console shows, the network by a change that reverts unless confirmed from its new
address, the certificate by nginx accepting it, the pool master by a real login with its certificate pinned.
Pages are plain HTML forms: they work without JavaScript, with a keyboard and a screen reader.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
import zoneinfo
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from aiohttp import web
from multidict import MultiDictProxy

from ..box import addresses
from ..box import host as hostcfg
from ..box.network import DHCP, Network, NetworkConfig, static_config
from ..errors import ApplianceError
from ..layout import Layout, Settings
from ..update.config import CHANNELS
from .completion import Answers, complete
from .setup_code import SetupCode

log = logging.getLogger(__name__)

STEPS = (
    ("admin", "Administrator"),
    ("network", "Network"),
    ("hostname", "Host name"),
    ("time", "Time"),
    ("tls", "Certificate"),
    ("pool", "Pool"),
    ("updates", "Updates"),
    ("finish", "Finish"),
)
COOKIE = "podium_setup"
Form = MultiDictProxy[str | bytes | bytearray | web.FileField]
FORM = web.RequestKey("form", Form)  # the POSTed form, its CSRF token checked
SESSION_IDLE_SECONDS = 3600.0
#: A network confirmation link followed after its change reverted.
LINK_EXPIRED = (
    "This confirmation link has expired: the previous network settings are back. "
    "Enter the setup code to continue."
)
#: Finishing while a network change still waits for its confirmation.
PENDING = "A network change is waiting for confirmation: confirm it, or let it revert, before finishing."

Handler = Callable[[web.Request, "Session"], Awaitable[web.StreamResponse]]


@dataclass
class Session:
    """One person's way through the wizard (in memory: a restarted wizard asks for the code again)."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    done: set[str] = field(default_factory=set)
    seen: float = field(default_factory=time.monotonic)
    values: dict[str, Any] = field(default_factory=dict)
    network_token: str = ""
    notice: str = ""
    code_digest: str = ""  # the setup code it was opened with: a new code ends the session

    def next_step(self) -> str:
        """The first step not done yet."""
        return next((name for name, _ in STEPS if name not in self.done), "finish")


class Wizard:
    """The wizard's state: sessions, the setup code, the appliance's parts it changes."""

    def __init__(self, layout: Layout, settings: Settings) -> None:
        self.layout, self.settings = layout, settings
        self.code = SetupCode(layout)
        self.network = Network(layout, settings)
        self.sessions: dict[str, Session] = {}
        self.finished = asyncio.Event()
        self.lock = asyncio.Lock()  # one change at a time: two browsers must not finish twice
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("podium_appliance.setup", "templates/wizard"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )

    def session_of(self, request: web.Request) -> Session | None:
        """The request's session, if its cookie names a live one."""
        cookie = request.cookies.get(COOKIE, "")
        key = hashlib.sha256(cookie.encode()).hexdigest()
        session = self.sessions.get(key) if cookie else None
        now = time.monotonic()
        if session is not None and (
            now - session.seen > SESSION_IDLE_SECONDS or session.code_digest != self.code_digest()
        ):
            del self.sessions[key]  # idle, or the console replaced the code (it may have been seen)
            return None
        if session is not None:
            session.seen = now
        return session

    def code_digest(self) -> str:
        """A digest of the current setup code (empty when there is none)."""
        code = self.code.current()
        return hashlib.sha256(code.encode()).hexdigest() if code else ""

    def new_session(self, response: web.StreamResponse, request: web.Request) -> Session:
        """A session, its cookie set on ``response``."""
        cookie = secrets.token_urlsafe(32)
        session = Session(code_digest=self.code_digest())
        self.sessions[hashlib.sha256(cookie.encode()).hexdigest()] = session
        secure = request.headers.get("X-Forwarded-Proto", request.scheme) == "https"
        # Lax, not Strict: the network confirmation arrives from the old address (another site), and a
        # Strict cookie set on that response is not sent on the redirect. Every POST carries a CSRF token.
        response.set_cookie(COOKIE, cookie, path="/setup", httponly=True, samesite="Lax", secure=secure)
        return session

    def render(
        self, request: web.Request, page: str, session: Session | None, status: int = 200, **context: Any
    ) -> web.Response:
        """A page of the wizard."""
        context.setdefault("error", "")
        context.setdefault("warnings", [])
        html = self.templates.get_template(f"{page}.html").render(
            steps=STEPS, current=page, session=session, **context
        )
        return web.Response(text=html, status=status, content_type="text/html")


def client_address(request: web.Request) -> str:
    """Who is asking: nginx's X-Real-IP when the request came through it on loopback."""
    remote = request.remote or "?"
    if remote in ("127.0.0.1", "::1") and request.headers.get("X-Real-IP"):
        return request.headers["X-Real-IP"]
    return remote


def _go(step: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/setup/{step}")


def _see_other(step: str) -> web.Response:
    """A redirection to return (not raise), when a cookie goes with it."""
    return web.Response(status=303, headers={"Location": f"/setup/{step}"})


def step_page(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A step's handler: setup not complete, a live session, steps in order, CSRF checked on POST."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        wizard: Wizard = request.app["wizard"]
        if wizard.layout.setup_is_complete():
            raise web.HTTPSeeOther("/")
        session = wizard.session_of(request)
        if session is None:
            raise web.HTTPSeeOther("/setup/")
        step = request.match_info["step"]
        names = [name for name, _ in STEPS]
        if step not in names:
            raise web.HTTPNotFound()
        if any(name not in session.done for name in names[: names.index(step)]):
            raise _go(session.next_step())
        if request.method != "POST":
            return await handler(request, session)
        form = await request.post()
        if not secrets.compare_digest(str(form.get("csrf", "")), session.csrf):
            raise web.HTTPForbidden(text="This form is stale: reload the page and try again.")
        request[FORM] = form
        async with wizard.lock:
            if wizard.layout.setup_is_complete():
                raise web.HTTPSeeOther("/")
            return await handler(request, session)

    return wrapped


async def index(request: web.Request) -> web.StreamResponse:
    """The setup code page (or the first step not done)."""
    wizard: Wizard = request.app["wizard"]
    if wizard.layout.setup_is_complete():
        raise web.HTTPSeeOther("/")
    session = wizard.session_of(request)
    if session is not None:
        raise _go(session.next_step())
    return wizard.render(request, "code", None)


async def enter_code(request: web.Request) -> web.StreamResponse:
    """Check the setup code; a session starts when it is right."""
    wizard: Wizard = request.app["wizard"]
    if wizard.layout.setup_is_complete():
        raise web.HTTPSeeOther("/")
    form = await request.post()
    try:
        wizard.code.check(client_address(request), str(form.get("code", "")))
    except ApplianceError as e:
        return wizard.render(request, "code", None, status=403, error=e.message)
    response = _see_other("admin")
    wizard.new_session(response, request)
    return response


async def admin(request: web.Request, session: Session) -> web.StreamResponse:
    """The administrator's e-mail and password (strong enough, typed twice)."""
    wizard: Wizard = request.app["wizard"]
    if request.method == "GET":
        return wizard.render(request, "admin", session, email=session.values.get("admin_email", ""))
    from .passwords import check_password  # here: the wizard starts at boot, this is the admin step's alone

    form = request[FORM]
    email, password = str(form.get("email", "")).strip(), str(form.get("password", ""))
    try:
        if "@" not in email or " " in email or len(email) > 254:
            raise ApplianceError("e-mail: enter an address like admin@example.com")
        check_password(password, [email, "podium", "admin", "xen", "xcp-ng"])
        if password != str(form.get("password2", "")):
            raise ApplianceError("password: the two passwords differ")
    except ApplianceError as e:
        return wizard.render(request, "admin", session, status=400, error=e.message, email=email)
    session.values.update(admin_email=email, admin_password=password)
    session.done.add("admin")
    raise _go("network")


async def network(request: web.Request, session: Session) -> web.StreamResponse:
    """DHCP or static; a change applies at once and reverts unless confirmed from its new address."""
    wizard: Wizard = request.app["wizard"]
    current = wizard.network.current()
    if request.method == "GET":
        if session.network_token and wizard.network.seconds_left() is None and "network" not in session.done:
            session.network_token = ""
            session.notice = (
                f"The new network settings were not confirmed within "
                f"{wizard.settings.network_confirm_seconds:.0f} s: the previous settings are back."
            )
        notice, session.notice = session.notice, ""
        return wizard.render(request, "network", session, config=current, notice=notice, form={})
    form = request[FORM]
    try:
        wanted = _network_asked(form)
        if wanted == current:
            session.done.add("network")
            raise _go("hostname")
        token = wizard.network.apply_pending(wanted, wizard.settings.network_confirm_seconds)
    except ApplianceError as e:
        page = {"config": current, "notice": "", "form": dict(form)}
        return wizard.render(request, "network", session, status=400, error=e.message, **page)
    session.network_token = token
    session.done.discard("network")  # not done until confirmed: later steps wait
    confirm_url = _confirm_url(request, wizard.settings, wanted, token)
    seconds = wizard.settings.network_confirm_seconds
    return wizard.render(
        request, "network_pending", session, wanted=wanted, confirm_url=confirm_url, seconds=seconds
    )


def _network_asked(form: Form) -> NetworkConfig:
    """The network settings the form asks for, checked."""
    if form.get("mode") == "dhcp":
        return DHCP
    fields = ("address", "netmask", "gateway", "dns")
    return static_config(*(str(form.get(name, "")) for name in fields))


def _confirm_url(request: web.Request, settings: Settings, wanted: NetworkConfig, token: str) -> str:
    port = "" if settings.https_port == 443 else f":{settings.https_port}"
    if wanted.address is not None:
        ip = wanted.address.ip
        where = f"[{ip}]" if ip.version == 6 else str(ip)
    else:  # DHCP: the address is the DHCP server's to choose; the console will show it
        where = urlsplit(f"//{request.host}").hostname or "localhost"
    return f"https://{where}{port}/setup/network/confirm?token={token}"


async def confirm_network(request: web.Request) -> web.StreamResponse:
    """Reached at the new address: the change is kept, and the session continues here."""
    wizard: Wizard = request.app["wizard"]
    token = request.query.get("token", "")
    owner = next((s for s in wizard.sessions.values() if s.network_token and s.network_token == token), None)
    if owner is None or not wizard.network.confirm(token):
        return wizard.render(request, "code", None, status=403, error=LINK_EXPIRED)
    owner.network_token = ""
    owner.done.add("network")
    response = _see_other("hostname")
    fresh = wizard.new_session(response, request)  # this address has no cookie yet
    fresh.done, fresh.values = owner.done, owner.values
    return response


async def hostname(request: web.Request, session: Session) -> web.StreamResponse:
    """The appliance's host name."""
    wizard: Wizard = request.app["wizard"]
    if request.method == "GET":
        return wizard.render(request, "hostname", session, value=session.values.get("hostname", "podium"))
    value = str(request[FORM].get("hostname", ""))
    try:
        hostcfg.set_hostname(wizard.layout, wizard.settings, value)
    except ApplianceError as e:
        return wizard.render(request, "hostname", session, status=400, error=e.message, value=value)
    session.values["hostname"] = hostcfg.check_hostname(value)
    session.done.add("hostname")
    raise _go("time")


async def time_step(request: web.Request, session: Session) -> web.StreamResponse:
    """Time zone and NTP servers; servers that do not answer are shown and must be accepted knowingly."""
    wizard: Wizard = request.app["wizard"]
    zones = sorted(zoneinfo.available_timezones())
    if request.method == "GET":
        return wizard.render(request, "time", session, zones=zones, zone="UTC", ntp="pool.ntp.org")
    form = request[FORM]
    zone, ntp = str(form.get("zone", "")), str(form.get("ntp", ""))
    warnings: list[str] = []
    try:
        zone = hostcfg.check_timezone(zone)
        servers = hostcfg.check_ntp_servers(ntp)
        results = await asyncio.gather(*(hostcfg.sntp_offset(s) for s in servers), return_exceptions=True)
        warnings = [r.message for r in results if isinstance(r, ApplianceError)]
        if len(warnings) == len(servers) and not form.get("accept_unreachable"):
            raise ApplianceError(
                "No NTP server answered. Check the names, or continue without time "
                "synchronisation for now by ticking the box."
            )
        hostcfg.set_time(wizard.layout, wizard.settings, zone, servers)
    except ApplianceError as e:
        page = {"warnings": warnings, "zones": zones, "zone": zone, "ntp": ntp}
        return wizard.render(request, "time", session, status=400, error=e.message, **page)
    session.done.add("time")
    raise _go("tls")


async def tls_step(request: web.Request, session: Session) -> web.StreamResponse:
    """A certificate generated for this host name and its addresses, or one uploaded with its key.

    An uploaded certificate that is installed but not ideal (expiring soon, not naming the appliance's host
    name or addresses, self-signed) is shown with its warnings before going on: the person decides.
    """
    from ..box import tls_check, tls_install  # here: the wizard starts at boot, and this step comes late

    wizard: Wizard = request.app["wizard"]
    current = tls_check.read_info(wizard.layout.tls_cert) if wizard.layout.tls_cert.exists() else None
    if request.method == "GET":
        return wizard.render(request, "tls", session, info=current, installed=False)
    form = request[FORM]
    name = session.values.get("hostname", "podium")
    upload = form.get("choice") == "upload"
    try:
        if upload:
            cert, key = _upload(form.get("cert")), _upload(form.get("key"))
        else:
            cert, key = tls_install.generate_self_signed(name, addresses.local_addresses())
        info = await asyncio.to_thread(tls_install.install, wizard.layout, wizard.settings, cert, key, name)
    except ApplianceError as e:
        return wizard.render(
            request, "tls", session, status=400, error=e.message, info=current, installed=False
        )
    session.values["tls"] = info
    session.done.add("tls")
    if upload:
        ours = await asyncio.to_thread(addresses.local_addresses)
        warnings = [*info.warnings, *tls_check.address_warnings(info.names, ours)]
        if warnings:
            log.info("certificate %s installed with warnings: %s", info.fingerprint, "; ".join(warnings))
            return wizard.render(request, "tls", session, info=info, installed=True, warnings=warnings)
    raise _go("pool")


def _upload(field_value: Any) -> bytes:
    if isinstance(field_value, web.FileField):
        return bytes(field_value.file.read(1 << 20))
    if isinstance(field_value, str) and field_value.strip():
        return field_value.encode()
    raise ApplianceError("certificate: choose both the certificate file (PEM) and its private key")


async def pool_step(request: web.Request, session: Session) -> web.StreamResponse:
    """The first pool: its master found (the address typed may be a member's), the master's fingerprint
    shown and confirmed by the person, then a real login pinned to it."""
    from . import first_pool  # here: the wizard starts at boot, and this step comes late

    wizard: Wizard = request.app["wizard"]
    values = session.values.setdefault("pool", {})
    if request.method == "GET":
        return wizard.render(request, "pool", session, pool=values)
    form = request[FORM]
    action = form.get("action")
    if action == "skip":
        session.values["pool"] = {}
        session.done.add("pool")
        raise _go("updates")
    values.update(host=str(form.get("host", "")).strip(), username=str(form.get("username", "root")).strip())
    try:
        # What was shown belongs to the address it was found from: another address is looked up again.
        if action == "connect" and values.get("fingerprint") and values.get("probed") == values["host"]:
            if not form.get("confirm"):
                raise ApplianceError("Tick the box once you have compared the fingerprint with the host's.")
            password = str(form.get("password", ""))
            checked = await first_pool.check(
                values["master"], values["username"], password, values["fingerprint"]
            )
            values.update(password=password, master=checked.master, name=checked.pool_name)
            session.done.add("pool")
            raise _go("updates")
        session.done.discard("pool")  # until this master is confirmed and logged in to
        for stale in ("fingerprint", "master", "member", "probed", "name", "password"):
            values.pop(stale, None)
        found = await first_pool.find_master(values["host"])
        values.update(
            fingerprint=found.fingerprint, master=found.address, member=found.member, probed=values["host"]
        )
    except ApplianceError as e:
        if isinstance(e, first_pool.StaleFingerprint):
            values.pop("fingerprint", None)
        return wizard.render(request, "pool", session, status=400, error=e.message, pool=values)
    return wizard.render(request, "pool", session, pool=values)


async def updates(request: web.Request, session: Session) -> web.StreamResponse:
    """The update channel, and an HTTP proxy to reach the update server if the site needs one."""
    wizard: Wizard = request.app["wizard"]
    if request.method == "GET":
        return wizard.render(request, "updates", session, channels=CHANNELS, channel="stable", proxy="")
    form = request[FORM]
    channel, proxy = str(form.get("channel", "")), str(form.get("proxy", "")).strip()
    try:
        if channel not in CHANNELS:
            raise ApplianceError(f"channel: one of {', '.join(CHANNELS)}")
        parts = urlsplit(proxy)
        if proxy and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise ApplianceError("proxy: a URL like http://proxy.example.com:3128, or nothing")
    except ApplianceError as e:
        page = {"channels": CHANNELS, "channel": channel, "proxy": proxy}
        return wizard.render(request, "updates", session, status=400, error=e.message, **page)
    session.values.update(channel=channel, update_proxy=proxy)
    session.done.add("updates")
    raise _go("finish")


async def finish(request: web.Request, session: Session) -> web.StreamResponse:
    """The summary, then completion: the server starts with the admin, the wizard locks."""
    wizard: Wizard = request.app["wizard"]
    if request.method == "GET":
        return wizard.render(request, "finish", session, values=session.values)
    if wizard.network.seconds_left() is not None:
        return wizard.render(request, "finish", session, status=409, values=session.values, error=PENDING)
    v = session.values
    answers = answers_of(v)
    try:
        await complete(wizard.layout, wizard.settings, answers)
    except ApplianceError as e:
        return wizard.render(request, "finish", session, status=500, error=e.message, values=v)
    wizard.sessions.clear()
    wizard.finished.set()
    response = wizard.render(request, "done", None, email=answers.admin_email)
    response.del_cookie(COOKIE, path="/setup")
    return response


def answers_of(values: dict[str, Any]) -> Answers:
    """What the wizard's steps decided. The pool is added at its master's address, the one whose
    certificate was confirmed and pinned (a member's would present another certificate)."""
    pool = values.get("pool", {})
    return Answers(
        admin_email=values["admin_email"],
        admin_password=values["admin_password"],
        channel=values.get("channel", "stable"),
        update_proxy=values.get("update_proxy", ""),
        pool_host=pool.get("master", ""),
        pool_username=pool.get("username", ""),
        pool_password=pool.get("password", ""),
        pool_fingerprint=pool.get("fingerprint", ""),
    )


async def _revert_loop(wizard: Wizard) -> None:
    while True:
        try:
            wizard.network.revert_if_due()
        except ApplianceError as e:
            log.error("network: could not put the previous configuration back: %s", e.message)
        except Exception:  # the loop must outlive any failure: it is the way back
            log.exception("network: the revert check failed")
        await asyncio.sleep(1)


async def _background(app: web.Application) -> AsyncIterator[None]:
    wizard: Wizard = app["wizard"]
    task = asyncio.get_running_loop().create_task(_revert_loop(wizard), name="network revert")
    yield
    task.cancel()


def make_app(layout: Layout, settings: Settings) -> web.Application:
    """The wizard's application."""
    app = web.Application(client_max_size=4 << 20)
    app["wizard"] = Wizard(layout, settings)
    app.cleanup_ctx.append(_background)
    app.router.add_get("/", _redirect_setup)
    app.router.add_get("/setup", _redirect_setup)
    app.router.add_get("/setup/", index)
    app.router.add_post("/setup/code", enter_code)
    app.router.add_get("/setup/network/confirm", confirm_network)
    app.router.add_static("/setup/static/", Path(__file__).resolve().parent / "static")
    pages: dict[str, Handler] = {
        "admin": admin,
        "network": network,
        "hostname": hostname,
        "time": time_step,
        "tls": tls_step,
        "pool": pool_step,
        "updates": updates,
        "finish": finish,
    }

    async def dispatch(request: web.Request, session: Session) -> web.StreamResponse:
        return await pages[request.match_info["step"]](request, session)

    app.router.add_route("*", "/setup/{step}", step_page(dispatch))
    return app


async def _redirect_setup(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/setup/")
