"""Errors of the XAPI client.

XapiError                       anything that went wrong talking to a pool
├── XapiFailure(code, params)   the pool answered with a XAPI failure (HANDLE_INVALID, …)
│   └── AuthenticationFailed    SESSION_AUTHENTICATION_FAILED: wrong user name or password
├── Unreachable                 no answer: connection refused, DNS, reset, host down
├── TlsError                    the certificate is not trusted, or not the pinned one
├── CallTimeout                 the pool took longer than the call's timeout
└── ProtocolError               the answer was not XAPI (HTML error page, garbage)
"""

from __future__ import annotations

from .. import net
from ..errors import PodiumError


class XapiError(PodiumError):
    """Root of the XAPI client's errors."""


class XapiFailure(XapiError):
    """A failure answered by XAPI: its error code and parameters."""

    def __init__(self, code: str, params: list[str] | None = None, method: str = "") -> None:
        self.xapi_code = code
        self.params = [str(p) for p in (params or [])]
        self.method = method
        detail = f"({', '.join(self.params)})" if self.params else ""
        super().__init__(
            f"{code}{detail}" + (f" in {method}" if method else ""), {"code": code, "params": self.params}
        )


class AuthenticationFailed(XapiFailure):
    """The pool refused the user name or password."""

    code = 3


class Unreachable(XapiError, net.Unreachable):
    """The host did not answer (refused, unresolvable, reset or down)."""


class TlsError(XapiError):
    """The host's certificate is not trusted or not the pinned one; ``fingerprint`` is what it presented."""

    def __init__(self, message: str, fingerprint: str = "") -> None:
        super().__init__(message, {"fingerprint": fingerprint})
        self.fingerprint = fingerprint


class CallTimeout(XapiError):
    """A call took longer than its timeout."""


class ProtocolError(XapiError):
    """The answer was not XAPI's."""


class ReadOnly(XapiError):
    """A write was asked of a read-only server."""

    code = 2
    status = 403
