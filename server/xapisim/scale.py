"""Load for tests: grow a pool to N VMs by cloning its real VMs, and storms of modifications."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from typing import Any

from .database import Database
from .simulator import Pool
from .values import NULL_REF, new_uuid, now

log = logging.getLogger(__name__)

_SET_FIELDS = ("VBDs", "VIFs", "consoles", "snapshots", "children", "crash_dumps", "VUSBs", "VGPUs", "VTPMs")


def _models(db: Database) -> list[str]:
    return [
        ref
        for ref, vm in db.records("VM").items()
        if not vm["is_a_template"] and not vm["is_control_domain"] and not vm["is_a_snapshot"]
    ]


def scale_pool(pool: Pool, vms: int) -> int:
    """Add copies of the pool's real VMs (with their disks, VIFs and metrics) until it has ``vms``."""
    db = pool.db
    models = _models(db)
    if not models:
        raise ValueError(f"pool {pool.name} has no VM to clone")
    missing = vms - len(models)
    hosts = [h for h in pool.hosts if db.get("host", h)]
    for n, src in zip(range(max(0, missing)), itertools.cycle(models), strict=False):
        _clone(db, src, f"{db.records('VM')[src]['name_label']} #{n + 1}", hosts[n % len(hosts)])
    log.info("pool %s scaled to %d VMs", pool.name, len(_models(db)))
    return max(0, missing)


def _copy(db: Database, cls: str, ref: str, **changes: Any) -> str:
    rec = db.records(cls)[ref]
    fields = {k: v for k, v in rec.items() if k not in _SET_FIELDS and k != "uuid"}
    fields["uuid"] = new_uuid()
    fields.update(changes)
    return db.create(cls, fields)


def _clone(db: Database, src: str, name: str, host: str) -> str:
    vm = db.records("VM")[src]
    running = vm["power_state"] == "Running"
    changes: dict[str, Any] = {
        "name_label": name,
        "resident_on": host if running else NULL_REF,
        "allowed_operations": list(vm["allowed_operations"]),
        "current_operations": {},
    }
    for key, cls in (("metrics", "VM_metrics"), ("guest_metrics", "VM_guest_metrics")):
        changes[key] = _copy(db, cls, vm[key]) if db.get(cls, vm[key]) is not None else NULL_REF
    new = _copy(db, "VM", src, **changes)
    for vbd in vm["VBDs"]:
        rec = db.records("VBD")[vbd]
        vdi = rec["VDI"]
        if rec["type"] == "Disk" and db.get("VDI", vdi) is not None:
            vdi = _copy(db, "VDI", vdi, name_label=f"{name} {rec['userdevice']}")
        _copy(db, "VBD", vbd, VM=new, VDI=vdi)
    for vif in vm["VIFs"]:
        _copy(db, "VIF", vif, VM=new)
    return new


class Storm:
    """Modifications at a given rate (per second) on a pool's VMs, until stopped or for a duration."""

    def __init__(
        self, pool: Pool, rate: float, seconds: float | None = None, seed: int | None = None
    ) -> None:
        self.pool = pool
        self.rate = rate
        self.seconds = seconds
        self.done = 0
        self.random = random.Random(seed)
        self.task: asyncio.Task[None] | None = None
        self._targets: list[str] = []

    def start(self) -> None:
        """Begin in the background."""
        self.task = asyncio.get_running_loop().create_task(self._run(), name="storm")

    async def stop(self) -> None:
        """End the storm."""
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        begin = loop.time()
        tick = 0.01
        while self.seconds is None or loop.time() - begin < self.seconds:
            due = int((loop.time() - begin) * self.rate) - self.done
            for _ in range(due):
                self.modify_one()
            await asyncio.sleep(tick)

    def modify_one(self) -> None:
        """One modification of a random VM: its description, other_config, tags or metrics."""
        db = self.pool.db
        if self.done % 1000 == 0 or not self._targets:  # VMs come and go: refresh now and then
            self._targets = _models(db) or list(db.records("VM"))
        ref = self.random.choice(self._targets)
        vm = db.get("VM", ref)
        if vm is None:
            self._targets = []
            return
        kind = self.done % 4
        if kind == 0:  # carries the wall-clock time, so followers can measure their lag
            db.update("VM", ref, name_description=f"storm {self.done} t={time.time():.6f}")
        elif kind == 1:
            db.update("VM", ref, other_config={**vm["other_config"], "storm": str(self.done)})
        elif kind == 2:
            tags = [t for t in vm["tags"] if not t.startswith("storm-")]
            db.update("VM", ref, tags=[*tags, f"storm-{self.done % 7}"])
        elif db.get("VM_metrics", vm["metrics"]) is not None:
            db.update(
                "VM_metrics",
                vm["metrics"],
                memory_actual=self.random.randrange(1, 1 << 33),
                last_updated=now(),
            )
        else:
            db.update("VM", ref, name_description=f"storm {self.done}")
        self.done += 1
