// Small DOM helpers shared by the views: an element builder, formatting, toasts and confirmations.

/**
 * Build an element: h("button", {class: "danger", onclick: f}, "Delete").
 * Attributes starting with "on" are listeners; `null`, `false` and `undefined` attributes are left out.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** One collator for sorting names: String.localeCompare with options builds one per call, which made
 * sorting 10,000 rows take most of a second. */
export const COLLATOR = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

/** 1073741824 → "1 GiB"; 1536 → "1.5 KiB". */
export function bytes(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return "";
  let value = Number(n);
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${Number(value.toFixed(value >= 100 || unit === 0 ? 0 : 1))} ${UNITS[unit]}`;
}

/** A link to an object's page (`#/vm/<id>` …), by its name; "" for none. */
export function objectLink(type, obj) {
  return obj ? h("a", { href: `#/${type}/${obj.id}` }, obj.name_label || obj.id) : "";
}

/** A term and its value, for a page's <dl>. */
export function fact(label, ...value) {
  return [h("dt", {}, label), h("dd", {}, ...value)];
}

/** A percentage of two numbers, "" when the whole is unknown. */
export function percent(part, whole) {
  return whole ? `${Math.round((100 * part) / whole)} %` : "";
}

/** Seconds since the epoch → a local date and time. */
export function when(seconds) {
  if (!seconds) return "";
  return new Date(seconds * 1000).toLocaleString();
}

/** The power states as words and a class for their colour. */
export function powerBadge(state) {
  const s = state ?? "Unknown";
  return h("span", { class: `badge power-${s.toLowerCase()}` }, s);
}

const toasts = () => document.getElementById("toasts");

/** Show a message for a while; errors stay until dismissed, and screen readers announce them. */
export function toast(message, kind = "info") {
  const close = h("button", { type: "button", class: "link", "aria-label": "Dismiss" }, "×");
  const item = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, h("span", {}, message), close);
  close.addEventListener("click", () => item.remove());
  toasts().append(item);
  if (kind !== "error") setTimeout(() => item.remove(), 5000);
  return item;
}

/** An API error as a person reads it: the message, and the detail the server gave. */
export function describe(error) {
  const data = error?.data;
  const detail = typeof data === "string" ? data : data?.message ?? data?.code ?? "";
  return detail && !String(error.message).includes(detail) ? `${error.message}: ${detail}` : String(error.message ?? error);
}

/**
 * Ask before something that destroys or interrupts: a modal dialog that resolves true on confirmation.
 * `fields` are extra inputs ({name, label, type, value, id}) whose values come back in the result: text and
 * the like, "checkbox" (a boolean), "select" (with `options` [[value, text]…]) or "file" (the File chosen).
 */
export function confirmDialog({ title, message, action = "Confirm", danger = false, fields = [] }) {
  return new Promise((resolve) => {
    const inputs = fields.map((f) => {
      const id = f.id ?? `dlg-${f.name}`;
      let input;
      if (f.type === "checkbox") input = h("input", { id, type: "checkbox", checked: f.value ? true : null });
      else if (f.type === "select") {
        input = h("select", { id }, f.options.map(([value, text]) => h("option", { value, selected: value === f.value ? true : null }, text)));
      } else if (f.type === "file") input = h("input", { id, type: "file", accept: f.accept ?? null, required: true });
      else input = h("input", { id, type: f.type ?? "text", value: f.value ?? "", required: f.required ? true : null });
      return { f, input, row: h("div", { class: `field ${f.type === "checkbox" ? "check" : ""}` }, h("label", { for: id }, f.label), input) };
    });
    const form = h("form", { method: "dialog" },
      h("h2", { id: "dlg-title" }, title),
      message ? h("p", {}, message) : null,
      inputs.map((i) => i.row),
      h("div", { class: "buttons" },
        h("button", { type: "button", value: "cancel", class: "secondary" }, "Cancel"),
        h("button", { type: "submit", value: "ok", class: danger ? "danger" : "" }, action)));
    const dialog = h("dialog", { "aria-labelledby": "dlg-title" }, form);
    const done = (ok) => {
      const values = {};
      for (const { f, input } of inputs) {
        values[f.name] = f.type === "checkbox" ? input.checked : f.type === "file" ? input.files[0] ?? null : input.value;
      }
      dialog.close();
      dialog.remove();
      resolve(ok ? values : null);
    };
    form.querySelector("button[value=cancel]").addEventListener("click", () => done(false));
    form.addEventListener("submit", (e) => { e.preventDefault(); done(true); });
    dialog.addEventListener("cancel", (e) => { e.preventDefault(); done(false); });
    document.body.append(dialog);
    dialog.showModal();
    (inputs[0]?.input ?? form.querySelector("button[value=ok]")).focus();
  });
}

/** Run an API call for a button: disabled while it runs, its error shown as a toast. */
export async function act(button, work, done) {
  if (button) button.disabled = true;
  try {
    const result = await work();
    if (done) toast(done);
    return result;
  } catch (error) {
    toast(describe(error), "error");
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}
