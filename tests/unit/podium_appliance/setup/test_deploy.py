"""Unattended first boot: the XenStore keys of Xen Orchestra's deploy, read from the stand-in and erased."""

from __future__ import annotations

import json

from podium_appliance.box.xenstore import FileStore, open_store
from podium_appliance.setup.deploy import read_deploy


def _keys(layout, **values):
    folder = layout.xenstore_standin / "vm-data"
    folder.mkdir(parents=True)
    for key, value in values.items():
        (folder / key.replace("_", "-")).write_text(value)
    return folder


def test_deploy_keys_are_honoured_then_erased(appliance):
    folder = _keys(
        appliance,
        admin_account=json.dumps({"email": "ops@example.com", "password": "s3cret enough"}),
        ip="192.0.2.10",
        netmask="255.255.255.0",
        gateway="192.0.2.1",
        dns="192.0.2.53",
        ntp="ntp1 ntp2",
    )
    store = open_store(appliance, appliance.settings())
    assert isinstance(store, FileStore)
    deploy = read_deploy(store)
    assert (deploy.admin_email, deploy.admin_password) == ("ops@example.com", "s3cret enough")
    assert deploy.network is not None and str(deploy.network.address) == "192.0.2.10/24"
    assert deploy.ntp == ["ntp1", "ntp2"] and not deploy.problems
    assert list(folder.iterdir()) == []


def test_deploy_bad_values_are_reported_without_echoing_secrets_and_still_erased(appliance):
    folder = _keys(appliance, admin_account='{"email": "x", "password": "hunter2-secret"', ip="192.0.2.300")
    deploy = read_deploy(FileStore(appliance.xenstore_standin))
    assert deploy.admin_email == "" and deploy.network is None
    assert len(deploy.problems) == 2 and "hunter2-secret" not in " ".join(deploy.problems)
    assert list(folder.iterdir()) == []


def test_deploy_no_store_and_no_keys(appliance):
    assert open_store(appliance, appliance.settings()) is None  # no stand-in folder, no Xen here
    appliance.xenstore_standin.mkdir(parents=True)
    assert read_deploy(FileStore(appliance.xenstore_standin)).empty
