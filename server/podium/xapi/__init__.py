"""Podium's XAPI client: transports, sessions on pool masters, and the per-pool event loop.

Public names: :class:`XapiClient`, :class:`PoolWatcher` (with its :class:`Sink` and :class:`Status`),
:func:`ask_master`, and the errors of :mod:`.errors`.
"""

from .client import XapiClient, ask_master
from .errors import (
    AuthenticationFailed,
    CallTimeout,
    ProtocolError,
    ReadOnly,
    TlsError,
    Unreachable,
    XapiError,
    XapiFailure,
)
from .watcher import PoolWatcher, Sink, Status

__all__ = [
    "AuthenticationFailed",
    "CallTimeout",
    "PoolWatcher",
    "ProtocolError",
    "ReadOnly",
    "Sink",
    "Status",
    "TlsError",
    "Unreachable",
    "XapiClient",
    "XapiError",
    "XapiFailure",
    "ask_master",
]
