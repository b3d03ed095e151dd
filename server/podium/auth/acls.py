"""ACLs: a subject (user or group) holds a role on an object, inherited down the tree as Xen Orchestra does.

Roles: viewer (view), operator (view, operate), admin (view, operate, administrate). A right on a pool
covers its hosts, SRs, networks, VMs and templates; a right on a VM covers its disks, interfaces and
snapshots; never upwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from ..db import Acl, Database, Group, User
from ..errors import PodiumError

ROLES: dict[str, tuple[str, ...]] = {
    "viewer": ("view",),
    "operator": ("view", "operate"),
    "admin": ("view", "operate", "administrate"),
}
ACTIONS = ("view", "operate", "administrate")

Obj = dict[str, Any]
Lookup = Callable[[str], Obj | None]


class AclError(PodiumError):
    """An ACL, group or subject that is not acceptable."""

    code = 10
    status = 400


def _parents(obj: Obj, lookup: Lookup) -> list[str]:
    """The objects whose rights cover this one (xo-acl-resolver's rules)."""
    t = obj.get("type")
    if t in ("host", "network", "VM-template"):
        return [obj.get("$pool", "")]
    if t in ("SR", "VM", "VM-controller"):
        return [obj.get("$container", "")]
    if t in ("VM-snapshot", "VDI-snapshot"):
        return [obj.get("$snapshot_of", "")]
    if t == "VDI":
        vms = []
        for vbd_id in obj.get("$VBDs", []):
            vbd = lookup(vbd_id)
            if vbd is not None and vbd.get("VM"):
                vms.append(vbd["VM"])
        return [obj.get("$SR", ""), *vms]
    if t == "VBD":
        return [obj.get("VDI", ""), obj.get("VM", "")]
    if t == "VIF":
        return [obj.get("$network", ""), obj.get("$VM", "")]
    if t in ("PIF", "PCI", "task"):
        return [obj.get("$host", "")]
    if t == "PBD":
        return [obj.get("host", ""), obj.get("SR", "")]
    if t == "PUSB":
        return [obj.get("host", "")]
    if t == "VUSB":
        return [obj.get("vm", "")]
    if t == "message":
        return [obj.get("$object", "")]
    return []


def ancestors(obj: Obj, lookup: Lookup) -> tuple[str, ...]:
    """The ids whose rights cover ``obj`` (itself, unless a control domain, and its parents, transitively).

    The same for every user, so it can be computed once per object and shared.
    """
    out: list[str] = [] if obj.get("type") == "VM-controller" else [obj["id"]]
    queue, seen = list(_parents(obj, lookup)), set(out)
    while queue and len(seen) < 64:
        pid = queue.pop()
        if not pid or pid in seen:
            continue
        seen.add(pid)
        parent = lookup(pid)
        if parent is None:
            continue
        if parent.get("type") != "VM-controller":
            out.append(pid)
        queue.extend(_parents(parent, lookup))
    return tuple(out)


def granted_by(perms: dict[str, set[str]], chain: tuple[str, ...], action: str) -> bool:
    """Whether rights on any of an object's ancestors (see :func:`ancestors`) allow ``action``."""
    return any(action in perms.get(a, ()) for a in chain)


def granted(perms: dict[str, set[str]], obj: Obj, action: str, lookup: Lookup, depth: int = 0) -> bool:
    """Whether rights ``perms`` (object id → actions) allow ``action`` on ``obj``, directly or inherited."""
    if obj.get("type") != "VM-controller" and action in perms.get(obj["id"], ()):
        return True
    if depth > 8:
        return False
    for parent_id in _parents(obj, lookup):
        parent = lookup(parent_id) if parent_id else None
        if parent is not None and granted(perms, parent, action, lookup, depth + 1):
            return True
    return False


class Acls:
    """The ACL and group tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def permissions(self, user: User) -> dict[str, set[str]]:
        """A user's rights, their own and their groups': object id → actions."""
        async with self.db.session() as s:
            groups = [g.id for g in (await s.scalars(select(Group))).all() if user.id in (g.users or [])]
            rows = (await s.scalars(select(Acl).where(Acl.subject.in_([user.id, *groups])))).all()
        perms: dict[str, set[str]] = {}
        for row in rows:
            perms.setdefault(row.object, set()).update(ROLES.get(row.action, (row.action,)))
        return perms

    async def groups_of(self, user_id: str) -> list[str]:
        """The ids of the groups a user belongs to."""
        async with self.db.session() as s:
            return [g.id for g in (await s.scalars(select(Group))).all() if user_id in (g.users or [])]

    async def add(self, subject: str, object_id: str, action: str) -> None:
        """Give a subject a role on an object (once)."""
        if action not in ROLES and action not in ACTIONS:
            raise AclError(f"action: one of {', '.join([*ROLES, *ACTIONS])}")
        async with self.db.session() as s, s.begin():
            if await s.get(User, subject) is None and await s.get(Group, subject) is None:
                raise AclError(f"subject: no user or group {subject}")
            exists = await s.scalar(
                select(Acl).where(Acl.subject == subject, Acl.object == object_id, Acl.action == action)
            )
            if exists is None:
                s.add(Acl(subject=subject, object=object_id, action=action))

    async def remove(self, subject: str, object_id: str, action: str) -> bool:
        """Take a role away; False when there was none."""
        async with self.db.session() as s, s.begin():
            row = await s.scalar(
                select(Acl).where(Acl.subject == subject, Acl.object == object_id, Acl.action == action)
            )
            if row is None:
                return False
            await s.delete(row)
            return True

    async def all(self) -> list[dict[str, str]]:
        """Every ACL."""
        async with self.db.session() as s:
            rows = (await s.scalars(select(Acl))).all()
            return [{"id": a.id, "subject": a.subject, "object": a.object, "action": a.action} for a in rows]

    async def forget_subject(self, subject: str) -> None:
        """Remove every ACL of a deleted user or group."""
        async with self.db.session() as s, s.begin():
            for row in (await s.scalars(select(Acl).where(Acl.subject == subject))).all():
                await s.delete(row)
