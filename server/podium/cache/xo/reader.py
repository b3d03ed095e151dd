"""What a shaper may read of its pool: other records (noted as dependencies) and the ids of references.

The pool's cache (:class:`~podium.cache.PoolCache`) gives each shaper a :class:`Reader` over its records,
and learns from it what to re-shape when a record changes.
"""

from __future__ import annotations

from typing import Any, Protocol

Record = dict[str, Any]


class Records(Protocol):
    """One pool's raw records, as a reader sees them (the pool's cache)."""

    records: dict[str, Record]
    pool_id: str
    pool_ref: str


class Reader:
    """What a shaper may read: other records (noted as dependencies) and the ids of references.

    A record read with :meth:`get` is a dependency: any change to it re-shapes the object. A reference
    turned into an id with :meth:`id` is a link: the id never changes, so only the target appearing or
    going away re-shapes the object (a VM's change must not re-shape a host listing thousands of VMs).
    """

    __slots__ = ("_cache", "_links", "_reads")

    def __init__(self, cache: Records) -> None:
        self._cache = cache
        self._reads: list[str] = []
        self._links: list[str] = []

    @property
    def pool_id(self) -> str:
        """The pool's uuid."""
        return self._cache.pool_id

    @property
    def pool_ref(self) -> str:
        """The pool object's reference."""
        return self._cache.pool_ref

    def get(self, ref: str) -> Record | None:
        """The record of a reference; the object being shaped will be re-shaped when it changes."""
        if not ref or ref == "OpaqueRef:NULL":
            return None
        self._reads.append(ref)
        return self._cache.records.get(ref)

    def id(self, ref: str) -> str | None:
        """The id (uuid) of the object of a reference, or None for a null or unknown one."""
        if not ref or ref == "OpaqueRef:NULL":
            return None
        self._links.append(ref)
        rec = self._cache.records.get(ref)
        return None if rec is None else str(rec.get("uuid") or ref)

    def ids(self, refs: list[str]) -> list[str]:
        """The ids of a set of references, skipping unknown ones.

        XAPI keeps such sets true itself (a member that comes or goes is a ``mod`` of the owner), so
        only a member not known yet is watched for, to be linked when it arrives.
        """
        records = self._cache.records
        out = []
        for ref in refs:
            rec = records.get(ref)
            if rec is None:
                if ref and ref != "OpaqueRef:NULL":
                    self._links.append(ref)
                continue
            out.append(str(rec.get("uuid") or ref))
        return out
