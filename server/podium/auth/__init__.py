"""Identity: users and their passwords, sign-in (throttled), tokens.

Public names: :class:`Users`, :class:`Tokens`, and the errors of :mod:`.errors`.
"""

from .errors import AuthError, InvalidCredentials
from .tokens import Tokens
from .users import Users

__all__ = ["AuthError", "InvalidCredentials", "Tokens", "Users"]
