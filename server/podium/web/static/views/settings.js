// Settings: the pools' masters Podium connects to, and what the server is. The servers' status is read
// with server.getAll (it is not an object of the pools, so it is not in the objects); the page reads it
// again after each change and every few seconds while it is open.
import { upload } from "../transfer.js";
import { act, bytes, confirmDialog, describe, fact, fill, h, toast, when } from "../ui.js";

const SECTIONS = { servers: "Servers", users: "Users", groups: "Groups", acls: "ACLs", tokens: "Tokens", updates: "Updates", about: "About" };

const field = (prefix, name, label, attrs = {}) => h("div", { class: "field" },
  h("label", { for: `${prefix}-${name}` }, label), h("input", { id: `${prefix}-${name}`, name, ...attrs }));
const select = (prefix, name, label, options) => h("div", { class: "field" },
  h("label", { for: `${prefix}-${name}` }, label),
  h("select", { id: `${prefix}-${name}`, name }, options.map(([value, text]) => h("option", { value }, text))));
const headings = (...names) => h("thead", {}, h("tr", {}, names.map((t) => h("th", { scope: "col" }, t))));

/** A form that calls the API with its fields, then redraws; its errors are toasts. */
function apiForm(id, title, children, submit, redraw) {
  const form = h("form", { id, class: "card" }, h("h3", {}, title), children, h("button", { type: "submit" }, title));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const ok = await act(form.querySelector("button[type=submit]"), () => submit(Object.fromEntries(new FormData(form))));
    if (ok !== undefined) {
      form.reset();
      redraw();
    }
  });
  return form;
}

function removeButton(label, what, work, redraw) {
  return h("button", { type: "button", class: "danger", "aria-label": `${label} ${what}`, onclick: async (e) => {
    const button = e.currentTarget;
    if (await confirmDialog({ title: `${label} ${what}`, message: "This cannot be undone.", action: label, danger: true })) {
      act(button, work, `${what}: done`).then(redraw);
    }
  } }, label);
}

async function users({ api, user: me }) {
  const list = h("tbody", {});
  const draw = async () => {
    const all = await api.call("user.getAll");
    list.replaceChildren(...all.map((u) => {
      const permission = h("select", { "aria-label": `Permission of ${u.email}`, disabled: u.id === me.id ? true : null,
        onchange: (e) => act(e.currentTarget, () => api.call("user.set", { id: u.id, permission: e.currentTarget.value }), `${u.email}: ${e.currentTarget.value}`) },
      ["none", "user", "admin"].map((p) => h("option", { value: p, selected: p === u.permission ? true : null }, p)));
      return h("tr", { dataset: { id: u.id } }, h("td", {}, u.email), h("td", {}, permission),
        h("td", {}, u.id === me.id ? "(you)" : removeButton("Delete", u.email, () => api.call("user.delete", { id: u.id }), draw)));
    }));
  };
  await draw();
  return [h("table", { class: "plain", id: "users" }, headings("E-mail", "Permission", ""), list),
    apiForm("add-user", "Create user", [
      field("user", "email", "E-mail", { type: "email", required: true, autocomplete: "off" }),
      field("user", "password", "Password", { type: "password", required: true, autocomplete: "new-password" }),
      select("user", "permission", "Permission", [["none", "none (only what ACLs give)"], ["user", "user"], ["admin", "admin"]]),
    ], (v) => api.call("user.create", v), draw)];
}

async function groups({ api }) {
  const list = h("tbody", {});
  const draw = async () => {
    const [all, people] = await Promise.all([api.call("group.getAll"), api.call("user.getAll")]);
    const email = new Map(people.map((u) => [u.id, u.email]));
    list.replaceChildren(...all.map((g) => {
      const add = h("select", { "aria-label": `Add a user to ${g.name}` }, h("option", { value: "" }, "add a user…"),
        people.filter((u) => !g.users.includes(u.id)).map((u) => h("option", { value: u.id }, u.email)));
      add.addEventListener("change", () => add.value && act(add, () => api.call("group.addUser", { id: g.id, userId: add.value })).then(draw));
      return h("tr", { dataset: { id: g.id } }, h("td", {}, g.name),
        h("td", {}, g.users.map((id) => h("span", { class: "tag" }, email.get(id) ?? id,
          h("button", { type: "button", class: "link", "aria-label": `Remove ${email.get(id) ?? id} from ${g.name}`,
            onclick: (e) => act(e.currentTarget, () => api.call("group.removeUser", { id: g.id, userId: id })).then(draw) }, "×"))), add),
        h("td", {}, removeButton("Delete", g.name, () => api.call("group.delete", { id: g.id }), draw)));
    }));
  };
  await draw();
  return [h("table", { class: "plain", id: "groups" }, headings("Name", "Users", ""), list),
    apiForm("add-group", "Create group", [field("group", "name", "Name", { required: true })], (v) => api.call("group.create", v), draw)];
}

