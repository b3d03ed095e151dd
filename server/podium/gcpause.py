"""Bulk loads without the cyclic garbage collector's full scans.

A full read of a large pool creates millions of long-lived, acyclic objects (records, shaped objects).
While they are being made, each automatic collection rescans all of them, which costs as much time as
the read itself. :func:`bulk` pauses automatic collection for the duration and then freezes what
exists into the permanent generation, so later collections skip it. Reference counting still frees
these objects when they are replaced; only cycles among them would wait, and they make none.
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
