"""Password strength, judged as an attacker would guess (zxcvbn: dictionaries, patterns, keyboard walks)."""

from __future__ import annotations

from zxcvbn import zxcvbn

from ..errors import ApplianceError

MIN_LENGTH = 10
MIN_SCORE = 3  # zxcvbn's "safely unguessable: moderate protection from offline slow-hash attacks"


def check_password(password: str, context: list[str]) -> None:
    """Accept a password strong enough for the appliance's admin, or say why not and how to fix it."""
    if len(password) < MIN_LENGTH:
        raise ApplianceError(f"password: at least {MIN_LENGTH} characters (a few unrelated words work well)")
    if len(password) > 1024:
        raise ApplianceError("password: at most 1024 characters")
    result = zxcvbn(password[:100], user_inputs=[c for c in context if c])
    if result["score"] < MIN_SCORE:
        feedback = result["feedback"]
        advice = " ".join(filter(None, [feedback.get("warning", ""), *feedback.get("suggestions", [])]))
        raise ApplianceError(f"password: too easy to guess. {advice or 'Add another word or two.'}".strip())
