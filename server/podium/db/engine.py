"""The database connection: an async SQLAlchemy engine on SQLite (default) or PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from . import schema


class Database:
    """An engine and its session factory; ``create`` brings the schema to the newest revision."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(url)
        if url.startswith("sqlite"):
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.session: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )

    @classmethod
    def in_dir(cls, data_dir: Path) -> Database:
        """The default: a SQLite file ``podium.db`` in the data directory."""
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite+aiosqlite:///{data_dir / 'podium.db'}")

    async def create(self) -> None:
        """Create the tables, or upgrade them to the newest revision (see :mod:`.schema`, whose
        :class:`~.schema.SchemaError` says why a database cannot be used: a newer release's, or not
        Podium's). Runs on an engine of its own, before this one serves anything."""
        await schema.upgrade(self.url)

    async def close(self) -> None:
        """Release the connections."""
        await self.engine.dispose()


def _sqlite_pragmas(conn: object, _record: object) -> None:
    cursor = conn.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not wait for the writer
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
