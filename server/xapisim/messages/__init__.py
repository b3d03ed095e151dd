"""Handlers of the explicit messages the simulator implements; importing this package registers them."""

from . import event, host, message, session, storage, task, vm, vm_clone, vm_config, vm_migrate

__all__ = [
    "event",
    "host",
    "message",
    "session",
    "storage",
    "task",
    "vm",
    "vm_clone",
    "vm_config",
    "vm_migrate",
]
