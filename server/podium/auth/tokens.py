"""Authentication tokens: random, stored as SHA-256 (and sealed for their own client), with an expiry."""

from __future__ import annotations

import datetime
import hashlib
import secrets
from typing import Any

from sqlalchemy import select

from ..db import Database, SecretBox, Token
from .errors import InvalidCredentials

DEFAULT_LIFETIME = datetime.timedelta(days=30)
MAX_LIFETIME = datetime.timedelta(days=365)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def digest(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(t: datetime.datetime) -> datetime.datetime:
    return t if t.tzinfo else t.replace(tzinfo=datetime.UTC)


def public(token: Token) -> dict[str, Any]:
    """A token as the API lists it (never the token itself)."""
    return {
        "id": token.id,
        "user_id": token.user_id,
        "client": {"id": token.client_id} if token.client_id else None,
        "description": token.description,
        "created_at": int(_aware(token.created).timestamp() * 1000),
        "expiration": int(_aware(token.expires).timestamp() * 1000),
        "last_uses": {"": {"timestamp": int(_aware(token.last_use).timestamp() * 1000)}}
        if token.last_use
        else {},
    }


class Tokens:
    """The tokens table."""

    def __init__(self, db: Database, secrets_box: SecretBox) -> None:
        self.db = db
        self.box = secrets_box

    async def create(
        self,
        user_id: str,
        lifetime: datetime.timedelta | None = None,
        description: str = "",
        client_id: str | None = None,
    ) -> str:
        """A token for a user; a client that already has a live one gets that one back (longer if asked)."""
        lifetime = min(lifetime or DEFAULT_LIFETIME, MAX_LIFETIME)
        expires = _now() + lifetime
        async with self.db.session() as s, s.begin():
            if client_id:
                existing = await s.scalar(
                    select(Token).where(Token.user_id == user_id, Token.client_id == client_id)
                )
                if existing is not None and _aware(existing.expires) > _now():
                    existing.expires = max(_aware(existing.expires), expires)
                    if description:
                        existing.description = description
                    return self.box.decrypt(existing.sealed)
                if existing is not None:
                    await s.delete(existing)
            token = secrets.token_urlsafe(32)
            s.add(
                Token(
                    id=digest(token),
                    user_id=user_id,
                    client_id=client_id,
                    description=description,
                    sealed=self.box.encrypt(token),
                    expires=expires,
                )
            )
        return token

    async def check(self, token: str) -> str:
        """The user id a live token belongs to (its last use noted), or InvalidCredentials."""
        async with self.db.session() as s, s.begin():
            row = await s.get(Token, digest(token))
            if row is None:
                raise InvalidCredentials("invalid token")
            if _aware(row.expires) <= _now():
                raise InvalidCredentials("this token has expired: create a new one (sign in again)")
            row.last_use = _now()
            return row.user_id

    async def delete(self, token_or_id: str, user_id: str | None = None) -> bool:
        """Delete a token given itself or its id (only the user's own when ``user_id`` is set)."""
        async with self.db.session() as s, s.begin():
            row = await s.get(Token, token_or_id) or await s.get(Token, digest(token_or_id))
            if row is None or (user_id is not None and row.user_id != user_id):
                return False
            await s.delete(row)
            return True

    async def list(self, user_id: str | None = None) -> list[dict[str, Any]]:
        """Tokens (of one user, or all), as the API shows them."""
        async with self.db.session() as s:
            query = select(Token) if user_id is None else select(Token).where(Token.user_id == user_id)
            return [public(t) for t in (await s.scalars(query)).all()]
