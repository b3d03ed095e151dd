// Settings: the pools' masters Podium connects to, and what the server is. The servers' status is read
// with server.getAll (it is not an object of the pools, so it is not in the store); the page reads it
// again after each change and every few seconds while it is open.
import { act, confirmDialog, describe, h, toast } from "../ui.js";

const SECTIONS = { servers: "Servers", about: "About" };

async function servers({ api }) {
  const list = h("tbody", {});
  const table = h("table", { class: "plain", id: "servers" },
    h("thead", {}, h("tr", {}, ["Label", "Master", "Status", "Last error", ""].map((t) => h("th", { scope: "col" }, t)))), list);
  const draw = async () => {
    let all;
    try {
      all = await api.call("server.getAll");
    } catch (error) {
      list.replaceChildren(h("tr", {}, h("td", { colspan: 5 }, describe(error))));
      return;
    }
    list.replaceChildren(...all.map((s) => h("tr", { dataset: { id: s.id } },
      h("td", {}, s.label || s.host),
      h("td", {}, h("code", {}, s.master ?? s.host)),
      h("td", {}, h("span", { class: `badge status-${s.status}` }, s.enabled ? s.status : "disabled")),
      h("td", { class: "error-text" }, s.error ?? ""),
      h("td", { class: "actions" },
        s.enabled
          ? h("button", { type: "button", class: "secondary", onclick: (e) => act(e.currentTarget, () => api.call("server.disable", { id: s.id })).then(draw) }, "Disconnect")
          : h("button", { type: "button", onclick: (e) => act(e.currentTarget, () => api.call("server.enable", { id: s.id })).then(draw) }, "Connect"),
        h("button", { type: "button", class: "danger", onclick: async (e) => {
          const button = e.currentTarget;
          const sure = await confirmDialog({ title: `Remove ${s.label || s.host}`, message: "Podium forgets this pool; nothing changes on the pool itself.", action: "Remove", danger: true });
          if (sure) act(button, () => api.call("server.remove", { id: s.id }), "Server removed").then(draw);
        } }, "Remove")))));
  };
  const field = (name, label, attrs = {}) => h("div", { class: "field" }, h("label", { for: `server-${name}` }, label), h("input", { id: `server-${name}`, name, ...attrs }));
  const form = h("form", { id: "add-server", class: "card" },
    h("h3", {}, "Add a pool"),
    field("host", "Pool master (address or https://address:port)", { required: true }),
    field("label", "Label"),
    field("username", "User name", { value: "root", required: true, autocomplete: "off" }),
    field("password", "Password", { type: "password", required: true, autocomplete: "new-password" }),
    field("fingerprint", "Certificate fingerprint (SHA-256), if it is self-signed"),
    h("div", { class: "field check" }, h("label", { for: "server-allowUnauthorized" }, "Accept any certificate (not recommended)"),
      h("input", { id: "server-allowUnauthorized", name: "allowUnauthorized", type: "checkbox" })),
    h("button", { type: "submit" }, "Add"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    const params = { host: data.host, username: data.username, password: data.password };
    if (data.label) params.label = data.label;
    if (data.fingerprint) params.fingerprint = data.fingerprint;
    if (data.allowUnauthorized) params.allowUnauthorized = true;
    const ok = await act(form.querySelector("button[type=submit]"), () => api.call("server.add", params));
    if (ok !== undefined) {
      form.reset();
      toast(`${params.label || params.host} added: connecting`);
      draw();
    }
  });
  await draw();
  const timer = setInterval(() => (table.isConnected ? draw() : clearInterval(timer)), 3000);
  return [table, form];
}

async function about({ api }) {
  const version = await api.call("system.getServerVersion").catch(() => "");
  return [h("dl", {}, h("dt", {}, "Podium server"), h("dd", { id: "server-version" }, String(version)),
    h("dt", {}, "API"), h("dd", {}, "JSON-RPC 2.0 over WebSocket at /api/ (Xen Orchestra's, so xo-lib and xo-cli work)"))];
}

export function render(ctx, { section = "servers" }) {
  const current = SECTIONS[section] ? section : "servers";
  const body = h("div", {}, h("p", { role: "status" }, "Loading…"));
  const make = { servers, about }[current];
  make(ctx).then((nodes) => body.replaceChildren(...nodes)).catch((error) => body.replaceChildren(h("p", { class: "error" }, describe(error))));
  return h("article", { class: "settings", "aria-labelledby": "settings-title" },
    h("h2", { id: "settings-title" }, "Settings"),
    h("nav", { class: "tabs", "aria-label": "Settings sections" }, Object.entries(SECTIONS).map(([key, label]) =>
      h("a", { href: `#/settings/${key}`, class: key === current ? "current" : "", "aria-current": key === current ? "page" : null }, label))),
    body);
}
