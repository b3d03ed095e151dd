"""The web UI's filter language (static/filter.js), run in Node: matches on Xen Orchestra-like VM objects,
error messages with positions, the toString() round trip, and the cost of filtering 10,000 VMs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

FILTER_JS = Path(__file__).parents[4] / "server" / "podium" / "web" / "static" / "filter.js"
GIB = 2**30

VMS = [
    {
        "id": "web1",
        "type": "VM",
        "name_label": "web-01",
        "name_description": "Front web server",
        "power_state": "Running",
        "tags": ["prod", "frontend"],
        "CPUs": {"number": 2, "max": 4},
        "memory": {"size": 2 * GIB},
        "addresses": {"0/ipv4/0": "10.0.0.5"},
        "mainIpAddress": "10.0.0.5",
        "is_a_template": False,
        "$pool": "pool-a",
    },
    {
        "id": "db1",
        "type": "VM",
        "name_label": "DB-01",
        "name_description": "PostgreSQL primary",
        "power_state": "Running",
        "tags": ["prod", "db"],
        "CPUs": {"number": 8, "max": 8},
        "memory": {"size": 16 * GIB},
        "addresses": {},
        "is_a_template": False,
        "$pool": "pool-b",
    },
    {
        "id": "test1",
        "type": "VM",
        "name_label": "web test",
        "name_description": "scratch",
        "power_state": "Halted",
        "tags": [],
        "CPUs": {"number": 1, "max": 2},
        "memory": {"size": 512 * 2**20},
        "addresses": {},
        "mainIpAddress": None,
        "is_a_template": True,
        "$pool": "pool-b",
    },
]

MATCHES = {
    "": ["web1", "db1", "test1"],
    "   ": ["web1", "db1", "test1"],
    "web": ["web1", "test1"],
    "WeB": ["web1", "test1"],
    "postgres": ["db1"],
    "10.0.0": ["web1"],
    '"web test"': ["test1"],
    '"front web"': ["web1"],
    '"say \\"hi\\""': [],
    "power_state:running": ["web1", "db1"],
    "power_state:Halted": ["test1"],
    "tags:prod": ["web1", "db1"],
    "tags:front": ["web1"],
    "tags:|(db frontend)": ["web1", "db1"],
    "tags:!prod": ["test1"],
    "CPUs.number:2": ["web1"],
    "CPUs.number:>2": ["db1"],
    "CPUs.number:<=2": ["web1", "test1"],
    "CPUs.max:<4": ["test1"],
    "CPUs.max:>=4": ["web1", "db1"],
    "is_a_template:true": ["test1"],
    "is_a_template:FALSE": ["web1", "db1"],
    "memory.size:>=2GiB": ["web1", "db1"],
    "memory.size:<1GiB": ["test1"],
    "memory.size:2GiB": ["web1"],
    "memory.size:>2147483648": ["db1"],
    "memory.size:>10GB": ["db1"],
    "name_label:/^web-\\d+$/": ["web1"],
    "name_label:/^db/": [],
    "name_label:/^db/i": ["db1"],
    "/SERVER$/i": ["web1"],
    "mainIpAddress?": ["web1"],
    "tags?": ["web1", "db1"],
    "CPUs.number?": ["web1", "db1", "test1"],
    "nothing.here?": [],
    "nothing.here:x": [],
    "!web": ["db1"],
    "!tags:prod": ["test1"],
    "! web": ["db1"],
    "!(power_state:running tags:db)": ["web1", "test1"],
    "power_state:running tags:prod": ["web1", "db1"],
    "web power_state:running": ["web1"],
    "  power_state:running \t tags:db  ": ["db1"],
    "name_label: web": ["web1", "test1"],
    "|(tags:db is_a_template:true)": ["db1", "test1"],
    "|(tags:db (web power_state:halted))": ["db1", "test1"],
    "power_state:running |(name_label:web !CPUs.number:<4)": ["web1", "db1"],
    "!|(web db)": [],
    "addresses.0/ipv4/0:10.0.0.5": ["web1"],
    '"name_label":"DB-01"': ["db1"],
    "$pool:pool-b": ["db1", "test1"],
}

ERRORS = {
    "(a": 'unclosed "(" at 0',
    "tags:(a": 'unclosed "(" at 5',
    "|(a": 'unclosed "|(" at 0',
    "a:/[/": "unterminated regular expression at 2",
    '"unterminated': "unterminated string at 0",
    'x "unterminated\\"': "unterminated string at 2",
    "a)": 'unexpected ")" at 1',
    "a:": 'expected a term after ":" at 2',
    "!": 'expected a term after "!" at 1',
    "()": "empty group at 0",
    "|a": 'expected "(" after "|" at 1',
    "x:>big": 'expected a number after ">" at 3',
    "a:/(/": "invalid regular expression (Unterminated group) at 2",
    "a:/x/g": 'unsupported regular expression flag "g" at 5',
    ":x": 'unexpected ":" at 0',
}

CANONICAL = {
    "  !( a   b ) ": "!(a b)",
    "memory.size:>=2GiB": "memory.size:>=2147483648",
    "CPUs.number:2": "CPUs.number:2",
    '"web server"': '"web server"',
    '"a\\"b\\\\c"': '"a\\"b\\\\c"',
    '"plain"': "plain",
    "name_label:/^web\\/x[/]/i": "name_label:/^web\\/x[/]/i",
    "|(a) (b)": "a b",
    "|( a  (b c) !d:>1 )": "|(a (b c) !d:>1)",
    '"a.b":"x y" k? "k:x"?': '"a.b":"x y" k? "k:x"?',
    "tags:|(db prod)": "tags:|(db prod)",
    "a (b (c d))": "a (b (c d))",
    "": "",
}

SCRIPT = """
import { readFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
const { parse, compile, toString, FilterError } = await import(%s);
const { vms, matches, errors, canonical } = JSON.parse(readFileSync(0, "utf8"));
const out = { matches: {}, errors: {}, canonical: {}, roundTrip: {} };
for (const text of matches) out.matches[text] = vms.filter(compile(text)).map((vm) => vm.id);
for (const text of errors) {
  try { parse(text); out.errors[text] = null; }
  catch (e) { out.errors[text] = e instanceof FilterError && e instanceof Error ? e.message : String(e); }
}
for (const text of canonical) {
  const tree = parse(text);
  out.canonical[text] = toString(tree);
  out.roundTrip[text] = isDeepStrictEqual(parse(toString(tree)), tree);
}
const many = Array.from({ length: 10000 }, (_, i) => ({
  id: `vm-${i}`, type: "VM", name_label: i %% 3 ? `db-${i}` : `web-${i}`, name_description: `VM number ${i}`,
  power_state: i %% 2 ? "Halted" : "Running", tags: i %% 5 ? ["dev", "team-a"] : ["prod", "team-b"],
  CPUs: { number: 1 + (i %% 8), max: 8 }, memory: { size: (1 + (i %% 16)) * 2 ** 30 },
  addresses: { "0/ipv4/0": `10.0.${i >> 8}.${i & 255}` }, mainIpAddress: `10.0.${i >> 8}.${i & 255}`,
  $pool: "pool-a", $container: "host-1", os_version: { distro: "debian", name: "Debian 12" },
}));
out.perf = {};
for (const text of ["power_state:running name_label:web tags:prod", "nomatch"]) {
  const start = performance.now();
  const count = many.filter(compile(text)).length;
  out.perf[text] = { count, ms: performance.now() - start };
}
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    node = shutil.which("node")
    assert node, "node is missing: `make setup` installs it (the npm test clients need it too)"
    cases = {"vms": VMS, "matches": list(MATCHES), "errors": list(ERRORS), "canonical": list(CANONICAL)}
    script = SCRIPT % json.dumps(FILTER_JS.as_uri())
    run = subprocess.run(
        [node, "--input-type=module", "-e", script],
        input=json.dumps(cases),
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(run.stdout)


@pytest.mark.parametrize("text", list(MATCHES))
def test_matches(results: dict[str, Any], text: str) -> None:
    assert results["matches"][text] == MATCHES[text]


@pytest.mark.parametrize("text", list(ERRORS))
def test_errors_say_what_and_where(results: dict[str, Any], text: str) -> None:
    assert results["errors"][text] == ERRORS[text]


@pytest.mark.parametrize("text", list(CANONICAL))
def test_to_string_is_canonical_and_parses_back(results: dict[str, Any], text: str) -> None:
    assert results["canonical"][text] == CANONICAL[text]
    assert results["roundTrip"][text] is True


def test_filters_ten_thousand_vms_quickly(results: dict[str, Any]) -> None:
    perf = results["perf"]
    for text, run in perf.items():
        print(f"{text!r}: {run['count']} of 10000 VMs in {run['ms']:.1f} ms")
        assert run["ms"] < 1000
    # running: i even; web: i % 3 == 0; prod: i % 5 == 0 — so i % 30 == 0
    assert perf["power_state:running name_label:web tags:prod"]["count"] == len(range(0, 10000, 30))
    assert perf["nomatch"]["count"] == 0