/** Objects an ACL can name, as "name (type)": pools, hosts, VMs, SRs and networks. */
function aclObjects(objects) {
  return ["pool", "host", "VM", "SR", "network"].flatMap((type) => objects.all(type).map((o) => [o.id, `${o.name_label} (${type})`]))
    .sort((a, b) => a[1].localeCompare(b[1]));
}

async function acls({ api, objects }) {
  const list = h("tbody", {});
  let subjects = [];
  const draw = async () => {
    const [all, people, teams] = await Promise.all([api.call("acl.get"), api.call("user.getAll"), api.call("group.getAll")]);
    subjects = [...people.map((u) => [u.id, u.email]), ...teams.map((g) => [g.id, `${g.name} (group)`])];
    const names = new Map(subjects);
    list.replaceChildren(...all.map((a) => {
      const o = objects.get(a.object);
      return h("tr", {}, h("td", {}, names.get(a.subject) ?? a.subject), h("td", {}, o ? `${o.name_label} (${o.type})` : a.object), h("td", {}, a.action),
        h("td", {}, removeButton("Remove", `the ${a.action} ACL`, () => api.call("acl.remove", { subject: a.subject, object: a.object, action: a.action }), draw)));
    }));
    const subjectSelect = document.getElementById("acl-subject");
    if (subjectSelect) subjectSelect.replaceChildren(...subjects.map(([v, t]) => h("option", { value: v }, t)));
  };
  await draw();
  const roles = await api.call("acl.getRoles");
  return [h("table", { class: "plain", id: "acls" }, headings("User or group", "Object", "Role", ""), list),
    apiForm("add-acl", "Add ACL", [
      select("acl", "subject", "User or group", subjects),
      select("acl", "object", "Object (and everything under it)", aclObjects(objects)),
      select("acl", "action", "Role", roles.map((r) => [r.id, `${r.name}: ${r.permissions.join(", ")}`])),
    ], (v) => api.call("acl.add", v), draw)];
}

async function tokens({ api }) {
  const list = h("tbody", {});
  const draw = async () => {
    const all = await api.call("user.getAuthenticationTokens");
    list.replaceChildren(...all.map((t) => h("tr", {},
      h("td", {}, t.description || "(no description)"), h("td", {}, new Date(t.created_at).toLocaleString()),
      h("td", {}, new Date(t.expiration).toLocaleString()),
      h("td", {}, t.last_uses?.[""] ? new Date(t.last_uses[""].timestamp).toLocaleString() : "never"),
      h("td", {}, removeButton("Revoke", t.description || "token", () => api.call("token.deleteOwn", { token: t.id }), draw)))));
  };
  await draw();
  return [h("p", {}, "Your tokens: each signs in whoever holds it until it expires or is revoked. Revoking this browser's own signs it out."),
    h("table", { class: "plain", id: "tokens" }, headings("Description", "Created", "Expires", "Last used", ""), list)];
}

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

/**
 * The appliance's updates (admins): what runs and is installed, the last operation and check, the release
 * the channel offers with its notes, an upgrade from the channel or from an uploaded bundle, a rollback.
 * The updater service does the work and the server restarts during it, so the page follows its state with
 * updater.getState (each second while busy) and rides out the restart on the reconnecting socket.
 */
