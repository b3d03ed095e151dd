"""The one error of the XVA package."""

from __future__ import annotations

from ..errors import PodiumError


class XvaError(PodiumError):
    """The stream is not a valid XVA: ``member`` names the tar member at fault (None: the stream itself).

    The message says which member and what is wrong with it (bad checksum, truncated, out of order,
    unsafe name, absurd size, not a tar …), so that a user can tell a damaged file from a wrong one.
    """

    code = 10  # XO's "invalid parameters": the input, not the server, is at fault
    status = 400

    def __init__(self, member: str | None, problem: str) -> None:
        self.member = member
        self.problem = problem
        super().__init__(f"{member}: {problem}" if member else problem, {"member": member})
