"""Pools, their hosts and the simulator that holds them.

Each host of each pool gets its own loopback address (``127.<base>.<pool>.<host>``), written into its
``address`` field, so that the address a member names in HOST_IS_SLAVE is one a client can really
connect to. The master role is the pool record's ``master`` field, moved by ``pool.designate_new_master``
and ``pool.emergency_transition_to_master`` exactly as clients observe it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .database import Database
from .datamodel import DataModel, load_datamodel
from .dbdump import load_dump
from .disks import Disks
from .errors import Failure
from .faults import Faults
from .values import NULL_REF, new_ref, now

log = logging.getLogger(__name__)


@dataclass
class Host:
    """A host of a pool and the address its listener serves."""

    ref: str
    address: str
    pool: Pool
    up: bool = True  # its listener is open
    booting: bool = False  # its xapi is starting: HOST_STILL_BOOTING to what needs it started
    pending: str = ""  # "reboot" or "shutdown" asked: disabled until it reboots (HOST_DISABLED_UNTIL_REBOOT)
    powered_off: bool = False  # shut down by host.shutdown: only a power-on brings it back

    @property
    def record(self) -> dict[str, Any]:
        """The host's database record."""
        rec = self.pool.db.get("host", self.ref)
        assert rec is not None
        return rec

    @property
    def name(self) -> str:
        """The host's name_label."""
        return str(self.record["name_label"])

    @property
    def is_master(self) -> bool:
        """Whether this host holds the pool's master role."""
        return self.pool.master_ref == self.ref


@dataclass
class Pool:
    """One pool: its database and its hosts."""

    index: int
    db: Database
    source: str
    hosts: dict[str, Host] = field(default_factory=dict)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    registrations: dict[str, Any] = field(default_factory=dict)  # legacy event.register, by session
    last_domid: dict[str, int] = field(default_factory=dict)  # per host

    @property
    def ref(self) -> str:
        """The pool object's reference."""
        return next(iter(self.db.records("pool")))

    @property
    def record(self) -> dict[str, Any]:
        """The pool object's record."""
        return self.db.records("pool")[self.ref]

    @property
    def name(self) -> str:
        """The pool's name_label, or its master's name when the pool has none (as XenCenter shows it)."""
        label = self.record.get("name_label") or ""
        if label:
            return str(label)
        master = self.hosts.get(self.master_ref)
        return master.name if master else f"pool{self.index}"

    @property
    def master_ref(self) -> str:
        """The reference of the master host."""
        return str(self.record["master"])

    @property
    def master(self) -> Host:
        """The master host."""
        return self.hosts[self.master_ref]

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run background work of this pool (an Async task), kept referenced until done."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def set_master(self, host_ref: str) -> None:
        """Move the master role to another host; sessions end, as when xapi restarts on a new master."""
        self.db.update("pool", self.ref, master=host_ref)
        self.end_sessions()

    def end_sessions(self) -> int:
        """End every session, as the master's xapi restarting does (sessions are never written to disk:
        ``persist:PersistNothing`` in xapi's data model); returns how many ended."""
        sessions = list(self.db.records("session"))
        for ref in sessions:
            self.db.destroy("session", ref)
        self.db.wake()
        return len(sessions)


class HostSwitch(Protocol):
    """What opens and closes hosts' listeners (:class:`xapisim.http.Listeners`)."""

    async def stop_host(self, host: Host) -> None:
        """Close a host's listener and every connection and call on it."""

    async def start_host(self, host: Host) -> None:
        """Open a host's listener."""


class ConsoleKeeper(Protocol):
    """What keeps console records in step with the VMs (:class:`xapisim.console_records.ConsoleRecords`)."""

    def schedule(self, pool: Pool, vm_ref: str) -> None:
        """Make a VM's console records follow its state once the current call's synchronous work is over."""