async function updates({ api }) {
  const facts = h("dl", { id: "update-status" });
  const bar = h("progress", { max: "100", value: "0", "aria-label": "Update progress" });
  const step = h("span", { id: "update-step" });
  const progress = h("div", { class: "card", id: "update-progress", role: "status", hidden: true }, step, bar);
  const offer = h("div", { id: "update-offer" });
  const buttons = h("div", { class: "actions" });
  let busy = false;
  let timer = null;
  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(() => (facts.isConnected ? draw() : null), busy ? 1000 : 5000);
  };
  const start = async (button, work) => {
    const started = await act(button, work);
    if (started !== undefined) {
      busy = true;
      draw();
    }
  };
  const upgradeButton = (version, params) => h("button", { type: "button", id: "update-upgrade", onclick: async (e) => {
    const button = e.currentTarget;
    const sure = await confirmDialog({ title: `Upgrade to ${version}`, action: "Upgrade",
      message: "Podium restarts during the upgrade (about a minute); it goes back to this release by itself if the new one does not start." });
    if (sure) start(button, () => api.call("updater.upgrade", params));
  } }, `Upgrade to ${version}`);
  const notes = (text) => h("pre", { class: "notes" }, text || "(no release notes)");

  async function draw() {
    let state;
    try {
      state = await api.call("updater.getState");
    } catch (error) {
      if (busy) { // the server is restarting into the new release, or the socket is reconnecting
        step.textContent = "The server is restarting…";
        schedule();
      } else {
        facts.replaceChildren(h("dd", { class: "error-text" }, describe(error)));
        buttons.replaceChildren();
      }
      return;
    }
    busy = Boolean(state.busy);
    progress.hidden = !busy;
    if (busy) {
      bar.value = state.progress?.percent ?? 0;
      step.textContent = `${state.busy}: ${state.progress?.message ?? "starting"} (${state.progress?.percent ?? 0} %)`;
    }
    const last = state.last;
    const check = state.last_check;
    fill(facts,
      fact("Running", h("strong", { id: "update-current" }, state.current ?? "nothing installed")),
      fact("Channel", state.channel ?? ""),
      fact("Installed", (state.installed ?? []).join(", ") || "-"),
      state.bad?.length ? fact("Failed", `${state.bad.join(", ")} (skipped by checks)`) : null,
      state.interrupted ? fact("Interrupted", `${state.interrupted.operation} to ${state.interrupted.target} in ${state.interrupted.phase}`) : null,
      fact("Last operation", last ? h("span", { id: "update-last", class: last.ok ? "" : "error-text" },
        `${when(last.at)} ${last.operation}: ${last.message}`) : "none"),
      fact("Last check", check ? `${when(check.at)}: ${check.message}` : "never"));
    const available = check?.ok && check.available && check.available.version !== state.current ? check.available : null;
    offer.replaceChildren(...(available ? [h("h3", {}, `Release ${available.version} is available`), notes(available.notes)] : []));
    fill(buttons,
      h("button", { type: "button", id: "update-check", disabled: busy ? true : null, onclick: async (e) => {
        const answer = await act(e.currentTarget, () => api.call("updater.check"));
        if (answer) toast(answer.message);
        draw();
      } }, "Check now"),
      available && !busy ? upgradeButton(available.version, { version: available.version }) : null,
      h("button", { type: "button", class: "danger", id: "update-rollback", disabled: busy || (state.installed ?? []).length < 2 ? true : null,
        onclick: async (e) => {
          const button = e.currentTarget;
          const sure = await confirmDialog({ title: "Roll back", action: "Roll back", danger: true,
            message: "Go back to the release this one was upgraded from. Refused when the database changed since (its backup would lose what was done)." });
          if (sure) start(button, () => api.call("updater.rollback"));
        } }, "Roll back"));
    schedule();
  }

  const file = h("input", { type: "file", id: "bundle-file", accept: ".bundle", required: true });
  const sending = h("progress", { max: "1", value: "0", hidden: true, "aria-label": "Bundle upload" });
  const form = h("form", { class: "card", id: "upload-bundle" }, h("h3", {}, "Install from a file"),
    h("p", {}, "An update bundle (podium-<version>.bundle) for appliances without access to an update server. Its signature is checked before anything else."),
    h("div", { class: "field" }, h("label", { for: "bundle-file" }, "Bundle"), file), sending,
    h("button", { type: "submit" }, "Upload and check"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const chosen = file.files[0];
    if (!chosen) return;
    sending.hidden = false;
    const checked = await act(form.querySelector("button[type=submit]"), async () => {
      const { $sendTo } = await api.call("updater.upload");
      return upload($sendTo, chosen, (done, total) => { sending.value = total ? done / total : 0; });
    });
    sending.hidden = true;
    if (!checked) return;
    form.reset();
    const m = checked.manifest;
    const sure = await confirmDialog({ title: `Install ${m.version}`, action: `Upgrade to ${m.version}`,
      message: `A bundle of ${bytes(checked.size)} for the ${m.channel} channel, signed by the key ${checked.signed_by}. ${m.notes || ""}` });
    if (sure) start(null, () => api.call("updater.upgrade", { upload: checked.upload }));
  });
  await draw();
  return [facts, progress, offer, buttons, form];
}

async function about({ api }) {
  const version = await api.call("system.getServerVersion").catch(() => "");
  return [h("dl", {}, h("dt", {}, "Podium server"), h("dd", { id: "server-version" }, String(version)),
    h("dt", {}, "API"), h("dd", {}, "JSON-RPC 2.0 over WebSocket at /api/ (Xen Orchestra's, so xo-lib and xo-cli work)"))];
}

export function render(ctx, { section = "servers" }) {
  const current = SECTIONS[section] ? section : "servers";
  const body = h("div", {}, h("p", { role: "status" }, "Loading…"));
  const make = { servers, users, groups, acls, tokens, updates, about }[current];
  make(ctx).then((nodes) => body.replaceChildren(...nodes)).catch((error) => body.replaceChildren(h("p", { class: "error" }, describe(error))));
  return h("article", { class: "settings", "aria-labelledby": "settings-title" },
    h("h2", { id: "settings-title" }, "Settings"),
    h("nav", { class: "tabs", "aria-label": "Settings sections" }, Object.entries(SECTIONS).map(([key, label]) =>
      h("a", { href: `#/settings/${key}`, class: key === current ? "current" : "", "aria-current": key === current ? "page" : null }, label))),
    body);
}
