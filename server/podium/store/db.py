"""The database connection: an async SQLAlchemy engine on SQLite (default) or PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from .models import Base


class Database:
    """An engine and its session factory; ``create`` makes the tables that are missing."""

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
        """Create missing tables."""
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    async def close(self) -> None:
        """Release the connections."""
        await self.engine.dispose()


def _sqlite_pragmas(conn: object, _record: object) -> None:
    cursor = conn.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not wait for the writer
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
