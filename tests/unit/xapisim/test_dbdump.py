from pathlib import Path

import pytest

from xapisim.database import Database
from xapisim.datamodel import load_datamodel
from xapisim.dbdump import DumpError, load_dump
from xapisim.values import NULL_REF

from ...harness.simproc import BUNDLED_DB, REAL_DUMPS

assert len(REAL_DUMPS) == 4


@pytest.mark.parametrize("path", REAL_DUMPS, ids=lambda p: p.name)
def test_dbdump_loads_real_dumps_consistently(path):
    db, report = load_dump(path, load_datamodel())
    assert not report.unknown_tables and not report.bad_values
    assert len(db.records("pool")) == 1 and len(db.records("host")) == 2
    # one-to-many sets agree with the single-reference side in both directions
    resident = {ref: vm for ref, vm in db.records("VM").items() if vm["resident_on"] != NULL_REF}
    assert db.records("VBD") and resident  # each dump has disks and running VMs to check
    for ref, vbd in db.records("VBD").items():
        assert ref in db.records("VM")[vbd["VM"]]["VBDs"]
    for vm_ref, vm in db.records("VM").items():
        for vbd in vm["VBDs"]:
            assert db.records("VBD")[vbd]["VM"] == vm_ref
    for vm_ref, vm in resident.items():
        assert vm_ref in db.records("host")[vm["resident_on"]]["resident_VMs"]
    assert db.generation == int(report.manifest["generation_count"])


def test_dbdump_decodes_values_by_type():
    db, _ = load_dump(BUNDLED_DB, load_datamodel())
    host = next(h for h in db.records("host").values() if h["name_label"] == "dt16")
    assert "Xeon(R) CPU           X3450  @ 2.67GHz" in host["cpu_info"]["modelname"]
    vm = next(v for v in db.records("VM").values() if v["name_label"] == "23shared")
    assert vm["power_state"] == "Running" and isinstance(vm["memory_static_max"], int)
    assert isinstance(vm["is_a_template"], bool) and isinstance(vm["VCPUs_params"], dict)


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "dump.xml"
    path.write_text(body)
    return path


def test_dbdump_accepts_other_versions_spellings_and_fills_defaults(tmp_path):
    # An older XAPI's spelling: lowercase table name, fields missing, unknown fields and tables,
    # a VLAN, a bond, a VMPP and a CIFS SR.
    dump = _write(
        tmp_path,
        """<database><manifest><pair key="generation_count" value="77"/></manifest>
        <table name="pool"><row ref="OpaqueRef:p" __ctime="1" __mtime="2" uuid="pu" name__label="old"
            master="OpaqueRef:h" frobnicate="x"/></table>
        <table name="host"><row ref="OpaqueRef:h" uuid="hu" name__label="h1" address="10.0.0.1"/></table>
        <table name="vm"><row ref="OpaqueRef:v" uuid="vu" name__label="a%.vm" power__state="Halted"
            resident__on="OpaqueRef:NULL" protection__policy="OpaqueRef:pp"/></table>
        <table name="VMPP"><row ref="OpaqueRef:pp" uuid="ppu" name__label="daily"/></table>
        <table name="PIF"><row ref="OpaqueRef:pif" uuid="pifu" host="OpaqueRef:h" VLAN="12"/>
            <row ref="OpaqueRef:pif2" uuid="pif2u" host="OpaqueRef:h" bond__slave__of="OpaqueRef:b"/></table>
        <table name="Bond"><row ref="OpaqueRef:b" uuid="bu" master="OpaqueRef:pif"/></table>
        <table name="VLAN"><row ref="OpaqueRef:vl" uuid="vlu" tagged__PIF="OpaqueRef:pif2" tag="12"/></table>
        <table name="SR"><row ref="OpaqueRef:sr" uuid="sru" type="cifs" shared="true"/></table>
        <table name="weird_future_table"><row ref="OpaqueRef:w"/></table>
        </database>""",
    )
    db, report = load_dump(dump, load_datamodel())
    vm = db.records("VM")["OpaqueRef:v"]
    assert vm["name_label"] == "a vm" and vm["VCPUs_max"] == 0 and vm["other_config"] == {}
    assert db.records("VMPP")["OpaqueRef:pp"]["VMs"] == ["OpaqueRef:v"]
    assert db.records("host")["OpaqueRef:h"]["PIFs"] == ["OpaqueRef:pif", "OpaqueRef:pif2"]
    assert db.records("PIF")["OpaqueRef:pif"]["bond_master_of"] == ["OpaqueRef:b"]
    assert db.records("Bond")["OpaqueRef:b"]["slaves"] == ["OpaqueRef:pif2"]
    assert db.records("PIF")["OpaqueRef:pif2"]["VLAN_slave_of"] == ["OpaqueRef:vl"]
    assert db.records("SR")["OpaqueRef:sr"]["shared"] is True
    assert report.unknown_tables == {"weird_future_table": 1}
    assert report.unknown_fields["pool.frobnicate"] == 1
    assert db.generation == 77


def test_dbdump_keeps_default_for_unparsable_value(tmp_path):
    dump = _write(
        tmp_path,
        '<database><table name="VM"><row ref="OpaqueRef:v" uuid="u" memory__static__max="lots"'
        ' other__config="((\'unterminated"/></table></database>',
    )
    db, report = load_dump(dump, load_datamodel())
    assert db.records("VM")["OpaqueRef:v"]["memory_static_max"] == 0
    assert db.records("VM")["OpaqueRef:v"]["other_config"] == {}
    assert report.bad_values == {"VM.memory_static_max": 1, "VM.other_config": 1}


@pytest.mark.parametrize("body", ["not xml at all", "<html><body/></html>", "<database><table"])
def test_dbdump_rejects_files_that_are_not_dumps(tmp_path, body):
    with pytest.raises(DumpError):
        load_dump(_write(tmp_path, body), load_datamodel(), Database(load_datamodel()))