class Simulator:
    """Every pool of the simulator, the credentials they accept and their tunables."""

    def __init__(
        self,
        dm: DataModel | None = None,
        user: str = "root",
        password: str = "",
        address_base: int = 42,
        op_seconds: float = 0.05,
        boot_seconds: float = 2.0,
        auth_failure_delay: float = 5.0,
        history: int = 100_000,
        disk_dir: Path | None = None,
    ) -> None:
        self.dm = dm or load_datamodel()
        self.user = user
        self.password = password
        self.address_base = address_base
        self.op_seconds = op_seconds
        self.boot_seconds = boot_seconds  # a rebooting host is unreachable this long (a restarting xapi: 1/4)
        self.auth_failure_delay = auth_failure_delay
        self.history = history
        self.disks = Disks(disk_dir)
        self.faults = Faults()  # failures tests ask for through the control surface
        # calls answered, by the name each was called by (GET /calls: what a client asks, as it asks it)
        self.calls: Counter[str] = Counter()
        self.pools: list[Pool] = []
        self.no_session_methods = {"session.login_with_password", "session.slave_local_login_with_password"}
        self._methods: list[str] | None = None
        self.switch: HostSwitch | None = None  # the listeners, once they exist
        self.consoles: ConsoleKeeper | None = None  # the console records' upkeep, once the listeners exist

    def add_pool(self, path: str | Path) -> Pool:
        """Load a database dump as a new pool, giving each host a loopback address of its own."""
        index = len(self.pools)
        db, report = load_dump(path, self.dm, Database(self.dm, history=self.history))
        pool = Pool(index=index, db=db, source=str(path))
        if len(db.records("pool")) != 1:
            raise ValueError(
                f"{path}: a pool dump holds exactly one pool row, found {len(db.records('pool'))}"
            )
        hosts = sorted(
            db.records("host").items(), key=lambda kv: (kv[0] != pool.master_ref, kv[1]["name_label"])
        )
        for n, (ref, _record) in enumerate(hosts):
            address = f"127.{self.address_base}.{index}.{n + 1}"
            db.records("host")[ref]["address"] = address
            pool.hosts[ref] = Host(ref=ref, address=address, pool=pool)
        if pool.master_ref not in pool.hosts:
            raise ValueError(f"{path}: the pool's master {pool.master_ref} is not a host of the dump")
        self.pools.append(pool)
        log.info("loaded pool %s from %s: %s", pool.name, path, dict(report.rows))
        return pool

    # -- sessions ------------------------------------------------------------------------------
    def login(self, pool: Pool, host: Host, uname: str, pwd: str, originator: str) -> str:
        """Create a session on the pool (the caller checked HOST_IS_SLAVE and the credentials)."""
        return pool.db.create(
            "session",
            {
                "this_host": host.ref,
                "this_user": NULL_REF,
                "last_active": now(),
                "pool": False,
                "is_local_superuser": True,
                "auth_user_name": uname,
                "originator": originator,
                "validation_time": now(),
            },
            ref=new_ref(),
        )

    def credentials_ok(self, uname: str, pwd: str) -> bool:
        """Whether the user name and password are the simulator's."""
        return uname == self.user and pwd == self.password

    def check_session(self, pool: Pool, ref: Any) -> str:
        """The session reference if it is live in this pool, else SESSION_INVALID."""
        if not isinstance(ref, str) or pool.db.get("session", ref) is None:
            raise Failure("SESSION_INVALID", ref if isinstance(ref, str) else "")
        return ref

    def expire_sessions(self) -> int:
        """End every session of every pool (as a restarted xapi does); returns how many ended."""
        return sum(pool.end_sessions() for pool in self.pools)

    def list_methods(self) -> list[str]:
        """Every method name of the data model: the synchronous ``Class.message`` names, as xapi lists them
        (not the ``Class_message`` names it answers too)."""
        if self._methods is None:
            names = [
                f"{cls.name}.{msg.name}" for cls in self.dm.classes.values() for msg in cls.messages.values()
            ]
            names.append("system.listMethods")
            self._methods = sorted(names)
        return self._methods

    def host_at(self, address: str) -> Host | None:
        """The host listening at ``address``."""
        for pool in self.pools:
            for host in pool.hosts.values():
                if host.address == address:
                    return host
        return None

    def host_reached(self, transport: asyncio.BaseTransport | None) -> Host | None:
        """The host whose address a connection reached (None once the connection is gone)."""
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        return self.host_at(sockname[0]) if sockname else None
