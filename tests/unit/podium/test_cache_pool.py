"""PoolCache on its own: regressions found in review (links as dependencies, odd records)."""

from podium.cache import KEPT_CLASSES, ObjectStore, PoolCache


def records():
    pool = {"uuid": "p-uuid", "name_label": "p", "master": "OpaqueRef:h", "default_SR": "OpaqueRef:sr"}
    host = {"uuid": "h-uuid", "name_label": "h", "metrics": "OpaqueRef:NULL"}
    sr = {"uuid": "sr-uuid", "name_label": "local", "PBDs": [], "VDIs": [], "shared": False}
    vm = {"uuid": "abcd1234-0000", "name_label": "vm", "power_state": "Halted", "other_config": {},
          "metrics": "OpaqueRef:NULL", "guest_metrics": "OpaqueRef:NULL", "VBDs": [], "is_a_template": False}  # fmt: skip
    return {"pool": {"OpaqueRef:p": pool}, "host": {"OpaqueRef:h": host}, "SR": {"OpaqueRef:sr": sr},
            "VM": {"OpaqueRef:vm": vm}}  # fmt: skip


def test_cache_link_goes_when_its_target_is_deleted():
    store = ObjectStore()
    cache = PoolCache(store, list(KEPT_CLASSES))
    cache.full(records())
    assert store.get("p-uuid")["default_SR"] == "sr-uuid"
    cache.events([{"class": "sr", "operation": "del", "ref": "OpaqueRef:sr"}])
    assert "default_SR" not in store.get("p-uuid")  # as a fresh read would show it
    fresh = ObjectStore()
    r = records()
    del r["SR"]
    PoolCache(fresh, list(KEPT_CLASSES)).full(r)
    assert store.objects == fresh.objects


def test_cache_link_appears_when_its_target_arrives_later():
    store = ObjectStore()
    cache = PoolCache(store, list(KEPT_CLASSES))
    r = records()
    sr = r.pop("SR")["OpaqueRef:sr"]
    cache.full(r)
    assert "default_SR" not in store.get("p-uuid")
    cache.events([{"class": "sr", "operation": "add", "ref": "OpaqueRef:sr", "snapshot": sr}])
    assert store.get("p-uuid")["default_SR"] == "sr-uuid"


def test_cache_survives_a_record_it_cannot_shape():
    store = ObjectStore()
    cache = PoolCache(store, list(KEPT_CLASSES))
    r = records()
    r["VM"]["OpaqueRef:vm"]["other_config"] = {"xo:abcd1234": "1"}  # JSON, but not an object
    cache.full(r)
    assert store.get("abcd1234-0000")["name_label"] == "vm" and "creation" not in store.get("abcd1234-0000")
    r = records()  # a new read, as from the wire
    r["host"]["OpaqueRef:h"]["software_version"] = "not a map"  # a shaper that raises: logged, skipped
    cache.full(r)
    assert store.get("h-uuid") is None and store.get("p-uuid") is not None
