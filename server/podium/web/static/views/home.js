// Home: the pools and their hosts as a tree, and one searchable, sortable table per kind of object, with
// Xen Orchestra's filter syntax and bulk actions on the selected VMs. Everything follows the objects live.
import { VM_ACTIONS, runOn } from "../actions.js";
import { compile, FilterError } from "../filter.js";
import { touches } from "../objects.js";
import { Table } from "../table.js";
import { importDialog } from "../transfer.js";
import { bytes, COLLATOR, h, objectLink, percent, powerBadge } from "../ui.js";

const tags = (obj) => (obj.tags ?? []).map((t) => h("span", { class: "tag" }, t));

function containerName(objects, obj) {
  const where = objects.get(obj.$container);
  return where ? where.name_label : "";
}

// What each tab shows: its type, its title and its columns.
const KINDS = {
  VM: {
    title: "VMs",
    columns: (objects) => [
      { key: "name_label", label: "Name", width: "2fr", render: (vm) => [objectLink("vm", vm), vm.name_description ? h("small", {}, vm.name_description) : null] },
      { key: "power_state", label: "State", width: "7rem", render: (vm) => powerBadge(vm.power_state) },
      { optional: true, key: "$container", label: "Host or pool", value: (vm) => containerName(objects, vm), render: (vm) => containerName(objects, vm) },
      { optional: true, key: "CPUs", label: "CPUs", width: "5rem", value: (vm) => vm.CPUs?.number, render: (vm) => String(vm.CPUs?.number ?? "") },
      { optional: true, key: "memory", label: "Memory", width: "7rem", value: (vm) => vm.memory?.size, render: (vm) => bytes(vm.memory?.size) },
      { optional: true, key: "mainIpAddress", label: "Address", width: "9rem" },
      { optional: true, key: "tags", label: "Tags", value: (vm) => (vm.tags ?? []).join(" "), render: tags },
    ],
    actions: VM_ACTIONS,
  },
  host: {
    title: "Hosts",
    columns: (objects) => [
      { key: "name_label", label: "Name", width: "2fr", render: (o) => objectLink("host", o) },
      { key: "power_state", label: "State", width: "7rem", render: (o) => powerBadge(o.enabled === false ? "Disabled" : o.power_state) },
      { optional: true, key: "address", label: "Address", width: "9rem" },
      { optional: true, key: "$pool", label: "Pool", value: (o) => objects.get(o.$pool)?.name_label, render: (o) => objects.get(o.$pool)?.name_label ?? "" },
      { optional: true, key: "memory", label: "Memory used", value: (o) => o.memory?.usage / (o.memory?.size || 1), render: (o) => `${bytes(o.memory?.usage)} of ${bytes(o.memory?.size)}` },
      { optional: true, key: "version", label: "Version", width: "7rem" },
    ],
  },
  pool: {
    title: "Pools",
    columns: (objects) => [
      { key: "name_label", label: "Name", width: "2fr", render: (o) => objectLink("pool", o) },
      { optional: true, key: "master", label: "Master", value: (o) => objects.get(o.master)?.name_label, render: (o) => objects.get(o.master)?.name_label ?? "" },
      { optional: true, key: "hosts", label: "Hosts", width: "6rem", value: (o) => objects.where("host", (x) => x.$pool === o.id).length, render: (o) => String(objects.where("host", (x) => x.$pool === o.id).length) },
      { optional: true, key: "vms", label: "VMs", width: "6rem", value: (o) => objects.where("VM", (x) => x.$pool === o.id).length, render: (o) => String(objects.where("VM", (x) => x.$pool === o.id).length) },
    ],
  },
  SR: {
    title: "Storage",
    columns: (objects) => [
      { key: "name_label", label: "Name", width: "2fr", render: (o) => objectLink("sr", o) },
      { optional: true, key: "SR_type", label: "Type", width: "7rem" },
      { optional: true, key: "$container", label: "Host or pool", value: (o) => containerName(objects, o), render: (o) => containerName(objects, o) },
      { optional: true, key: "size", label: "Size", width: "7rem", render: (o) => bytes(o.size) },
      { optional: true, key: "usage", label: "Used", width: "6rem", value: (o) => o.physical_usage / (o.size || 1), render: (o) => percent(o.physical_usage, o.size) },
    ],
  },
  network: {
    title: "Networks",
    columns: (objects) => [
      { key: "name_label", label: "Name", width: "2fr", render: (o) => objectLink("network", o) },
      { optional: true, key: "bridge", label: "Bridge", width: "8rem" },
      { optional: true, key: "MTU", label: "MTU", width: "5rem" },
      { optional: true, key: "$pool", label: "Pool", value: (o) => objects.get(o.$pool)?.name_label, render: (o) => objects.get(o.$pool)?.name_label ?? "" },
    ],
  },
};

