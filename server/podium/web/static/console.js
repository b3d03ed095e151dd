// A VM's console in the page: noVNC (vendored by `make`, see server/web-vendor) on the server's console
// proxy, /api/consoles/<id>, which knows the user by the token cookie. When the VM reboots its console
// goes away (the proxy closes with 4000); the panel connects again once the VM runs, with a growing wait
// between attempts, and says what it is doing.
import { h } from "./ui.js";

const NOVNC = "./vendor/novnc/core/rfb.js";

export function consolePanel(objects, id) {
  const status = h("p", { class: "console-status", role: "status", id: "console-status" }, "Connecting…");
  const screen = h("div", { class: "console-screen", id: "console-screen", "aria-label": "VM console (keyboard input goes to the VM)" });
  const keys = h("button", { type: "button", class: "secondary", id: "console-cad", disabled: true }, "Send Ctrl+Alt+Del");
  const panel = h("section", { class: "console", "aria-labelledby": "console-title" },
    h("h3", { id: "console-title" }, "Console"), h("div", { class: "actions" }, keys, status), screen);
  let rfb = null;
  let attempts = 0;
  let timer = null;

  const running = () => objects.get(id)?.power_state === "Running";
  const say = (text) => { status.textContent = text; };

  async function connect() {
    timer = null;
    if (!panel.isConnected || rfb) return;
    if (!running()) return say("The VM is not running: its console opens when it starts.");
    let RFB;
    try {
      ({ default: RFB } = await import(NOVNC));
    } catch {
      return say("The console client (noVNC) is missing from this installation: run `make` to vendor it.");
    }
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/consoles/${encodeURIComponent(id)}`;
    say(attempts ? `Connecting again (attempt ${attempts + 1})…` : "Connecting…");
    rfb = new RFB(screen, url, { wsProtocols: ["binary"] });
    rfb.scaleViewport = true;
    rfb.addEventListener("connect", () => {
      attempts = 0;
      keys.disabled = false;
      say("Connected: click the screen to type.");
    });
    rfb.addEventListener("disconnect", () => {
      rfb = null;
      keys.disabled = true;
      if (!panel.isConnected) return;
      if (!running()) return say("The VM stopped: its console opens again when it starts.");
      attempts += 1;
      const wait = Math.min(10, 2 ** Math.min(attempts, 4) / 2);
      say(`The console closed; connecting again in ${wait} s…`);
      timer = setTimeout(connect, wait * 1000);
    });
    rfb.addEventListener("securityfailure", (e) => say(`The console refused the connection: ${e.detail.reason ?? "security failure"}`));
  }

  keys.addEventListener("click", () => rfb?.sendCtrlAltDel());
  // Follow the VM: it started (connect now), or it stopped (the disconnect handler says so).
  objects.watch(panel, (detail) => {
    if ((detail.ids === null || detail.ids.has(id)) && running() && !rfb && !timer) connect();
  });
  // Leaving the page closes the console.
  const leave = new MutationObserver(() => {
    if (!panel.isConnected) {
      leave.disconnect();
      clearTimeout(timer);
      rfb?.disconnect();
    }
  });
  queueMicrotask(() => {
    leave.observe(document.getElementById("view") ?? document.body, { childList: true, subtree: true });
    connect();
  });
  return panel;
}
