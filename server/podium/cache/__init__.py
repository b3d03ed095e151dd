"""The live object cache: XAPI records of every pool shaped as Xen Orchestra's objects.

Public names: :class:`ObjectCache` (all objects, indexes, change feed of :class:`Batch`),
:class:`PoolCache` (one pool's records and objects; the sink of its event loop), ``KEPT_CLASSES``.
"""

from .objects import Batch, ObjectCache
from .pool_cache import DuplicatePool, PoolCache
from .xo import KEPT_CLASSES

__all__ = ["KEPT_CLASSES", "Batch", "DuplicatePool", "ObjectCache", "PoolCache"]
