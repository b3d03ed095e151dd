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
