from podium.cache.xo.common import num, ts
from podium.cache.xo.storage import obfuscate
from podium.cache.xo.vm import addresses, domain_type, main_ip


def test_shapes_times_are_unix_seconds_or_none():
    assert ts("20120812T09:27:26Z") == 1344763646
    assert ts("2012-08-12T09:27:26Z") == 1344763646
    assert ts("19700101T00:00:00Z") is None and ts("") is None and ts(None) is None
    assert ts("1712345678.5") == 1712345678.5 and ts("0") is None
    assert ts("garbage") is None


def test_shapes_numbers_from_xml_rpc_strings():
    assert num("4294967296") == 4294967296 and num("0.5") == 0.5 and num("") == 0 and num(True) == 1


def test_shapes_addresses_normalised_as_xo_does():
    nets = {
        "1/ip": "10.0.0.2 10.0.0.3",
        "0/ipv6/0": "fe80::1",
        "0/ipv4/0": " 10.0.0.1 ",
        "0/ipv4/1": "10.0.0.1",
        "x": "y",
    }
    assert addresses(nets) == {
        "0/ipv4/0": "10.0.0.1",
        "0/ipv6/0": "fe80::1",
        "1/ipv4/0": "10.0.0.2",
        "1/ipv4/1": "10.0.0.3",
    }
    assert main_ip({"10/ip": "10.1.1.1", "2/ip": "10.2.2.2"}) == "10.1.1.1"  # sorted as text, as XO does
    assert main_ip({"0/ipv6/0": "fe80::1"}) == "fe80::1" and main_ip({}) is None


def test_shapes_domain_type_and_secrets():
    assert domain_type({"domain_type": "pvh"}) == "pvh"
    assert domain_type({"domain_type": "unspecified", "HVM_boot_policy": "BIOS order"}) == "hvm"
    assert domain_type({"HVM_boot_policy": ""}) == "pv"
    assert obfuscate({"password": "s", "chappassword": "t", "token": "u", "target": "10.0.0.1"}) == {
        "password": "* obfuscated *",
        "chappassword": "* obfuscated *",
        "token": "* obfuscated *",
        "target": "10.0.0.1",
    }