export const HOME_TYPES = Object.keys(KINDS);

const TREE_VMS = 100;
// Filtering and sorting 10,000 rows takes a frame or several: under a storm of changes, twice a second
// (a state change shows within half a second; rows in view are redrawn at once all the same).
const RECOMPUTE_MS = 500;
const REFRESH_MS = 150;

/** The tree: each pool, its hosts with their VMs (running there, or halted on its local disks, as Xen
 * Orchestra places them), and the pool's VMs that are on no host; a click filters the table. */
function tree(objects, type) {
  const opened = new Set(); // hosts (and pools' idle groups) whose VMs are shown, kept across redraws
  const nav = h("nav", { class: "tree", "aria-label": "Pools and hosts" });
  const draw = () => {
    const pools = objects.all("pool").sort((a, b) => a.name_label.localeCompare(b.name_label));
    const running = new Map(); // container (a host, or the pool for a VM running nowhere) → its VMs, one pass
    for (const vm of objects.types.get("VM")?.values() ?? []) {
      const list = running.get(vm.$container);
      if (list) list.push(vm);
      else running.set(vm.$container, [vm]);
    }
    // A host's (or the pool's halted) VMs are listed when opened: a pool of thousands stays cheap to draw.
    const group = (key, label, title, vms) => {
      const filter = `#/home/VM?s=${encodeURIComponent(`$container:${key}`)}`;
      const list = h("ul", {});
      const item = h("details", { open: opened.has(key) ? true : null },
        h("summary", {}, h("a", { href: filter }, label), h("span", { class: "count", title }, ` ${vms.length}`)), list);
      const fillList = () => {
        vms.sort((a, b) => COLLATOR.compare(a.name_label, b.name_label));
        list.replaceChildren(...vms.slice(0, TREE_VMS).map((vm) => h("li", {}, h("a", { href: `#/vm/${vm.id}` }, vm.name_label))),
          vms.length > TREE_VMS ? h("li", {}, h("a", { href: filter }, `all ${vms.length}…`)) : null);
      };
      item.addEventListener("toggle", () => {
        if (item.open) { opened.add(key); fillList(); } else opened.delete(key);
      });
      if (item.open) fillList();
      return h("li", {}, item);
    };
    nav.replaceChildren(h("ul", {}, pools.map((pool) => {
      const hosts = objects.where("host", (x) => x.$pool === pool.id).sort((a, b) => COLLATOR.compare(a.name_label, b.name_label));
      const idle = running.get(pool.id) ?? []; // a VM that runs nowhere has its pool as container
      return h("li", {},
        h("details", { open: true },
          h("summary", {}, h("a", { href: `#/home/${type}?s=${encodeURIComponent(`$pool:${pool.id}`)}` }, pool.name_label || pool.id)),
          h("ul", {},
            hosts.map((host) => { const vms = running.get(host.id) ?? []; return group(host.id, host.name_label, `${vms.length} VMs here (running, or on its local disks)`, vms); }),
            idle.length ? group(pool.id, "Not running", `${idle.length} VMs halted or suspended`, idle) : null)));
    })));
  };
  draw();
  // Counts change with every VM that starts or stops: redrawn at most once a second.
  let pending = null;
  objects.watch(nav, (detail) => {
    if (touches(detail, { types: ["pool", "host", "VM"] }) && !pending) pending = setTimeout(() => { pending = null; draw(); }, 1000);
  });
  return nav;
}

