// A VM's page: its state and actions, hardware, disks, networks, addresses, tags and snapshots, redrawn
// live whenever the VM or one of the objects it is made of changes.
import { VM_ACTIONS, runOn } from "../actions.js";
import { statsPanel } from "../charts.js";
import { consolePanel } from "../console.js";
import { touches } from "../objects.js";
import { act, bytes, COLLATOR, confirmDialog, describe, fact, h, objectLink, powerBadge, toast, when } from "../ui.js";

function disks(objects, vm) {
  const vbds = (vm.$VBDs ?? []).map((id) => objects.get(id)).filter(Boolean).sort((a, b) => Number(a.position) - Number(b.position));
  if (vbds.length === 0) return h("p", {}, "No disks.");
  return h("table", { class: "plain", id: "disks" },
    h("thead", {}, h("tr", {}, ["Device", "Name", "Size", "Storage", "Attached"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, vbds.map((vbd) => {
      const vdi = objects.get(vbd.VDI);
      return h("tr", {},
        h("td", {}, vbd.is_cd_drive ? `CD (${vbd.position})` : vbd.device ?? vbd.position),
        h("td", {}, vdi?.name_label ?? (vbd.is_cd_drive ? "empty" : "")),
        h("td", {}, bytes(vdi?.size)),
        h("td", {}, objectLink("sr", objects.get(vdi?.$SR))),
        h("td", {}, vbd.attached ? "yes" : "no"));
    })));
}

function networks(objects, vm) {
  const vifs = (vm.VIFs ?? []).map((id) => objects.get(id)).filter(Boolean).sort((a, b) => Number(a.device) - Number(b.device));
  if (vifs.length === 0) return h("p", {}, "No network interfaces.");
  return h("table", { class: "plain", id: "vifs" },
    h("thead", {}, h("tr", {}, ["Device", "MAC", "Network", "Addresses", "Attached"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, vifs.map((vif) => {
      const ips = Object.entries(vm.addresses ?? {}).filter(([k]) => k.startsWith(`${vif.device}/`)).map(([, ip]) => ip);
      return h("tr", {},
        h("td", {}, String(vif.device)), h("td", {}, h("code", {}, vif.MAC)),
        h("td", {}, objectLink("network", objects.get(vif.$network))),
        h("td", {}, ips.join(", ")), h("td", {}, vif.attached ? "yes" : "no"));
    })));
}

function tagEditor(api, vm) {
  const input = h("input", { type: "text", id: "new-tag", "aria-label": "New tag", placeholder: "new tag", size: 12 });
  const add = h("form", { class: "inline", onsubmit: (e) => {
    e.preventDefault();
    const tag = input.value.trim();
    if (tag) act(null, () => api.call("tag.add", { id: vm.id, tag })).then(() => { input.value = ""; });
  } }, input, h("button", { type: "submit", class: "secondary" }, "Add"));
  return h("div", { class: "tags" },
    (vm.tags ?? []).map((tag) => h("span", { class: "tag" }, tag,
      h("button", { type: "button", class: "link", "aria-label": `Remove tag ${tag}`, onclick: (e) => act(e.currentTarget, () => api.call("tag.remove", { id: vm.id, tag })) }, "×"))),
    add);
}

/**
 * Move a VM: to another host of its pool (live), or to a host of another pool with its disks (on the SR
 * chosen there, else that pool's default SR). A halted VM moves only to another pool (within its own pool
 * it simply starts where wanted).
 */
async function migrate(api, objects, vm) {
  const poolName = (id) => objects.get(id)?.name_label ?? "";
  const running = vm.power_state === "Running";
  const hosts = objects.where("host", (x) => x.id !== vm.$container && x.enabled !== false && (running || x.$pool !== vm.$pool))
    .sort((a, b) => (a.$pool === vm.$pool ? 0 : 1) - (b.$pool === vm.$pool ? 0 : 1) || COLLATOR.compare(a.name_label, b.name_label));
  if (hosts.length === 0) return toast("No other enabled host to move the VM to", "error");
  const srs = objects.where("SR", (sr) => sr.$pool !== vm.$pool && sr.content_type !== "iso" && sr.size > 0)
    .sort((a, b) => COLLATOR.compare(a.name_label, b.name_label));
  const values = await confirmDialog({ title: `Migrate ${vm.name_label}`, action: "Migrate",
    message: "To a host of another pool, the VM's disks and snapshots go with it.",
    fields: [
      { name: "host", id: "migrate-host", label: "To host", type: "select",
        options: hosts.map((x) => [x.id, `${x.name_label} (${poolName(x.$pool)})`]) },
      { name: "sr", id: "migrate-sr", label: "Disks to (another pool only)", type: "select",
        options: [["", "that pool's default SR"], ...srs.map((sr) => [sr.id, `${sr.name_label} (${poolName(sr.$pool)})`])] },
    ] });
  if (!values) return;
  const target = objects.get(values.host);
  const params = { vm: vm.id, targetHost: values.host };
  if (target?.$pool !== vm.$pool && values.sr) params.sr = values.sr;
  try {
    await api.call("vm.migrate", params);
    toast(`${vm.name_label} moved to ${target?.name_label}`);
  } catch (error) {
    toast(`Migrate ${vm.name_label}: ${describe(error)}`, "error");
  }
}

async function exportVm(api, vm) {
  const values = await confirmDialog({ title: `Export ${vm.name_label}`, message: "Download the VM as an XVA file. A running VM is exported through a snapshot.",
    action: "Export", fields: [{ name: "compress", label: "Compress (zstd)", type: "checkbox", value: true }] });
  if (!values) return;
  try {
    const { $getFrom } = await api.call("vm.export", { vm: vm.id, compress: values.compress ? "zstd" : false });
    const a = h("a", { href: $getFrom, download: `${vm.name_label}.xva` });
    document.body.append(a);
    a.click();
    a.remove();
    toast(`Exporting ${vm.name_label}: the download has started`);
  } catch (error) {
    toast(`Export ${vm.name_label}: ${describe(error)}`, "error");
  }
}

export function render({ api, objects, navigate }, { id }) {
  // The details are redrawn on each change; the console, made once, keeps its connection.
  const details = h("div", {});
  const view = h("article", { class: "object vm", "aria-labelledby": "object-title" }, details);
  let gone = false;
  let screenPanel = null;
  let charts = null;
  const draw = () => {
    const vm = objects.get(id);
    if (!vm || !vm.type?.startsWith("VM")) {
      screenPanel?.remove();
      screenPanel = null;
      charts?.remove();
      charts = null;
      details.replaceChildren(h("h2", { id: "object-title" }, "VM not found"),
        h("p", {}, gone ? "This VM was deleted, or you may no longer see it." : "No VM with this id is visible to you."),
        h("a", { href: "#/home/VM" }, "Back to the VMs"));
      return;
    }
    gone = true;
    if (!screenPanel && vm.type === "VM") view.append((screenPanel = consolePanel(objects, id)));
    // The charts while the VM runs (a halted VM has no measurements); made again when it starts.
    if (vm.power_state === "Running" && !charts) view.insertBefore((charts = statsPanel(api, "vm", id)), screenPanel);
    else if (vm.power_state !== "Running" && charts) {
      charts.remove();
      charts = null;
    }
    const host = objects.get(vm.$container);
    const pool = objects.get(vm.$pool);
    const focused = document.activeElement?.id;
    details.replaceChildren(
      h("header", {},
        h("h2", { id: "object-title" }, vm.name_label, " ", h("span", { id: "power-state" }, powerBadge(vm.power_state))),
        vm.name_description ? h("p", { class: "description" }, vm.name_description) : null,
        h("div", { class: "actions", role: "toolbar", "aria-label": "VM actions" },
          VM_ACTIONS.filter((a) => a.when(vm)).map((action) => h("button", {
            type: "button", id: `action-${action.id}`, class: action.danger ? "danger" : "",
            onclick: async (e) => {
              const button = e.currentTarget;
              button.disabled = true;
              const ok = await runOn(api, action, [vm]);
              button.disabled = false;
              if (ok && action.id === "delete") navigate("#/home/VM");
            },
          }, action.label)),
          ["Running", "Halted"].includes(vm.power_state) ? h("button", { type: "button", id: "action-migrate", class: "secondary", onclick: () => migrate(api, objects, vm) }, "Migrate") : null,
          h("button", { type: "button", id: "action-export", class: "secondary", onclick: () => exportVm(api, vm) }, "Export"))),
      h("section", { "aria-labelledby": "general-title" },
        h("h3", { id: "general-title" }, "General"),
        h("dl", {},
          fact("UUID", h("code", {}, vm.uuid ?? vm.id)),
          fact("Pool", objectLink("pool", pool)),
          fact(host?.type === "host" ? "Host" : "Runs on", host?.type === "host" ? objectLink("host", host) : "no host (not running)"),
          fact("Operating system", vm.os_version?.name ?? vm.os_version?.distro ?? "unknown (no guest tools)"),
          fact("Started", vm.startTime ? when(vm.startTime) : "—"),
          fact("Address", vm.mainIpAddress ?? "—"),
          fact("Tags", tagEditor(api, vm)))),
      h("section", { "aria-labelledby": "hardware-title" },
        h("h3", { id: "hardware-title" }, "Hardware"),
        h("dl", {},
          fact("CPUs", `${vm.CPUs?.number ?? "?"} (up to ${vm.CPUs?.max ?? "?"})`),
          fact("Memory", bytes(vm.memory?.size)),
          fact("Virtualization", vm.virtualizationMode ?? ""))),
      h("section", { "aria-labelledby": "disks-title" }, h("h3", { id: "disks-title" }, "Disks"), disks(objects, vm)),
      h("section", { "aria-labelledby": "vifs-title" }, h("h3", { id: "vifs-title" }, "Networks"), networks(objects, vm)),
      h("section", { "aria-labelledby": "snapshots-title" },
        h("h3", { id: "snapshots-title" }, "Snapshots"),
        (vm.snapshots ?? []).length === 0 ? h("p", {}, "No snapshots.")
          : h("ul", { id: "snapshots" }, vm.snapshots.map((sid) => objects.get(sid)).filter(Boolean)
            .sort((a, b) => (a.snapshot_time ?? 0) - (b.snapshot_time ?? 0))
            .map((s) => h("li", {}, s.name_label, " ", h("small", {}, when(s.snapshot_time)),
              h("button", { type: "button", class: "link", onclick: async (e) => {
                const sure = await confirmDialog({ title: `Revert ${vm.name_label}`, message: `Go back to "${s.name_label}"? Changes since are lost.`, action: "Revert", danger: true });
                if (sure) act(e.target, () => api.call("vm.revert", { snapshot: s.id }), `${vm.name_label} reverted`);
              } }, "Revert"))))),
    );
    if (focused) document.getElementById(focused)?.focus();
  };
  draw();
  objects.watch(view, (detail) => {
    const vm = objects.get(id);
    const parts = vm ? [id, ...(vm.$VBDs ?? []), ...(vm.VIFs ?? []), ...(vm.snapshots ?? []), vm.$container] : [id];
    if (touches(detail, { ids: parts, types: ["VDI"] })) draw();
  });
  return view;
}
