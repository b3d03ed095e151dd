import pytest

from xapisim.datamodel import Type, load_datamodel, parse_type
from xapisim.values import NULL_REF


def test_datamodel_types_parse_nested_maps_and_sets():
    assert parse_type("(string -> enum vm_operations) map") == Type(
        "map", key=Type("string"), item=Type("enum", "vm_operations")
    )
    assert parse_type("(VM ref -> (string -> string) map) map").item == parse_type("(string -> string) map")
    assert parse_type("VBD ref set") == Type("set", item=Type("ref", "VBD"))
    assert str(parse_type("(int -> string set) map")) == "(int -> string set) map"


def test_datamodel_type_rejects_unknown_spelling():
    with pytest.raises(ValueError, match="unknown XenAPI type"):
        parse_type("gizmo thing")


def test_datamodel_loads_every_class_with_defaults():
    dm = load_datamodel()
    assert len(dm.classes) == 67
    vm = dm.get("VM")
    assert vm is not None and dm.find("vm") is vm
    record = dm.new_record(vm)
    assert record["power_state"] == "Halted"
    assert record["resident_on"] == NULL_REF
    assert record["VBDs"] == [] and record["other_config"] == {}
    assert record["memory_static_max"] == 0  # no default in the model: the type's zero
    assert "start" in vm.messages and vm.messages["get_record"].implicit


def test_datamodel_finds_each_message_under_both_of_xapis_names():
    dm = load_datamodel()
    event, metrics = dm.get("event"), dm.get("VM_metrics")
    assert event is not None and metrics is not None
    assert dm.message("event.from") == dm.message("event_from") == (event, event.messages["from"])
    assert dm.message("VM_metrics_get_record") == (metrics, metrics.messages["get_record"])
    for name in ("Async.VM.start", "Async_VM_start", "VM", "VM_", "system.listMethods", "system_listMethods"):
        assert dm.message(name) is None, name
    underscored = {f"{c.name}_{m}" for c in dm.classes.values() for m in c.messages}
    assert len(underscored) == sum(len(c.messages) for c in dm.classes.values())  # no two names collide
