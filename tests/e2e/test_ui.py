"""The web UI in real Chromium, in front of the real server connected to the simulated real pool.

Sign in, see the pool, filter and sort, start a VM from its page and from the home page's bulk actions,
watch a VM started by another client change state without a reload, and a user with an ACL on one VM
who sees only that VM. Screenshots of the main pages go to test-artifacts/.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from podium.xva import extract

from ..harness.browser import halt, on_api, screenshot, sign_in, vms
from ..harness.serverproc import Server

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


def rows(page: Page) -> Any:
    return page.locator("#objects .spacer .row")


def test_home_shows_the_pool_filters_sorts_and_follows_changes(server: Server, page: Page):
    halted = halt(server, 1)
    every = vms(server)
    sign_in(page, server)
    expect(page.locator("#count")).to_have_text(f"{len(every)} of {len(every)}")
    screenshot(page, "ui-home")
    # the tree lists a halted VM too: under the host of its local disks, else under its pool's "Not running"
    page.locator(".tree details details").evaluate_all("all => all.forEach((d) => { d.open = true; })")
    expect(page.locator(f".tree a[href='#/vm/{halted[0]['id']}']")).to_have_count(1)
    first = rows(page).first
    expect(first).to_contain_text(every[0]["name_label"])  # sorted by name

    page.get_by_role("button", name="Name").click()  # sorted the other way
    expect(first).to_contain_text(every[-1]["name_label"])
    page.fill("#search", "power_state:running")
    running = [vm for vm in every if vm["power_state"] == "Running"]
    expect(page.locator("#count")).to_have_text(f"{len(running)} of {len(every)}")
    assert (
        "power_state%3Arunning" in page.url or "power_state:running" in page.url
    )  # the filter is in the address
    page.fill("#search", "name_label:(")
    expect(page.locator("#filter-error")).not_to_be_empty()

    # Another client starts a VM: its row changes state, no reload, no polling.
    target = halted[0]
    page.fill("#search", f'name_label:"{target["name_label"]}"')
    row = rows(page).filter(has_text=target["name_label"]).first
    expect(row).to_contain_text("Halted")
    on_api(server, lambda api: api.call("vm.start", {"id": target["id"]}))
    expect(row).to_contain_text("Running", timeout=5_000)

    # The tree: a host opened lists its VMs, each a link to its page.
    host = page.locator(".tree details details").first
    host.evaluate("d => { d.open = true; }")
    expect(host.locator("ul a").first).to_have_attribute("href", re.compile(r"^#/vm/"))

    for kind, title in (("host", "Hosts"), ("pool", "Pools"), ("SR", "Storage"), ("network", "Networks")):
        page.get_by_role("tab", name=title).click()
        expect(page.locator("#home-title")).to_have_text(title)
        assert page.url.endswith(f"#/home/{kind}")
        expect(rows(page).first).to_be_visible()
    screenshot(page, "ui-storage")


def test_a_vm_page_starts_and_stops_the_vm(server: Server, sim, page: Page):
    (target,) = halt(server, 1)
    sign_in(page, server)
    page.goto(f"{server.url}/#/vm/{target['id']}")
    expect(page.locator("#object-title")).to_contain_text(target["name_label"])
    expect(page.locator("#power-state")).to_have_text("Halted")
    page.click("#action-start")
    expect(page.locator("#power-state")).to_have_text("Running")
    expect(page.locator("#disks")).to_be_visible()
    screenshot(page, "ui-vm")

    page.click("#action-force-stop")  # destroys: asks first; cancelling does nothing
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#power-state")).to_have_text("Running")
    page.click("#action-force-stop")
    page.locator("dialog").get_by_role("button", name="Force shut down").click()
    expect(page.locator("#power-state")).to_have_text("Halted")

    page.click("#action-snapshot")
    expect(page.locator("#snapshots li")).to_have_count(1)

    # A refused action says why, in a toast, and changes nothing.
    sim.ctl("POST", "/faults", {"method": "VM.start", "error": ["NO_HOSTS_AVAILABLE"]})
    page.click("#action-start")
    expect(page.locator(".toast.error")).to_contain_text(f"Start {target['name_label']}")
    expect(page.locator(".toast.error")).to_contain_text("NO_HOSTS_AVAILABLE")
    expect(page.locator("#power-state")).to_have_text("Halted")
    screenshot(page, "ui-vm-error")


def test_a_running_vm_migrates_to_another_host_from_its_page(server: Server, page: Page):
    running = next(vm for vm in vms(server) if vm["name_label"] == "23shared")  # on shared storage
    sign_in(page, server)
    page.goto(f"{server.url}/#/vm/{running['id']}")
    before = page.locator("article.vm dl a[href^='#/host/']").first.inner_text()
    page.click("#action-migrate")
    dialog = page.locator("dialog")
    choices = page.locator("#migrate-host option")
    target = next(t for t in choices.all_inner_texts() if not t.startswith(f"{before} "))
    page.select_option("#migrate-host", label=target)
    dialog.get_by_role("button", name="Migrate").click()
    expect(page.locator(".toast").last).to_contain_text(f"{running['name_label']} moved to")
    expect(page.locator("article.vm dl a[href^='#/host/']").first).to_have_text(target.split(" (")[0])
    expect(page.locator("#power-state")).to_have_text("Running")


def test_bulk_actions_start_the_selected_vms(server: Server, page: Page):
    halted = halt(server, 2)
    sign_in(page, server)
    page.fill("#search", "power_state:halted")
    for vm in halted:
        page.get_by_label(f"Select {vm['name_label']}").check()
    bar = page.get_by_role("toolbar", name="Actions on the selected")
    expect(bar).to_contain_text("2 selected")
    bar.get_by_role("button", name="Start", exact=True).click()
    expect(page.locator(".toast").last).to_contain_text("2 VMs started")
    states = on_api(server, lambda api: api.call("xo.getAllObjects", {"filter": {"type": "VM"}}))
    assert all(states[vm["id"]]["power_state"] == "Running" for vm in halted)


def test_an_admin_gives_a_group_an_acl_on_one_vm_and_its_member_sees_only_that_vm(
    server: Server, page: Page, browser
):
    target = vms(server)[0]
    sign_in(page, server)
    page.goto(f"{server.url}/#/settings/users")
    page.fill("#user-email", "viewer@podium.test")
    page.fill("#user-password", "a long enough secret")
    page.click("#add-user button[type=submit]")
    expect(page.locator("#users")).to_contain_text("viewer@podium.test")
    page.get_by_role("link", name="Groups").click()
    page.fill("#group-name", "operators")
    page.click("#add-group button[type=submit]")
    page.get_by_label("Add a user to operators").select_option(label="viewer@podium.test")
    expect(page.locator("#groups")).to_contain_text("viewer@podium.test")
    page.get_by_role("link", name="ACLs").click()
    page.select_option("#acl-subject", label="operators (group)")
    page.select_option("#acl-object", label=f"{target['name_label']} (VM)")
    page.select_option("#acl-action", value="operator")
    page.click("#add-acl button[type=submit]")
    expect(page.locator("#acls")).to_contain_text(target["name_label"])
    screenshot(page, "ui-settings-acls")

    other = browser.new_context(viewport={"width": 390, "height": 844})  # and at phone width
    viewer = other.new_page()
    sign_in(viewer, server, "viewer@podium.test", "a long enough secret")
    expect(viewer.locator("#count")).to_have_text("1 of 1")
    expect(rows(viewer)).to_have_count(1)
    expect(rows(viewer).first).to_contain_text(target["name_label"])
    screenshot(viewer, "ui-home-phone")
    other.close()


def test_tokens_are_listed_and_revoking_this_browsers_signs_it_out(server: Server, page: Page):
    sign_in(page, server)
    page.goto(f"{server.url}/#/settings/tokens")
    expect(page.locator("#tokens")).to_contain_text("web UI")
    page.locator("#tokens").get_by_role("button", name="Revoke web UI").first.click()
    page.locator("dialog").get_by_role("button", name="Revoke").click()
    expect(page.locator("#tokens")).not_to_contain_text("web UI")
    page.reload()
    expect(page.locator("#signin")).to_be_visible()


def test_settings_list_the_servers_and_the_version(server: Server, page: Page):
    sign_in(page, server)
    page.click("nav >> text=Settings")
    expect(page.locator("#servers")).to_contain_text("connected")
    screenshot(page, "ui-settings")
    page.get_by_role("link", name="About").click()
    expect(page.locator("#server-version")).to_have_text(re.compile(r"\d+\.\d+"))


CANVAS_COLOURS = """() => {
  const canvas = document.querySelector('#console-screen canvas');
  if (!canvas || !canvas.width) return 0;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const seen = new Set();
  for (let i = 0; i < data.length; i += 4 * 97) seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  return seen.size;
}"""


def test_the_console_shows_the_vms_screen_and_comes_back_after_a_reboot(server: Server, page: Page):
    target = next(vm for vm in vms(server) if vm["power_state"] == "Running")
    sign_in(page, server)
    page.goto(f"{server.url}/#/vm/{target['id']}")
    status = page.locator("#console-status")
    expect(status).to_contain_text("Connected", timeout=15_000)
    page.wait_for_function(f"({CANVAS_COLOURS})() > 1", timeout=10_000)  # the text console is drawn
    screenshot(page, "ui-console")

    on_api(server, lambda api: api.call("vm.restart", {"id": target["id"], "force": True}))
    expect(status).not_to_contain_text("Connected: click", timeout=15_000)  # its console went away…
    expect(status).to_contain_text("Connected", timeout=30_000)  # …and the panel found the new one
    page.wait_for_function(f"({CANVAS_COLOURS})() > 1", timeout=10_000)


def test_export_a_vm_as_a_download_and_import_it_back_with_progress(server: Server, page: Page, tmp_path):
    (target,) = halt(server, 1)
    sign_in(page, server)
    page.goto(f"{server.url}/#/vm/{target['id']}")
    page.click("#action-export")
    with page.expect_download() as download:
        page.locator("dialog").get_by_role("button", name="Export").click()
    xva = tmp_path / "exported.xva"
    download.value.save_as(xva)
    assert extract(xva, tmp_path / "disks")  # a whole, checksummed XVA (zstd-compressed, the default)

    # A file that is not an XVA: refused with the pool's reason, nothing left behind.
    before = len(vms(server))
    junk = tmp_path / "junk.xva"
    junk.write_bytes(b"not a tar archive" * 1000)
    page.goto(f"{server.url}/#/home/VM")
    page.click("#import-vm")
    page.set_input_files("#import-file", junk)
    page.locator("dialog").get_by_role("button", name="Import").click()
    expect(page.locator(".toast.error")).to_contain_text("Import junk.xva")
    assert len(vms(server)) == before

    # A slow uplink (Chromium's own network throttling), so the upload lasts long enough to see its progress.
    cdp = page.context.new_cdp_session(page)
    rate = max(64 << 10, xva.stat().st_size // 4)  # bytes/s
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": rate},
    )
    page.click("#import-vm")
    page.set_input_files("#import-file", xva)
    page.locator("dialog").get_by_role("button", name="Import").click()
    progress = page.locator("#import-progress")
    expect(progress).to_be_visible()
    expect(progress).to_contain_text(re.compile(r"Importing exported\.xva: \d+ %"))
    expect(progress.get_by_role("button", name="Cancel")).to_be_visible()
    screenshot(page, "ui-import-progress")
    expect(page.locator("#object-title")).to_contain_text(
        target["name_label"], timeout=60_000
    )  # the new VM's page
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    expect(progress).to_have_count(0)
    new_id = page.url.rsplit("/", 1)[1]
    assert new_id != target["id"] and len(vms(server)) == before + 1
    screenshot(page, "ui-imported")


def test_a_new_vm_from_a_template_with_a_disk_and_cloud_init_starts_and_shows(
    server: Server, sim, page: Page
):
    sign_in(page, server)
    page.click("nav >> text=New VM")
    template = page.locator("#vm-template option").first.inner_text()
    assert template
    page.fill("#vm-name", "web-42")
    page.fill("#vm-cpus", "2")
    page.fill("#vm-memory", "256")
    page.get_by_role("button", name="Add a disk").click()
    page.fill("#vm-disk-0", "1")
    page.fill("#vm-cloud", "#cloud-config\nhostname: {name}\n")
    screenshot(page, "ui-new-vm")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#object-title")).to_contain_text("web-42")
    expect(page.locator("#power-state")).to_have_text("Running")
    disks = page.locator("#disks tbody tr")
    expect(disks.filter(has_text="web-42 disk")).to_have_count(1)
    expect(disks.filter(has_text="XO CloudConfigDrive")).to_have_count(1)
    created = [vm for vm in vms(server) if vm["name_label"] == "web-42"]
    assert (
        len(created) == 1 and created[0]["CPUs"]["number"] == 2 and created[0]["memory"]["size"] == 256 << 20
    )

    # The pool refuses to start it: vm.create fails as a whole (nothing left), the form stays, the error says why.
    sim.ctl("POST", "/faults", {"method": "VM.start", "error": ["NO_HOSTS_AVAILABLE"]})
    page.click("nav >> text=New VM")
    page.fill("#vm-name", "nowhere")
    page.get_by_role("button", name="Create").click()
    expect(page.locator(".toast.error")).to_contain_text("Create nowhere: NO_HOSTS_AVAILABLE")
    expect(page.locator("#vm-name")).to_have_value("nowhere")
    assert not [vm for vm in vms(server) if vm["name_label"] == "nowhere"]


def test_stats_charts_draw_and_keep_moving(server: Server, page: Page):
    target = next(vm for vm in vms(server) if vm["power_state"] == "Running" and vm["VIFs"])
    sign_in(page, server)
    page.goto(f"{server.url}/#/vm/{target['id']}")
    for chart in ("cpu", "memory", "network", "disk"):
        expect(page.locator(f"#chart-{chart} canvas")).to_be_visible()
    memory = page.locator("#chart-memory")
    expect(memory).to_have_attribute("data-latest", re.compile(r"used \d"))  # bytes used, not negative
    status = page.locator("#stats-status")
    first = status.inner_text()
    expect(status).not_to_have_text(first, timeout=12_000)  # asked again while the page is open
    screenshot(page, "ui-vm-stats")
    host = target["$container"]
    page.goto(f"{server.url}/#/host/{host}")
    expect(page.locator("#chart-cpu canvas")).to_be_visible()
    expect(page.locator("#chart-load canvas")).to_be_visible()
    screenshot(page, "ui-host")
