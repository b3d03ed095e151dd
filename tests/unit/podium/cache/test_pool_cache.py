"""PoolCache on its own: regressions found in review (links as dependencies, odd records)."""

from podium.cache import KEPT_CLASSES, ObjectCache, PoolCache


def records():
    pool = {"uuid": "p-uuid", "name_label": "p", "master": "OpaqueRef:h", "default_SR": "OpaqueRef:sr"}
    host = {"uuid": "h-uuid", "name_label": "h", "metrics": "OpaqueRef:NULL"}
    sr = {"uuid": "sr-uuid", "name_label": "local", "PBDs": [], "VDIs": [], "shared": False}
    vm = {
        "uuid": "abcd1234-0000",
        "name_label": "vm",
        "power_state": "Halted",
        "other_config": {},
        "metrics": "OpaqueRef:NULL",
        "guest_metrics": "OpaqueRef:NULL",
        "VBDs": [],
        "is_a_template": False,
    }
    return {
        "pool": {"OpaqueRef:p": pool},
        "host": {"OpaqueRef:h": host},
        "SR": {"OpaqueRef:sr": sr},
        "VM": {"OpaqueRef:vm": vm},
    }


def test_cache_link_goes_when_its_target_is_deleted():
    objects = ObjectCache()
    cache = PoolCache(objects, list(KEPT_CLASSES))
    cache.full(records())
    assert objects.get("p-uuid")["default_SR"] == "sr-uuid"
    cache.events([{"class": "sr", "operation": "del", "ref": "OpaqueRef:sr"}])
    assert "default_SR" not in objects.get("p-uuid")  # as a fresh read would show it
    fresh = ObjectCache()
    r = records()
    del r["SR"]
    PoolCache(fresh, list(KEPT_CLASSES)).full(r)
    assert objects.objects == fresh.objects


def test_cache_link_appears_when_its_target_arrives_later():
    objects = ObjectCache()
    cache = PoolCache(objects, list(KEPT_CLASSES))
    r = records()
    sr = r.pop("SR")["OpaqueRef:sr"]
    cache.full(r)
    assert "default_SR" not in objects.get("p-uuid")
    cache.events([{"class": "sr", "operation": "add", "ref": "OpaqueRef:sr", "snapshot": sr}])
    assert objects.get("p-uuid")["default_SR"] == "sr-uuid"


def test_cache_survives_a_record_it_cannot_shape():
    objects = ObjectCache()
    cache = PoolCache(objects, list(KEPT_CLASSES))
    r = records()
    r["VM"]["OpaqueRef:vm"]["other_config"] = {"xo:abcd1234": "1"}  # JSON, but not an object
    cache.full(r)
    assert objects.get("abcd1234-0000")["name_label"] == "vm" and "creation" not in objects.get(
        "abcd1234-0000"
    )
    r = records()  # a new read, as from the wire
    r["host"]["OpaqueRef:h"]["software_version"] = "not a map"  # a shaper that raises: logged, skipped
    cache.full(r)
    assert objects.get("h-uuid") is None and objects.get("p-uuid") is not None
