"""Podium's persistence behind SQLAlchemy: a SQLite file by default, PostgreSQL by URL.

Public names: :class:`Database`, the table models of :mod:`.models`, and :class:`SecretBox` for
secrets kept encrypted at rest.
"""

from .db import Database
from .models import Acl, AuditRecord, Base, Group, Server, Token, User
from .secret import SecretBox

__all__ = ["Acl", "AuditRecord", "Base", "Database", "Group", "SecretBox", "Server", "Token", "User"]
