"""The shared ancestry check gives exactly the recursive resolver's answer, on a real pool's objects."""

from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from podium.auth.acls import ROLES, ancestors, granted, granted_by
from podium.cache import KEPT_CLASSES, ObjectCache, PoolCache
from xapisim.datamodel import load_datamodel
from xapisim.dbdump import load_dump

from ....harness.simproc import TEST_DBS


@cache
def objects() -> ObjectCache:
    db, _ = load_dump(TEST_DBS / "tampa-db_inc_snapshots.xml", load_datamodel())
    records = {
        cls: {ref: dict(rec) for ref, rec in db.records(cls).items()}
        for cls in KEPT_CLASSES
        if cls in db.tables
    }
    s = ObjectCache()
    PoolCache(s, list(KEPT_CLASSES)).full(records)
    return s


IDS = sorted(objects().objects)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(IDS), st.sampled_from(sorted(ROLES)), max_size=6))
def test_acl_ancestry_agrees_with_the_resolver(rights):
    perms = {obj: set(ROLES[role]) for obj, role in rights.items()}
    s = objects()
    for obj in s.objects.values():
        chain = ancestors(obj, s.get)
        for action in ("view", "operate", "administrate"):
            assert granted(perms, obj, action, s.get) == granted_by(perms, chain, action), (
                obj["type"],
                action,
            )


def test_acl_a_right_on_the_pool_covers_its_vms_but_a_vm_does_not_cover_its_host():
    s = objects()
    pool = next(iter(s.of_type("pool").values()))
    vm = next(v for v in s.of_type("VM").values() if v["$container"] != pool["id"])
    host = s.get(vm["$container"])
    assert granted({pool["id"]: {"view"}}, vm, "view", s.get)
    assert not granted({vm["id"]: {"view"}}, host, "view", s.get)
    snapshot = next(iter(s.of_type("VM-snapshot").values()))
    assert granted({snapshot["$snapshot_of"]: {"operate"}}, snapshot, "operate", s.get)
