"""Podium's persistence behind SQLAlchemy: a SQLite file by default, PostgreSQL by URL.

Public names: :class:`Database`, the table models of :mod:`.models`, :class:`SecretBox` for
secrets kept encrypted at rest, and :mod:`.schema` (the schema's revisions, :class:`SchemaError`).
"""

from . import schema
from .engine import Database
from .models import Acl, AuditRecord, Base, Group, Server, Token, User
from .schema import SchemaError
from .secret import SecretBox

__all__ = [
    "Acl",
    "AuditRecord",
    "Base",
    "Database",
    "Group",
    "SchemaError",
    "SecretBox",
    "Server",
    "Token",
    "User",
    "schema",
]
