"""Podium's root exception: every error a user can meet carries its wire code and says what to do."""

from __future__ import annotations


class PodiumError(Exception):
    """Root of Podium's errors. ``code`` is Xen Orchestra's JSON-RPC error code, ``status`` the HTTP one."""

    code = 11  # XO's "operation failed"
    status = 500

    def __init__(self, message: str, data: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
