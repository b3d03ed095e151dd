"""Unattended first boot: the ``vm-data/*`` keys that Xen Orchestra's deploy writes into XenStore.

``vm-data/admin-account`` (JSON ``{"email": …, "password": …}``), ``vm-data/ip``, ``netmask``, ``gateway``,
``dns``, ``ntp``. They are read once and erased (the password must not stay readable in XenStore). Where no
XenStore exists a folder stands in (:mod:`podium_appliance.box.xenstore`): ``var/lib/podium-appliance/xenstore/vm-data/<key>``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from ..box.host import split_servers
from ..box.network import NetworkConfig, static_config
from ..box.xenstore import Store
from ..errors import ApplianceError

log = logging.getLogger(__name__)

KEYS = ("admin-account", "ip", "netmask", "gateway", "dns", "ntp")


@dataclass
class Deploy:
    """What the deploy asked for; ``problems`` are keys that were present but unusable."""

    admin_email: str = ""
    admin_password: str = ""
    network: NetworkConfig | None = None
    ntp: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Nothing was asked."""
        return not (self.admin_email or self.network or self.ntp or self.problems)


def read_deploy(store: Store) -> Deploy:
    """Read the deploy keys (each checked), then erase them all: whatever they held, they are gone."""
    values = {key: store.read(f"vm-data/{key}") for key in KEYS}
    for key, value in values.items():
        if value is not None:
            store.remove(f"vm-data/{key}")
    deploy = Deploy()
    if values["admin-account"] is not None:
        _admin(deploy, values["admin-account"])
    if values["ip"]:
        try:
            deploy.network = static_config(
                values["ip"] or "", values["netmask"] or "", values["gateway"] or "", values["dns"] or ""
            )
        except ApplianceError as e:
            deploy.problems.append(f"vm-data/ip: {e.message}")
    if values["ntp"]:
        deploy.ntp = split_servers(values["ntp"])
    present = [k for k, v in values.items() if v is not None]
    log.info("deploy keys found in XenStore: %s (erased)", ", ".join(present) or "none")
    return deploy


def _admin(deploy: Deploy, text: str) -> None:
    try:
        account = json.loads(text)
        email, password = account["email"], account["password"]
        if not (isinstance(email, str) and isinstance(password, str) and "@" in email and password):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        # Never echo the value: it holds a password.
        deploy.problems.append('vm-data/admin-account: expected JSON {"email": "…", "password": "…"}')
        return
    deploy.admin_email, deploy.admin_password = email.strip(), password
