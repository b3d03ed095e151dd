"""message, task, SM and device records (PCI, GPUs, vTPM, USB) as Xen Orchestra's objects."""

from __future__ import annotations

from typing import Any

from .common import NULL, Obj, Record, Shaper, finish, link, links, put, ts
from .reader import Reader


def shape_message(ref: str, rec: Record, reader: Reader) -> Obj:
    """A pool message (alarm, VM_STARTED …); ``$object`` is the uuid it is about."""
    obj: Obj = {
        "body": rec.get("body", ""),
        "name": rec.get("name", ""),
        "time": ts(rec.get("timestamp")),
        "$object": rec.get("obj_uuid", ""),
    }
    return finish(obj, ref, rec, reader, "message")


def shape_task(ref: str, rec: Record, reader: Reader) -> Obj:
    """A XAPI task with its progress."""
    obj: Obj = {
        "allowedOperations": rec.get("allowed_operations") or [],
        "created": ts(rec.get("created")),
        "current_operations": rec.get("current_operations") or {},
        "finished": ts(rec.get("finished")),
        "name_description": rec.get("name_description", ""),
        "name_label": rec.get("name_label", ""),
        "progress": float(rec.get("progress") or 0),
        "result": rec.get("result", ""),
        "status": rec.get("status", ""),
        "xapiRef": ref,
    }
    applies_to = (rec.get("other_config") or {}).get("applies_to")
    if applies_to:
        target = reader.get(applies_to)
        if target is not None:
            obj["applies_to"] = target.get("uuid")
    put(obj, "$host", link(reader, rec.get("resident_on", NULL)))
    return finish(obj, ref, rec, reader, "task")


_SM_FIELDS = (
    "SM_type",
    "vendor",
    "name_label",
    "name_description",
    "configuration",
    "features",
    "driver_filename",
    "required_cluster_stack",
    "supported_image_formats",
)


def shape_sm(ref: str, rec: Record, reader: Reader) -> Obj:
    """A storage manager plugin of the pool."""
    obj: Obj = {"type": "SM"}
    for key in _SM_FIELDS:
        if key in rec:
            obj[key] = rec[key]
    return finish(obj, ref, rec, reader, "SM")


def _fields(type_: str, spec: dict[str, tuple[str, str]]) -> Shaper:
    """A shaper that maps fields: key -> (kind, XAPI field), kind one of raw, bool, link, links."""

    def shape(ref: str, rec: Record, reader: Reader) -> Obj:
        obj: Obj = {"type": type_}
        for key, (kind, field) in spec.items():
            value: Any = rec.get(field)
            if kind == "bool":
                value = bool(value)
            elif kind == "link":
                value = link(reader, value or NULL)
            elif kind == "links":
                value = links(reader, value)
            put(obj, key, value)
        return finish(obj, ref, rec, reader, type_)

    return shape


shape_pci = _fields(
    "PCI",
    {
        "class_name": ("raw", "class_name"),
        "device_name": ("raw", "device_name"),
        "pci_id": ("raw", "pci_id"),
        "$host": ("link", "host"),
    },
)
shape_pgpu = _fields(
    "PGPU",
    {
        "dom0Access": ("raw", "dom0_access"),
        "enabledVgpuTypes": ("links", "enabled_VGPU_types"),
        "gpuGroup": ("link", "GPU_group"),
        "isSystemDisplayDevice": ("bool", "is_system_display_device"),
        "pci": ("link", "PCI"),
        "supportedVgpuTypes": ("links", "supported_VGPU_types"),
        "host": ("link", "host"),
        "$host": ("link", "host"),
        "vgpus": ("links", "resident_VGPUs"),
        "$vgpus": ("links", "resident_VGPUs"),
    },
)
shape_vgpu = _fields(
    "vgpu",
    {
        "currentlyAttached": ("bool", "currently_attached"),
        "device": ("raw", "device"),
        "gpuGroup": ("link", "GPU_group"),
        "otherConfig": ("raw", "other_config"),
        "resident_on": ("link", "resident_on"),
        "vgpuType": ("link", "type"),
        "vm": ("link", "VM"),
    },
)
shape_gpu_group = _fields(
    "gpuGroup",
    {
        "allocation": ("raw", "allocation_algorithm"),
        "enabledVgpuTypes": ("links", "enabled_VGPU_types"),
        "gpuTypes": ("raw", "GPU_types"),
        "name_description": ("raw", "name_description"),
        "name_label": ("raw", "name_label"),
        "otherConfig": ("raw", "other_config"),
        "pgpus": ("links", "PGPUs"),
        "supportedVgpuTypes": ("links", "supported_VGPU_types"),
        "vgpus": ("links", "VGPUs"),
    },
)
shape_vgpu_type = _fields(
    "vgpuType",
    {
        "experimental": ("bool", "experimental"),
        "framebufferSize": ("raw", "framebuffer_size"),
        "gpuGroups": ("links", "enabled_on_GPU_groups"),
        "maxHeads": ("raw", "max_heads"),
        "maxResolutionX": ("raw", "max_resolution_x"),
        "maxResolutionY": ("raw", "max_resolution_y"),
        "modelName": ("raw", "model_name"),
        "pgpus": ("links", "enabled_on_PGPUs"),
        "vendorName": ("raw", "vendor_name"),
        "vgpus": ("links", "VGPUs"),
    },
)
shape_vtpm = _fields("VTPM", {"vm": ("link", "VM")})
shape_vusb = _fields(
    "VUSB",
    {
        "vm": ("link", "VM"),
        "currentlyAttached": ("raw", "currently_attached"),
        "usbGroup": ("link", "USB_group"),
    },
)
shape_usb_group = _fields("USB_group", {"PUSBs": ("links", "PUSBs"), "VUSBs": ("links", "VUSBs")})


def shape_pusb(ref: str, rec: Record, reader: Reader) -> Obj:
    """A host's USB device."""
    product = str(rec.get("product_desc", "")).strip()
    obj: Obj = {
        "type": "PUSB",
        "description": rec.get("vendor_desc", "") + (f" - {product}" if product else ""),
    }
    put(obj, "host", link(reader, rec.get("host", NULL)))
    obj["passthroughEnabled"] = rec.get("passthrough_enabled")
    obj["speed"] = rec.get("speed")
    put(obj, "usbGroup", link(reader, rec.get("USB_group", NULL)))
    obj["vendorId"] = rec.get("vendor_id")
    obj["version"] = rec.get("version")
    return finish(obj, ref, rec, reader, "PUSB")
