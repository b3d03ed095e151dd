"""The appliance's one root exception: every failure a person sees says what went wrong and what to do."""

from __future__ import annotations


class ApplianceError(Exception):
    """Something the appliance cannot do; ``message`` is for the person at the console or in the wizard."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