export function render({ api, objects, navigate }, { type = "VM", query = {} }) {
  const kind = KINDS[type] ?? KINDS.VM;
  type = KINDS[type] ? type : "VM";
  const search = h("input", { type: "search", id: "search", value: query.s ?? "", "aria-label": "Filter", placeholder: "power_state:running name_label:web tag:prod", autocomplete: "off", spellcheck: "false" });
  const error = h("p", { class: "filter-error", role: "status", id: "filter-error" });
  const count = h("span", { class: "count", id: "count", "aria-live": "polite" });
  const bar = h("div", { class: "bulk", role: "toolbar", "aria-label": "Actions on the selected", hidden: true });
  const table = new Table(kind.columns(objects), { label: kind.title, selectable: Boolean(kind.actions), onSelect: (ids) => drawBar(ids),
    lookup: (o) => objects.get(o.id) ?? o });
  table.el.id = "objects";
  let predicate = () => true;

  function drawBar(ids) {
    bar.hidden = ids.size === 0;
    if (bar.hidden) return;
    const vms = [...ids].map((id) => objects.get(id)).filter(Boolean);
    bar.replaceChildren(h("span", {}, `${ids.size} selected`), ...kind.actions.map((action) => {
      const button = h("button", { type: "button", class: action.danger ? "danger" : "secondary", disabled: vms.some(action.when) ? null : true,
        onclick: async () => { button.disabled = true; await runOn(api, action, vms); button.disabled = false; } }, action.label);
      return button;
    }));
  }

  function compute() {
    const all = objects.all(type);
    const shown = all.filter((o) => predicate(o));
    count.textContent = `${shown.length} of ${all.length}`;
    table.setRows(shown);
  }

  function setFilter(text, push) {
    try {
      predicate = compile(text);
      error.textContent = "";
      search.removeAttribute("aria-invalid");
    } catch (e) {
      if (!(e instanceof FilterError)) throw e;
      error.textContent = e.message;
      search.setAttribute("aria-invalid", "true");
      return;
    }
    if (push) history.replaceState(null, "", `#/home/${type}${text ? `?s=${encodeURIComponent(text)}` : ""}`);
    compute();
  }

  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => setFilter(search.value.trim(), true), 120);
  });

  // Live: a change of the listed kind recomputes the rows (at most every RECOMPUTE_MS under a storm of
  // events, so typing and scrolling stay smooth); other changes only redraw the rows in view.
  let last = 0;
  let pending = null;
  let refreshing = null;
  const view = h("div", { class: "home" },
    tree(objects, type),
    h("section", { class: "listing", "aria-labelledby": "home-title" },
      h("div", { class: "tabs", role: "tablist", "aria-label": "Kinds of objects" }, HOME_TYPES.map((t) =>
        h("a", { role: "tab", href: `#/home/${t}`, "aria-selected": t === type ? "true" : "false", class: t === type ? "current" : "" }, KINDS[t].title))),
      h("h2", { id: "home-title", class: "visually-hidden" }, kind.title),
      h("div", { class: "filter" }, search, count,
        type === "VM" ? h("button", { type: "button", id: "import-vm", class: "secondary", onclick: () => importDialog(api, objects, navigate) }, "Import VM") : null),
      error, bar, table.el));
  objects.watch(view, (detail) => {
    if (table.selected.size) drawBar(table.selected);
    // The rows in view show a change within REFRESH_MS; which rows, and their order, within RECOMPUTE_MS.
    if (!refreshing) refreshing = setTimeout(() => { refreshing = null; table.refresh(); }, REFRESH_MS);
    if (!touches(detail, { types: [type] })) return;
    const wait = RECOMPUTE_MS - (performance.now() - last);
    if (wait <= 0) {
      last = performance.now();
      compute();
    } else if (!pending) {
      pending = setTimeout(() => { pending = null; last = performance.now(); compute(); }, wait);
    }
  });
  setFilter(query.s ?? "", false);
  return view;
}
