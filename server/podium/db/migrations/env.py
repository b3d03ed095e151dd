"""Alembic's environment: run the revisions on the connection :mod:`podium.db.schema` opened.

Online, :mod:`podium.db.schema` passes its connection (in ``config.attributes["connection"]``),
already in the transaction that will commit every revision at once, or none. Offline (``--sql``),
the SQL is written for the URL in ``sqlalchemy.url``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from podium.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_offline() -> None:
    """Write the SQL of the revisions instead of running it."""
    url = config.get_main_option("sqlalchemy.url") or ""
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online(connection: Connection) -> None:
    """Run the revisions on the given connection (SQLite's ALTERs as batch operations)."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        # schema.py's engine wraps SQLite's DDL in a real transaction (BEGIN IMMEDIATE) too.
        transactional_ddl=True,
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    connection = config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("run Podium's migrations through podium.db.schema, which opens the connection")
    run_online(connection)
