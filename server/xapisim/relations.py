"""One-to-many relations of the data model: a set field kept true from the single-reference side.

xapi keeps ``VM.VBDs`` as the set of VBDs whose ``VM`` field points at the VM, and so on. The data model
file does not list these pairs, so they are inferred: a read-only set of ``B ref`` on class A pairs with
the one field of B of type ``A ref``. Where B has several such fields, the pair is named here, as in
xapi's own list of relations.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from .datamodel import DataModel

# (class, set field) -> (other class, reference field) where inference would be ambiguous.
_EXPLICIT = {
    ("VM", "snapshots"): ("VM", "snapshot_of"),
    ("VM", "children"): ("VM", "parent"),
    ("VM", "VTPMs"): ("VTPM", "VM"),
    ("host", "resident_VMs"): ("VM", "resident_on"),
    ("PIF", "bond_master_of"): ("Bond", "master"),
    ("PIF", "VLAN_slave_of"): ("VLAN", "tagged_PIF"),
    ("PIF", "tunnel_access_PIF_of"): ("tunnel", "access_PIF"),
    ("PIF", "tunnel_transport_PIF_of"): ("tunnel", "transport_PIF"),
    ("PIF", "sriov_physical_PIF_of"): ("network_sriov", "physical_PIF"),
    ("PIF", "sriov_logical_PIF_of"): ("network_sriov", "logical_PIF"),
    ("VDI", "snapshots"): ("VDI", "snapshot_of"),
    ("PGPU", "resident_VGPUs"): ("VGPU", "resident_on"),
}


@dataclass(frozen=True)
class Relation:
    """``one_cls.one_field`` (a reference) is mirrored in ``many_cls.many_field`` (a set)."""

    many_cls: str
    many_field: str
    one_cls: str
    one_field: str


@cache
def _relations(dm: DataModel) -> tuple[Relation, ...]:
    found = []
    for cls in dm.classes.values():
        for f in cls.fields.values():
            t = f.type
            if t.kind != "set" or t.item is None or t.item.kind != "ref" or f.qualifier != "RO/runtime":
                continue
            if (cls.name, f.name) in _EXPLICIT:
                other, back = _EXPLICIT[(cls.name, f.name)]
                found.append(Relation(cls.name, f.name, other, back))
                continue
            other_cls = dm.get(t.item.name)
            if other_cls is None:
                continue
            backs = [
                g.name for g in other_cls.fields.values() if g.type.kind == "ref" and g.type.name == cls.name
            ]
            if len(backs) == 1:
                found.append(Relation(cls.name, f.name, other_cls.name, backs[0]))
    return tuple(found)


@cache
def relations_by_one_side(dm: DataModel) -> dict[str, tuple[Relation, ...]]:
    """Relations keyed by the class that holds the single reference (the side that is written)."""
    out: dict[str, list[Relation]] = {}
    for r in _relations(dm):
        out.setdefault(r.one_cls, []).append(r)
    return {k: tuple(v) for k, v in out.items()}
