// New VM: from a template of a pool, with its name, CPUs, memory, the template's disks on a chosen SR and
// extra disks, network interfaces, install media (an ISO) and a cloud-init config; vm.create does it all
// or nothing, and the new VM's page opens (the VM itself arrives through the objects, live).
import { bytes, describe, h, toast } from "../ui.js";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

const byName = (a, b) => a.name_label.localeCompare(b.name_label);

function field(id, label, input, hint) {
  return h("div", { class: "field" }, h("label", { for: id }, label), input, hint ? h("small", { id: `${id}-hint` }, hint) : null);
}

export function render({ api, objects, navigate }, { query = {} }) {
  const templates = objects.all("VM-template").sort(byName);
  if (templates.length === 0) {
    return h("article", { "aria-labelledby": "newvm-title" }, h("h2", { id: "newvm-title" }, "New VM"),
      h("p", {}, "No template is visible to you: connect a pool, or ask an administrator for a role on one."));
  }
  const template = h("select", { id: "vm-template", name: "template", required: true },
    templates.map((t) => h("option", { value: t.id, selected: t.id === query.template ? true : null }, `${t.name_label} (${objects.get(t.$pool)?.name_label ?? ""})`)));
  const name = h("input", { id: "vm-name", name: "name_label", required: true, autocomplete: "off" });
  const description = h("input", { id: "vm-description", name: "name_description", autocomplete: "off" });
  const cpus = h("input", { id: "vm-cpus", name: "CPUs", type: "number", min: "1", max: "64", required: true });
  const memory = h("input", { id: "vm-memory", name: "memory", type: "number", min: "16", step: "16", required: true });
  const sr = h("select", { id: "vm-sr", name: "sr" });
  const iso = h("select", { id: "vm-iso", name: "iso" });
  const disks = h("div", { id: "vm-disks" });
  const vifs = h("div", { id: "vm-vifs" });
  const cloud = h("textarea", { id: "vm-cloud", name: "cloudConfig", rows: "6", spellcheck: "false",
    placeholder: "#cloud-config\nhostname: {name}\nssh_authorized_keys:\n  - ssh-ed25519 AAAA…" });
  const boot = h("input", { id: "vm-boot", type: "checkbox", checked: true });
  const submit = h("button", { type: "submit" }, "Create");

  // What the template's pool offers: its SRs (for disks), ISOs, networks; the template's own sizes.
  function fromTemplate() {
    const t = objects.get(template.value);
    const pool = t?.$pool;
    cpus.value = String(t?.CPUs?.number ?? 1);
    memory.value = String(Math.round((t?.memory?.size ?? 512 * MiB) / MiB));
    const srs = objects.where("SR", (s) => s.$pool === pool && s.content_type !== "iso" && s.size > 0).sort(byName);
    const defaultSr = objects.get(pool)?.default_SR;
    sr.replaceChildren(...srs.map((s) => h("option", { value: s.id, selected: s.id === defaultSr ? true : null }, `${s.name_label} (${bytes(s.size - (s.physical_usage ?? 0))} free)`)));
    const isos = objects.where("VDI", (v) => objects.get(v.$SR)?.content_type === "iso" && v.$pool === pool).sort(byName);
    iso.replaceChildren(h("option", { value: "" }, "none"), ...isos.map((v) => h("option", { value: v.id }, v.name_label)));
    const networks = objects.where("network", (n) => n.$pool === pool).sort(byName);
    vifs.replaceChildren();
    disks.replaceChildren();
    addVif(networks);
    vifs.dataset.pool = pool ?? "";
  }

  function addVif(networks = objects.where("network", (n) => n.$pool === vifs.dataset.pool).sort(byName)) {
    const index = vifs.children.length;
    const select = h("select", { id: `vm-vif-${index}`, "aria-label": `Network of interface ${index}` }, networks.map((n) => h("option", { value: n.id }, n.name_label)));
    const row = h("div", { class: "inline-row" }, select, h("button", { type: "button", class: "link", onclick: () => row.remove() }, "Remove"));
    vifs.append(row);
  }

  function addDisk() {
    const index = disks.children.length;
    const size = h("input", { id: `vm-disk-${index}`, type: "number", min: "1", value: "10", "aria-label": `Size of extra disk ${index} in GiB` });
    const where = h("select", { "aria-label": `Storage of extra disk ${index}` }, [...sr.options].map((o) => h("option", { value: o.value }, o.textContent)));
    const row = h("div", { class: "inline-row" }, size, " GiB on ", where, h("button", { type: "button", class: "link", onclick: () => row.remove() }, "Remove"));
    disks.append(row);
  }

  const form = h("form", { id: "new-vm", class: "card wide" },
    field("vm-template", "Template", template),
    field("vm-name", "Name", name),
    field("vm-description", "Description", description),
    h("div", { class: "two" }, field("vm-cpus", "CPUs", cpus), field("vm-memory", "Memory (MiB)", memory)),
    field("vm-sr", "Storage for the template's disks", sr),
    h("fieldset", {}, h("legend", {}, "Extra disks"), disks, h("button", { type: "button", class: "secondary", onclick: () => addDisk() }, "Add a disk")),
    h("fieldset", {}, h("legend", {}, "Network interfaces"), vifs, h("button", { type: "button", class: "secondary", onclick: () => addVif() }, "Add an interface")),
    field("vm-iso", "Install media (ISO in the CD drive)", iso),
    field("vm-cloud", "Cloud-init user data (optional; {name} is the VM's name)", cloud),
    h("div", { class: "field check" }, h("label", { for: "vm-boot" }, "Start it once created"), boot),
    submit);
  template.addEventListener("change", fromTemplate);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const params = {
      name_label: name.value.trim(), template: template.value, CPUs: Number(cpus.value), memory: Number(memory.value) * MiB,
      bootAfterCreate: boot.checked,
      VIFs: [...vifs.querySelectorAll("select")].map((s) => ({ network: s.value })),
      VDIs: [...disks.children].map((row) => ({ size: Math.round(Number(row.querySelector("input").value) * GiB), SR: row.querySelector("select").value, name_label: `${name.value.trim()} disk` })),
    };
    if (description.value.trim()) params.name_description = description.value.trim();
    if (sr.value) params.sr = sr.value;
    if (iso.value) params.installation = { method: "cdrom", repository: iso.value };
    if (cloud.value.trim()) params.cloudConfig = cloud.value;
    submit.disabled = true;
    submit.textContent = "Creating…";
    try {
      const id = await api.call("vm.create", params);
      toast(`${params.name_label} created`);
      navigate(`#/vm/${id}`);
    } catch (error) {
      toast(`Create ${params.name_label}: ${describe(error)}`, "error");
      submit.disabled = false;
      submit.textContent = "Create";
    }
  });
  fromTemplate();
  return h("article", { "aria-labelledby": "newvm-title" }, h("h2", { id: "newvm-title" }, "New VM"), form);
}
