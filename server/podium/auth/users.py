"""Users: argon2-hashed passwords, permissions, the first admin, and sign-in throttled per user."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select

from ..db import Database, User
from ..errors import PodiumError
from .errors import InvalidCredentials

log = logging.getLogger(__name__)

PERMISSIONS = ("none", "read", "write", "admin")
THROTTLE_SECONDS = 2.0  # after a failed sign-in, the user's attempts wait 2 s, as Xen Orchestra


class UserError(PodiumError):
    """A user cannot be created or changed as asked."""

    code = 10
    status = 400


def public(user: User) -> dict[str, Any]:
    """A user as the API shows it: never the password hash."""
    return {
        "id": user.id,
        "email": user.email,
        "permission": user.permission,
        "preferences": user.preferences or {},
        "groups": [],
    }


class Users:
    """The users table, and sign-in by password."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.hasher = PasswordHasher()
        self._last_attempt: dict[str, float] = {}  # user -> time of the last failed sign-in

    async def create(
        self, email: str, password: str, permission: str = "none", password_hash: str = ""
    ) -> User:
        """A new user (e-mail unique, password hashed with argon2, or given already hashed)."""
        email = email.strip()
        if not email:
            raise UserError("email: must not be empty")
        if permission not in PERMISSIONS:
            raise UserError(f"permission: one of {', '.join(PERMISSIONS)}")
        async with self.db.session() as s, s.begin():
            exists = await s.scalar(select(User).where(func.lower(User.email) == email.lower()))
            if exists is not None:
                raise UserError(f"email: a user {email} already exists")
            user = User(
                email=email,
                password_hash=password_hash or (await self._hash(password) if password else ""),
                permission=permission,
            )
            s.add(user)
        return user

    async def _hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)  # argon2 is slow by design: off the loop

    async def get(self, user_id: str) -> User | None:
        """The user of this id."""
        async with self.db.session() as s:
            return await s.get(User, user_id)

    async def by_email(self, email: str) -> User | None:
        """The user of this e-mail (case-insensitive)."""
        async with self.db.session() as s:
            return await s.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))

    async def count(self) -> int:
        """How many users exist."""
        async with self.db.session() as s:
            return int(await s.scalar(select(func.count()).select_from(User)) or 0)

    async def authenticate(self, email: str, password: str) -> User:
        """The user, if the password is theirs. After a failure, the user's next attempts within 2 s are
        refused at once (even a right password), as Xen Orchestra does; a success clears that."""
        key = email.strip().lower()
        last_failure = self._last_attempt.get(key)
        if last_failure is not None and time.monotonic() - last_failure < THROTTLE_SECONDS:
            raise InvalidCredentials(
                f"too many failed sign-ins for {email}: wait {THROTTLE_SECONDS:.0f} s and try again"
            )
        user = await self.by_email(email)
        try:
            if user is None or not user.password_hash:
                await asyncio.to_thread(
                    self._burn, password
                )  # the same cost as a real check: no user probing
                raise InvalidCredentials()
            try:
                await asyncio.to_thread(self.hasher.verify, user.password_hash, password)
            except (VerificationError, InvalidHashError):
                raise InvalidCredentials() from None
        except InvalidCredentials:
            self._last_attempt[key] = time.monotonic()
            log.info("failed sign-in for %s", email)
            raise
        self._last_attempt.pop(key, None)
        if self.hasher.check_needs_rehash(user.password_hash):
            await self.set_password(user.id, password)
        return user

    def _burn(self, password: str) -> None:
        self.hasher.hash(password)

    async def set_password(self, user_id: str, password: str) -> None:
        """Replace a user's password."""
        digest = await self._hash(password)
        async with self.db.session() as s, s.begin():
            user = await s.get(User, user_id)
            if user is not None:
                user.password_hash = digest

    async def ensure_admin(self, data_dir: Path, email: str, password: str, password_hash: str = "") -> None:
        """On the first start, create the admin: the given one (password or its argon2 hash, as the
        appliance's wizard writes it), or one with a random password."""
        if await self.count():
            return
        email = email or "admin@podium.local"
        if password_hash:
            await self.create(email, "", "admin", password_hash=password_hash)
            log.info("created the admin %s", email)
            return
        generated = not password
        if generated:
            password = secrets.token_urlsafe(15)
        await self.create(email, password, "admin")
        if generated:
            _write_secret(data_dir / "initial-admin-password", f"{email}\n{password}\n")
            # Shown once, so that the person who started the server can sign in; never logged again.
            log.warning(
                "created the admin %s with password %s (also in %s, mode 0600)",
                email,
                password,
                data_dir / "initial-admin-password",
            )
        else:
            log.info("created the admin %s", email)

    async def reset_password(self, email: str, password: str = "") -> str:
        """Give a user a new password (a random one unless given) and make them an admin again if they
        were one; the console's way back in. Returns the password."""
        user = await self.by_email(email)
        if user is None:
            raise UserError(f"no user {email}")
        password = password or secrets.token_urlsafe(15)
        await self.set_password(user.id, password)
        self._last_attempt.pop(user.email.lower(), None)
        log.warning("the password of %s was reset from the console", user.email)
        return password


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
