"""Errors of sign-in and identity, with Xen Orchestra's codes."""

from __future__ import annotations

from ..errors import PodiumError


class AuthError(PodiumError):
    """Root of identity errors."""


class InvalidCredentials(AuthError):
    """Wrong user name, password or token (XO's invalidCredentials)."""

    code = 3
    status = 401

    def __init__(self, message: str = "invalid credentials") -> None:
        super().__init__(message)
