"""Bulk loads without the cyclic garbage collector's full scans.

A full read of a large pool creates millions of long-lived, acyclic objects (records, shaped objects).
While they are being made, each automatic collection rescans all of them, which costs as much time as
the read itself, and once it is over, the first full collection rescans them all again (seen: a pause
of 0.9 s in the middle of 1,000 events/s). :func:`bulk` pauses automatic collection while a synchronous
bulk step runs (it must not span an ``await``, or other tasks would run without the collector), then
freezes what exists into the permanent generation, which later collections skip. Frozen objects are
still freed by reference counting when replaced (records and shaped objects hold no cycles); what a
freeze keeps for ever is only the garbage cycles pending at that instant: a few hundred objects at most.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0


@contextmanager
def bulk() -> Iterator[None]:
    """Pause automatic garbage collection (nestable across concurrent pool reads)."""
    global _depth
    _depth += 1
    if _depth == 1:
        gc.disable()
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            gc.freeze()
            gc.enable()
