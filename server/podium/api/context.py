"""What a method sees: the server's services and the connection's signed-in user."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..auth import Acls, Tokens, Users, granted
from ..cache import ObjectCache
from ..config import Settings
from ..db import Database, SecretBox, User
from ..servers import ServerManager
from .audit import Audit
from .errors import NoSuchObject, Unauthorized
from .transfer import Transfers

_LEVELS = {"none": 0, "read": 1, "write": 2, "admin": 3}


@dataclass
class Services:
    """The server's long-lived parts, built once at start."""

    settings: Settings
    db: Database
    secrets: SecretBox
    objects: ObjectCache
    servers: ServerManager
    users: Users
    tokens: Tokens
    acls: Acls
    audit: Audit
    version: str
    connections: set[Any] = field(default_factory=set)  # live API connections, to push rights' changes
    transfers: Transfers = field(default_factory=Transfers)  # pending $getFrom / $sendTo endpoints

    async def rights_changed(self) -> None:
        """Users' rights changed: every connection reloads them and sees objects enter or exit at once."""
        for conn in list(self.connections):
            await conn.refresh()


@dataclass
class Context:
    """One API connection (or one REST request)."""

    services: Services
    remote: str = ""
    user: User | None = None
    perms: dict[str, set[str]] = field(default_factory=dict)  # object id -> actions, from ACLs
    on_sign_in: list[Callable[[Context], None]] = field(default_factory=list)
    on_sign_out: list[Callable[[Context], None]] = field(default_factory=list)

    @property
    def who(self) -> str:
        """The signed-in user's e-mail, for logs and audit ("" when nobody is signed in)."""
        return self.user.email if self.user is not None else ""

    @property
    def is_admin(self) -> bool:
        """Whether the signed-in user is an admin."""
        return self.user is not None and self.user.permission == "admin"

    def require(self, permission: str) -> None:
        """Unauthorized unless the user is signed in with at least this permission."""
        if permission == "none":
            return
        if self.user is None:
            raise Unauthorized()
        if permission != "signed-in" and _LEVELS.get(self.user.permission, 0) < _LEVELS[permission]:
            raise Unauthorized(permission)

    async def load_rights(self) -> None:
        """Read the signed-in user's ACLs (their own and their groups')."""
        self.perms = await self.services.acls.permissions(self.user) if self.user is not None else {}

    def can_see(self, obj: dict[str, Any]) -> bool:
        """Whether the user may see an object (admins see everything; ACLs decide for others)."""
        return self.can(obj, "view")

    def can(self, obj: dict[str, Any], action: str) -> bool:
        """Whether the user may act on an object (view, operate, administrate), directly or inherited."""
        if self.user is None:
            return False
        if self.is_admin:
            return True
        return granted(self.perms, obj, action, self.services.objects.get)

    def object(self, id_: str, types: tuple[str, ...] = (), action: str = "view") -> dict[str, Any]:
        """An object the user may act on; an invisible one is reported as missing, not as forbidden."""
        obj = self.services.objects.get(id_)
        if obj is None or (types and obj["type"] not in types) or not self.can_see(obj):
            raise NoSuchObject(id_, types[0] if len(types) == 1 else None)
        if not self.can(obj, action):
            raise Unauthorized(action, id_, obj["type"])
        return obj
