"""The control surface for tests, apart from XAPI: a JSON HTTP API on its own loopback port.

| request | effect |
|---|---|
| ``GET /pools`` | pools, hosts, addresses, master, up/down, VM counts |
| ``POST /pools/{n}/scale`` ``{"vms": N}`` | grow pool n to N VMs by cloning its real VMs |
| ``POST /pools/{n}/storm`` ``{"rate": R, "seconds": S}`` | R modifications/s (for S seconds, or until stopped) |
| ``DELETE /pools/{n}/storm`` | stop the storm |
| ``POST /pools/{n}/overflow-events`` | forget the event history: outstanding tokens meet EVENTS_LOST |
| ``POST /pools/{n}/hosts/{host}/stop`` / ``start`` | close / reopen a host's listener (name, uuid or ref); ``start`` boots a host that ``host.shutdown`` powered off |
| ``POST /pools/{n}/promote`` ``{"host": H}`` | make another host master (emergency transition) |
| ``POST /drop-connections`` | abort every client connection of every host |
| ``POST /expire-sessions`` | end every session (as a restarted xapi) |
| ``POST /settings`` ``{"op_seconds": s, "boot_seconds": s, "auth_failure_delay": s}`` | tune the simulated time |
| ``POST /faults`` ``{"method": M, "error": [CODE, …], "skip": 0, "times": 1}`` | make calls of M fail (see ``faults.py``) |
| ``GET /faults`` / ``DELETE /faults`` | the faults still armed / disarm them all |
| ``GET /calls`` / ``DELETE /calls`` | how many calls the hosts answered since the start / the last reset, by the name each was made by (``event_from`` apart from ``event.from``) |
"""

from __future__ import annotations

import gc
import logging
from typing import Any

from aiohttp import web

from .faults import TRANSFER_PATHS, Fault
from .http import Listeners
from .messages.host import boot
from .scale import Storm, scale_pool
from .simulator import Host, Pool, Simulator

log = logging.getLogger(__name__)


