"""XAPI records shaped as Xen Orchestra's objects (see each module for its classes).

``SHAPERS`` maps a XAPI class to the function that shapes its records; ``KEPT_CLASSES`` are the classes
the cache reads: those shaped, and those only read while shaping (metrics, updates, certificates).
"""

from __future__ import annotations

from .common import Shaper
from .host import shape_host, shape_host_patch, shape_pool, shape_pool_patch
from .misc import (
    shape_gpu_group,
    shape_message,
    shape_pci,
    shape_pgpu,
    shape_pusb,
    shape_sm,
    shape_task,
    shape_usb_group,
    shape_vgpu,
    shape_vgpu_type,
    shape_vtpm,
    shape_vusb,
)
from .network import shape_bond, shape_network, shape_pif, shape_vif
from .reader import Reader
from .storage import shape_pbd, shape_sr, shape_vbd, shape_vdi
from .vm import shape_vm

SHAPERS: dict[str, Shaper] = {
    "pool": shape_pool,
    "host": shape_host,
    "VM": shape_vm,
    "SR": shape_sr,
    "PBD": shape_pbd,
    "VDI": shape_vdi,
    "VBD": shape_vbd,
    "VIF": shape_vif,
    "network": shape_network,
    "PIF": shape_pif,
    "Bond": shape_bond,
    "message": shape_message,
    "task": shape_task,
    "host_patch": shape_host_patch,
    "pool_patch": shape_pool_patch,
    "SM": shape_sm,
    "PCI": shape_pci,
    "PGPU": shape_pgpu,
    "VGPU": shape_vgpu,
    "GPU_group": shape_gpu_group,
    "VGPU_type": shape_vgpu_type,
    "VTPM": shape_vtpm,
    "PUSB": shape_pusb,
    "VUSB": shape_vusb,
    "USB_group": shape_usb_group,
}

# Read only while shaping other objects.
_LINKED = ("VM_metrics", "VM_guest_metrics", "host_metrics", "PIF_metrics", "pool_update", "Certificate")

KEPT_CLASSES: tuple[str, ...] = (*SHAPERS, *_LINKED)

__all__ = ["KEPT_CLASSES", "SHAPERS", "Reader", "Shaper"]
