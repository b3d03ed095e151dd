"""Tables. Identifiers are uuids in text; times are UTC; secrets are stored encrypted (see :mod:`.secret`)."""

from __future__ import annotations

import datetime
import uuid

from sqlalchemy import JSON, Boolean, DateTime, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def _uuid() -> str:
    return str(uuid.uuid4())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Base(DeclarativeBase):
    """Base of every table."""


class Server(Base):
    """A pool to connect to, through its master (or any of its hosts)."""

    __tablename__ = "servers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    label: Mapped[str] = mapped_column(String(255), default="")
    host: Mapped[str] = mapped_column(String(512))
    username: Mapped[str] = mapped_column(String(255))
    password: Mapped[bytes] = mapped_column(LargeBinary)  # encrypted by SecretBox
    allow_unauthorized: Mapped[bool] = mapped_column(Boolean, default=False)
    fingerprint: Mapped[str | None] = mapped_column(String(128), nullable=True)
    read_only: Mapped[bool] = mapped_column(Boolean, default=False)
    auto_connect: Mapped[bool] = mapped_column(Boolean, default=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    pool_uuid: Mapped[str | None] = mapped_column(String(36), nullable=True)
    known_hosts: Mapped[list[str]] = mapped_column(JSON, default=list)  # addresses of the pool's hosts
    created: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class User(Base):
    """A person or a script that signs in."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255), default="")  # argon2; empty: no password sign-in
    permission: Mapped[str] = mapped_column(String(16), default="none")  # none, read, write, admin
    preferences: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    created: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Group(Base):
    """A set of users, as a subject of ACLs."""

    __tablename__ = "groups"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    users: Mapped[list[str]] = mapped_column(JSON, default=list)


class Acl(Base):
    """A subject (user or group) holds a role (viewer, operator, admin) on an object."""

    __tablename__ = "acls"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    subject: Mapped[str] = mapped_column(String(36), index=True)
    object: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(16))


class Token(Base):
    """An authentication token, stored as its SHA-256 (and encrypted, so its client can get it again)."""

    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the token
    user_id: Mapped[str] = mapped_column(String(36), index=True)
    client_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    sealed: Mapped[bytes] = mapped_column(LargeBinary)  # the token, encrypted by SecretBox
    created: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    expires: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True))
    last_use: Mapped[datetime.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditRecord(Base):
    """One API call: who, what (secrets redacted), the outcome and how long it took."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    time: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), default=_now, index=True)
    user: Mapped[str] = mapped_column(String(255), default="")
    remote: Mapped[str] = mapped_column(String(64), default="")
    method: Mapped[str] = mapped_column(String(128))
    params: Mapped[object] = mapped_column(JSON, default=dict)
    outcome: Mapped[str] = mapped_column(String(128))
    duration_ms: Mapped[float] = mapped_column(default=0.0)
