// The pages of a host, a pool, a storage repository and a network: what each is, and what it holds
// (as the home page's live tables, filtered to it).
import { statsPanel } from "../charts.js";
import { touches } from "../objects.js";
import { Table } from "../table.js";
import { importDialog } from "../transfer.js";
import { act, bytes, confirmDialog, fact, h, objectLink, percent, powerBadge, when } from "../ui.js";


const VM_COLUMNS = [
  { key: "name_label", label: "Name", width: "2fr", render: (vm) => objectLink("vm", vm) },
  { key: "power_state", label: "State", width: "7rem", render: (vm) => powerBadge(vm.power_state) },
  { optional: true, key: "CPUs", label: "CPUs", width: "5rem", value: (vm) => vm.CPUs?.number, render: (vm) => String(vm.CPUs?.number ?? "") },
  { optional: true, key: "memory", label: "Memory", width: "7rem", value: (vm) => vm.memory?.size, render: (vm) => bytes(vm.memory?.size) },
  { optional: true, key: "mainIpAddress", label: "Address", width: "9rem" },
];

/** A live table of the objects of a type that pass `test`. */
function live(objects, label, type, columns, test) {
  const table = new Table(columns, { label });
  const compute = () => table.setRows(objects.where(type, test));
  compute();
  objects.watch(table.el, (detail) => (touches(detail, { types: [type] }) ? compute() : table.refresh()));
  return table.el;
}

const PAGES = {
  host: {
    title: "Host",
    facts: (objects, o) => [
      fact("State", powerBadge(o.enabled === false ? "Disabled" : o.power_state)),
      fact("Address", o.address ?? ""), fact("Pool", objectLink("pool", objects.get(o.$pool))),
      fact("Version", `${o.productBrand ?? ""} ${o.version ?? ""}`.trim()),
      fact("CPUs", String(o.CPUs?.cpu_count ?? "")), fact("Memory", `${bytes(o.memory?.usage)} used of ${bytes(o.memory?.size)}`),
      fact("Started", when(o.startTime)),
    ],
    actions: (api, o) => [
      o.enabled === false
        ? h("button", { type: "button", id: "action-enable", onclick: (e) => act(e.currentTarget, () => api.call("host.enable", { id: o.id }), `${o.name_label} enabled`) }, "Enable")
        : h("button", { type: "button", id: "action-disable", class: "secondary", onclick: async (e) => {
          const button = e.currentTarget;
          if (await confirmDialog({ title: `Disable ${o.name_label}`, message: "No new VM will start on this host until it is enabled again.", action: "Disable" })) {
            act(button, () => api.call("host.disable", { id: o.id }), `${o.name_label} disabled`);
          }
        } }, "Disable"),
    ],
    holds: (objects, o) => [["VMs on this host", live(objects, "VMs on this host", "VM", VM_COLUMNS, (vm) => vm.$container === o.id)]],
  },
  pool: {
    title: "Pool",
    facts: (objects, o) => [
      fact("Master", objectLink("host", objects.get(o.master))),
      fact("Default storage", objectLink("sr", objects.get(o.default_SR))),
      fact("Description", o.name_description ?? ""),
    ],
    holds: (objects, o) => [
      ["Hosts", live(objects, "Hosts", "host", [
        { key: "name_label", label: "Name", width: "2fr", render: (x) => objectLink("host", x) },
        { key: "power_state", label: "State", render: (x) => powerBadge(x.enabled === false ? "Disabled" : x.power_state) },
        { optional: true, key: "address", label: "Address" },
      ], (x) => x.$pool === o.id)],
      ["VMs", live(objects, "VMs of the pool", "VM", VM_COLUMNS, (vm) => vm.$pool === o.id)],
    ],
  },
  sr: {
    title: "Storage",
    facts: (objects, o) => [
      fact("Type", o.SR_type ?? ""), fact("Content", o.content_type ?? ""),
      fact("Size", bytes(o.size)), fact("Used", `${bytes(o.physical_usage)} (${percent(o.physical_usage, o.size)})`),
      fact("Shared", o.shared ? "yes" : "no"), fact("Host or pool", objectLink(objects.get(o.$container)?.type === "host" ? "host" : "pool", objects.get(o.$container))),
    ],
    actions: (api, o, { objects, navigate }) => [
      h("button", { type: "button", id: "action-import", onclick: () => importDialog(api, objects, navigate, o.id) }, "Import VM"),
      h("button", { type: "button", id: "action-scan", class: "secondary", onclick: (e) => act(e.currentTarget, () => api.call("sr.scan", { id: o.id }), `${o.name_label} rescanned`) }, "Rescan"),
    ],
    holds: (objects, o) => [["Disks", live(objects, "Disks", "VDI", [
      { key: "name_label", label: "Name", width: "2fr" },
      { optional: true, key: "size", label: "Size", render: (x) => bytes(x.size) },
      { optional: true, key: "usage", label: "Allocated", render: (x) => bytes(x.usage) },
    ], (x) => x.$SR === o.id)]],
  },
  network: {
    title: "Network",
    facts: (objects, o) => [
      fact("Bridge", o.bridge ?? ""), fact("MTU", String(o.MTU ?? "")), fact("Pool", objectLink("pool", objects.get(o.$pool))),
      fact("Description", o.name_description ?? ""),
    ],
    holds: (objects, o) => [["Interfaces of VMs", live(objects, "Interfaces of VMs", "VIF", [
      { optional: true, key: "VM", label: "VM", width: "2fr", value: (x) => objects.get(x.$VM)?.name_label, render: (x) => objectLink("vm", objects.get(x.$VM)) },
      { optional: true, key: "device", label: "Device" }, { key: "MAC", label: "MAC" },
    ], (x) => x.$network === o.id)]],
  },
};

export const OBJECT_TYPES = Object.keys(PAGES);

export function render(ctx, { type, id }) {
  const { api, objects } = ctx;
  const page = PAGES[type];
  const view = h("article", { class: `object ${type}`, "aria-labelledby": "object-title" });
  const holds = h("div", {});
  const head = h("div", {});
  view.append(head, holds);
  let drawnHolds = false;
  const draw = () => {
    const o = objects.get(id);
    if (!o) {
      head.replaceChildren(h("h2", { id: "object-title" }, `${page.title} not found`), h("p", {}, "Nothing with this id is visible to you."));
      holds.replaceChildren();
      drawnHolds = false;
      return;
    }
    head.replaceChildren(
      h("header", {}, h("h2", { id: "object-title" }, o.name_label || o.id, h("small", {}, ` ${page.title}`)),
        page.actions ? h("div", { class: "actions", role: "toolbar", "aria-label": `${page.title} actions` }, page.actions(api, o, ctx)) : null),
      h("section", { "aria-labelledby": "general-title" }, h("h3", { id: "general-title" }, "General"), h("dl", {}, page.facts(objects, o))));
    if (!drawnHolds) {
      holds.replaceChildren(...page.holds(objects, o).map(([title, table], i) =>
        h("section", { "aria-labelledby": `holds-${i}` }, h("h3", { id: `holds-${i}` }, title), table)));
      if (type === "host") holds.prepend(statsPanel(api, "host", id));
      drawnHolds = true;
    }
  };
  draw();
  objects.watch(view, (detail) => { if (touches(detail, { ids: [id] })) draw(); });
  return view;
}