class Control:
    """The control application bound to one simulator and its listeners."""

    def __init__(self, sim: Simulator, listeners: Listeners) -> None:
        self.sim = sim
        self.listeners = listeners
        self.storms: dict[int, Storm] = {}
        app = web.Application()
        r = app.router
        r.add_get("/pools", self.pools)
        r.add_post("/pools/{n}/scale", self.scale)
        r.add_post("/pools/{n}/storm", self.storm)
        r.add_delete("/pools/{n}/storm", self.storm_stop)
        r.add_post("/pools/{n}/overflow-events", self.overflow)
        r.add_post("/pools/{n}/hosts/{host}/{action:stop|start}", self.host_action)
        r.add_post("/pools/{n}/promote", self.promote)
        r.add_post("/drop-connections", self.drop)
        r.add_post("/expire-sessions", self.expire)
        r.add_post("/settings", self.settings)
        r.add_get("/faults", self.faults)
        r.add_post("/faults", self.fault_add)
        r.add_delete("/faults", self.faults_clear)
        r.add_get("/calls", self.calls)
        r.add_delete("/calls", self.calls_reset)
        self.app = app
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self.url = ""

    async def start(self, address: str = "127.0.0.1", port: int = 0) -> str:
        """Listen; returns the base URL."""
        await self.runner.setup()
        site = web.TCPSite(self.runner, address, port)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.url = f"http://{address}:{port}"
        return self.url

    async def close(self) -> None:
        """Stop storms and the control listener."""
        for storm in self.storms.values():
            await storm.stop()
        await self.runner.cleanup()

    def _pool(self, request: web.Request) -> Pool:
        try:
            return self.sim.pools[int(request.match_info["n"])]
        except (ValueError, IndexError):
            raise web.HTTPNotFound(text="no such pool") from None

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="body is not JSON") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="body is not a JSON object")
        return body

    def _describe(self, pool: Pool) -> dict[str, Any]:
        vms = pool.db.records("VM").values()
        return {
            "index": pool.index,
            "name": pool.name,
            "source": pool.source,
            "vms": sum(1 for v in vms if not v["is_a_template"] and not v["is_control_domain"]),
            "generation": pool.db.generation,
            "records": len(pool.db.class_of),
            "warmed": pool.db.warmed,
            "hosts": [
                {
                    "ref": h.ref,
                    "name": h.name,
                    "uuid": h.record["uuid"],
                    "address": h.address,
                    "url": self.listeners.url(h),
                    "master": h.is_master,
                    "up": h.up,
                }
                for h in pool.hosts.values()
            ],
        }

    async def pools(self, request: web.Request) -> web.Response:
        return web.json_response([self._describe(p) for p in self.sim.pools])

    async def scale(self, request: web.Request) -> web.Response:
        pool = self._pool(request)
        body = await self._body(request)
        vms = body.get("vms")
        if not isinstance(vms, int) or not 0 <= vms <= 100_000:
            raise web.HTTPBadRequest(text="vms must be an integer from 0 to 100000")
        added = scale_pool(pool, vms)
        gc.collect()
        gc.freeze()  # as at start: the new records are long-lived
        return web.json_response({"added": added, **self._describe(pool)})

    async def storm(self, request: web.Request) -> web.Response:
        pool = self._pool(request)
        body = await self._body(request)
        rate, seconds = body.get("rate"), body.get("seconds")
        if not isinstance(rate, int | float) or not 0 < rate <= 100_000:
            raise web.HTTPBadRequest(
                text="rate must be a number of modifications per second (0 < rate <= 100000)"
            )
        if seconds is not None and (not isinstance(seconds, int | float) or seconds <= 0):
            raise web.HTTPBadRequest(text="seconds must be a positive number")
        if pool.index in self.storms:
            await self.storms.pop(pool.index).stop()
        storm = Storm(pool, float(rate), seconds, body.get("seed"))
        storm.start()
        self.storms[pool.index] = storm
        return web.json_response({"rate": rate, "seconds": seconds})

    async def storm_stop(self, request: web.Request) -> web.Response:
        pool = self._pool(request)
        storm = self.storms.pop(pool.index, None)
        if storm is None:
            return web.json_response({"modifications": 0})
        await storm.stop()
        return web.json_response({"modifications": storm.done})

    async def calls(self, request: web.Request) -> web.Response:
        return web.json_response(dict(self.sim.calls))

    async def calls_reset(self, request: web.Request) -> web.Response:
        self.sim.calls.clear()
        return web.json_response({})

    async def overflow(self, request: web.Request) -> web.Response:
        pool = self._pool(request)
        pool.db.overflow_history()
        return web.json_response({"generation": pool.db.generation})

    def _host(self, pool: Pool, key: str) -> Host:
        for h in pool.hosts.values():
            if key in (h.ref, h.name, h.record["uuid"], h.address):
                return h
        raise web.HTTPNotFound(text=f"no host {key} in pool {pool.index}")

    async def host_action(self, request: web.Request) -> web.Response:
        pool = self._pool(request)
        host = self._host(pool, request.match_info["host"])
        if request.match_info["action"] == "stop":
            await self.listeners.stop_host(host)
        elif host.powered_off:  # shut down by host.shutdown: it boots
            await boot(self.sim, host, rebooted=True)
        else:
            await self.listeners.start_host(host)
        log.info("host %s %sed by the control surface", host.name, request.match_info["action"])
        return web.json_response(self._describe(pool))

    async def promote(self, request: web.Request) -> web.Response:
        pool = self._pool(request)
        body = await self._body(request)
        host = self._host(pool, str(body.get("host", "")))
        pool.set_master(host.ref)
        return web.json_response(self._describe(pool))

    async def drop(self, request: web.Request) -> web.Response:
        return web.json_response({"dropped": self.listeners.drop_connections()})

    async def expire(self, request: web.Request) -> web.Response:
        return web.json_response({"expired": self.sim.expire_sessions()})

    async def settings(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        for key in ("op_seconds", "boot_seconds", "auth_failure_delay"):
            if key in body:
                value = body[key]
                if not isinstance(value, int | float) or value < 0 or value > 3600:
                    raise web.HTTPBadRequest(text=f"{key} must be a number of seconds from 0 to 3600")
                setattr(self.sim, key, float(value))
        return web.json_response(
            {
                "op_seconds": self.sim.op_seconds,
                "boot_seconds": self.sim.boot_seconds,
                "auth_failure_delay": self.sim.auth_failure_delay,
            }
        )

    async def faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.sim.faults.describe())

    async def fault_add(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        method, error = body.get("method"), body.get("error")
        skip, times = body.get("skip", 0), body.get("times", 1)
        if not isinstance(method, str) or not (method in TRANSFER_PATHS or "." in method):
            paths = ", ".join(TRANSFER_PATHS)
            raise web.HTTPBadRequest(text=f"method must be a XAPI method (Class.message) or one of {paths}")
        if not isinstance(error, list) or not error or not all(isinstance(e, str) for e in error):
            raise web.HTTPBadRequest(
                text="error must be a list of strings: the XAPI code, then its parameters"
            )
        for key, value in (("skip", skip), ("times", times)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise web.HTTPBadRequest(text=f"{key} must be an integer from 0")
        plain = method.removeprefix("Async.")
        if plain not in TRANSFER_PATHS:
            cls_name, _, msg_name = plain.partition(".")
            cls = self.sim.dm.get(cls_name)
            if cls is None or msg_name not in cls.messages:
                raise web.HTTPBadRequest(text=f"no method {plain} in the data model")
        self.sim.faults.add(Fault(plain, list(error), skip, times))
        log.info("fault armed by the control surface: %s fails with %s", plain, error)
        return web.json_response(self.sim.faults.describe())

    async def faults_clear(self, request: web.Request) -> web.Response:
        return web.json_response({"cleared": self.sim.faults.clear()})
