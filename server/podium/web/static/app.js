// The UI's entry point: resume with the token cookie, or sign in; then load every visible object into
// the objects, which the server's notifications keep live, and show the page the address names.
// Sign out revokes the token.
import { Api } from "./api.js";
import { ObjectCache } from "./objects.js";
import { tasksPanel } from "./tasks.js";
import { describe, h, toast } from "./ui.js";
import * as home from "./views/home.js";
import * as newVm from "./views/newvm.js";
import * as objectPage from "./views/object.js";
import * as settings from "./views/settings.js";
import * as vmPage from "./views/vm.js";

const COOKIE = "authenticationToken"; // Xen Orchestra's name; the console proxy reads it too
const LIFETIME_DAYS = 30;
const $ = (id) => document.getElementById(id);

function readToken() {
  const found = document.cookie.split("; ").find((c) => c.startsWith(`${COOKIE}=`));
  return found ? decodeURIComponent(found.slice(COOKIE.length + 1)) : null;
}

function writeToken(token, days) {
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = `${COOKIE}=${encodeURIComponent(token)}; Path=/; Max-Age=${days * 86400}; SameSite=Strict${secure}`;
}

function show(view) {
  for (const id of ["signin", "view", "connecting"]) $(id).hidden = id !== view;
  $("nav").hidden = $("session").hidden = view !== "view";
  if (view === "signin") $("email").focus();
}

/** `#/vm/ID`, `#/home/VM?s=…` → a view and its parameters. */
function route(hash) {
  const [path, search = ""] = hash.replace(/^#/, "").split("?");
  const query = Object.fromEntries(new URLSearchParams(search));
  const [, section = "home", arg = ""] = path.split("/");
  if (section === "vm" && arg) return { view: vmPage, params: { id: arg }, section: "home", title: "VM" };
  if (objectPage.OBJECT_TYPES.includes(section) && arg) return { view: objectPage, params: { type: section, id: arg }, section: "home", title: section };
  if (section === "new-vm") return { view: newVm, params: { query }, section: "new-vm", title: "New VM" };
  if (section === "settings") return { view: settings, params: { section: arg || "servers" }, section: "settings", title: "Settings" };
  return { view: home, params: { type: arg || "VM", query }, section: "home", title: "Home" };
}

async function start(api, user) {
  $("who").textContent = `${user.email} (${user.permission})`;
  $("connecting").textContent = "Loading the pools…";
  const objects = new ObjectCache(api);
  await objects.load();
  const { toggle, panel } = tasksPanel({ api, objects });
  $("tasks-slot").replaceChildren(toggle);
  document.body.append(panel);
  const ctx = { api, objects, user, navigate: (hash) => { location.hash = hash; } };
  const draw = () => {
    const { view, params, section, title } = route(location.hash || "#/home/VM");
    for (const a of $("nav").querySelectorAll("a")) {
      if (a.dataset.section === section) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    document.title = `${title} · Podium`;
    try {
      $("view").replaceChildren(view.render(ctx, params));
    } catch (error) {
      $("view").replaceChildren(h("p", { class: "error" }, describe(error)));
    }
  };
  window.addEventListener("hashchange", () => { draw(); $("view").focus({ preventScroll: true }); });
  draw();
  show("view");
  return objects;
}

/**
 * When the socket closes (the server restarts during an upgrade, a proxy reloads, the network blinks), open
 * it again with growing pauses, sign in again with the token cookie and read the objects again; the page
 * stays as it is meanwhile, with a banner saying so. A token that no longer signs in goes back to sign-in.
 */
function keepConnected(api, session) {
  let retrying = false;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  api.addEventListener("close", async () => {
    if (retrying) return; // a failed attempt closes too
    retrying = true;
    $("offline").hidden = false;
    for (let pause = 500; ; pause = Math.min(2 * pause, 8000)) {
      await sleep(pause);
      try {
        await api.open();
      } catch {
        continue;
      }
      if (!session.objects) break; // not signed in yet: the sign-in form works again
      const token = readToken();
      try {
        if (!token) throw Object.assign(new Error("signed out"), { code: 3 });
        await api.call("session.signIn", { token });
        await session.objects.load();
        break;
      } catch (error) {
        if (error.code === 3) { // invalidCredentials: the token expired or was revoked meanwhile
          writeToken("", 0);
          location.reload();
          return;
        }
      }
    }
    retrying = false;
    $("offline").hidden = true;
    toast("Connected again");
    offerReload(api);
  });
}

/** After an upgrade the server runs a newer Podium than the one this page came from: offer its pages. */
async function offerReload(api) {
  const running = await api.call("system.getServerVersion").catch(() => null);
  const mine = document.querySelector('meta[name="podium-version"]')?.content;
  if (!running || !mine || running === mine) return;
  $("reload-text").textContent = `Podium ${running} is now running (this page is ${mine}): reload to use its new version.`;
  $("reload-button").onclick = () => location.reload();
  $("reload").hidden = false;
}

async function main() {
  const api = await new Api().open();
  const session = { objects: null };
  keepConnected(api, session);
  $("signin").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("signin-error").hidden = true;
    try {
      const user = await api.call("session.signIn", { email: $("email").value, password: $("password").value });
      const fresh = await api.call("token.create", {
        expiresIn: `${LIFETIME_DAYS} days`, description: "web UI", client: { id: browserId() },
      });
      writeToken(fresh, LIFETIME_DAYS);
      $("password").value = "";
      session.objects = await start(api, user);
    } catch (error) {
      $("signin-error").textContent = error.message;
      $("signin-error").hidden = false;
      $("password").focus();
    }
  });
  $("signout").addEventListener("click", async () => {
    const current = readToken();
    if (current) await api.call("token.deleteOwn", { token: current }).catch(() => {});
    writeToken("", 0);
    await api.call("session.signOut").catch(() => {});
    location.hash = "";
    location.reload();
  });
  const token = readToken();
  if (token) {
    let user = null;
    try {
      user = await api.call("session.signIn", { token });
    } catch {
      writeToken("", 0); // expired or revoked: sign in again
    }
    if (user) {
      session.objects = await start(api, user);
      return;
    }
  }
  show("signin");
}

function browserId() {
  let id = localStorage.getItem("podium.client");
  if (!id) {
    id = crypto.randomUUID();
    localStorage.setItem("podium.client", id);
  }
  return id;
}

main().catch((error) => {
  $("connecting").textContent = describe(error);
  toast(describe(error), "error");
});
