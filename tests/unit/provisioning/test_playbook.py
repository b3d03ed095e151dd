"""provisioning/: the playbook and roles parse, follow DESIGN.md's conventions, and take the box's files from
appliance/rootfs (a broken task file otherwise shows only minutes into ``make xva``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
PROVISIONING = ROOT / "provisioning"
ROLES = ("base", "updater", "server", "proxy", "firstboot")
#: Keys of a task that are not its module.
TASK_KEYWORDS = {
    # what the task is, where and how it runs
    *("name", "when", "tags", "vars", "environment", "become", "delegate_to", "no_log"),
    # its loop and retries
    *("loop", "loop_control", "until", "retries", "delay"),
    # its result and handlers
    *("register", "changed_when", "failed_when", "ignore_errors", "notify", "listen"),
}


def yaml_files() -> list[Path]:
    return sorted(PROVISIONING.rglob("*.yml"))


def tasks_of(path: Path) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text())
    return data if isinstance(data, list) else []


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(PROVISIONING)))
def test_provisioning_yaml_parses(path: Path):
    yaml.safe_load(path.read_text())


def test_provisioning_site_runs_every_role_in_order():
    (play,) = yaml.safe_load((PROVISIONING / "site.yml").read_text())
    assert tuple(play["roles"]) == ROLES
    for role in ROLES:
        assert (PROVISIONING / "roles" / role / "tasks" / "main.yml").is_file(), role


@pytest.mark.parametrize(
    "path", sorted(PROVISIONING.glob("roles/*/*/*.yml")), ids=lambda p: str(p.relative_to(PROVISIONING))
)
def test_provisioning_tasks_are_named_sentences_with_full_module_names(path: Path):
    if path.parent.name not in ("tasks", "handlers"):
        return
    for task in tasks_of(path):
        assert task.get("name", "")[:1].isupper(), (path, task)
        modules = set(task) - TASK_KEYWORDS
        assert len(modules) == 1, (path, task["name"], modules)
        assert modules.pop().startswith("ansible.builtin."), (path, task["name"])


def test_provisioning_variables_are_prefixed_with_their_role():
    for role in ROLES:
        defaults = PROVISIONING / "roles" / role / "defaults" / "main.yml"
        for name in yaml.safe_load(defaults.read_text()) or {}:
            assert name.startswith(f"{role}_"), (role, name)


def test_provisioning_copies_only_files_of_appliance_rootfs():
    sources = []
    for path in PROVISIONING.glob("roles/*/tasks/*.yml"):
        sources += re.findall(r"src: \"\{\{ podium_rootfs \}\}/([^\"]+)\"", path.read_text())
    assert sources
    for source in sources:
        assert (ROOT / "appliance" / "rootfs" / source).is_file(), source
    assert not list(PROVISIONING.glob("roles/*/files")), "files for the box belong in appliance/rootfs"
