"""Identity: users and their passwords, sign-in (throttled), tokens, groups and ACLs.

Public names: :class:`Users`, :class:`Tokens`, :class:`Acls` (with :func:`granted`), the errors.
"""

from .acls import ROLES, Acls, granted
from .errors import AuthError, InvalidCredentials
from .tokens import Tokens
from .users import Users

__all__ = ["ROLES", "Acls", "AuthError", "InvalidCredentials", "Tokens", "Users", "granted"]
