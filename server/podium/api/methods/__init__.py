"""The API's namespaces, one module each; importing this package registers their methods."""

from . import (
    acl,
    disk,
    group,
    host,
    message,
    network,
    pool,
    server,
    session,
    sr,
    stats,
    system,
    tag,
    task,
    token,
    updater,
    user,
    vdi,
    vm,
    vm_create,
    vm_transfer,
    xo,
)

__all__ = [
    "acl", "disk", "group", "host", "message", "network", "pool", "server", "session", "sr", "stats", "system",
    "tag", "task", "token", "updater", "user", "vdi", "vm", "vm_create", "vm_transfer", "xo",
]  # fmt: skip
