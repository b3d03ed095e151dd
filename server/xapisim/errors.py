"""The failure every XAPI call can end in: an error code and its parameters, as on the wire."""

from __future__ import annotations


class Failure(Exception):
    """A XAPI failure, e.g. ``Failure("HANDLE_INVALID", "VM", ref)``."""

    def __init__(self, code: str, *params: object) -> None:
        self.code = code
        self.params = [str(p) for p in params]
        super().__init__(code, *self.params)

    @property
    def description(self) -> list[str]:
        """``ErrorDescription``: the code followed by its parameters."""
        return [self.code, *self.params]

    def __str__(self) -> str:
        return " ".join(self.description)
