// The UI's entry point: resume with the token cookie, or sign in; sign out revokes the token.
import { Api } from "./api.js";

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
  for (const id of ["signin", "home", "connecting"]) $(id).hidden = id !== view;
  const focus = { signin: "email", home: "signout" }[view];
  if (focus) $(focus).focus();
}

function signedIn(user) {
  $("who").textContent = user.email;
  $("welcome").textContent = `Signed in as ${user.email} (${user.permission}).`;
  show("home");
}

async function main() {
  const api = await new Api().open();
  api.addEventListener("close", () => { $("connecting").textContent = "Connection lost: reload the page."; show("connecting"); });
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
      signedIn(user);
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
    location.reload();
  });
  const token = readToken();
  if (token) {
    try {
      return signedIn(await api.call("session.signIn", { token }));
    } catch {
      writeToken("", 0); // expired or revoked: sign in again
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

main().catch((error) => { $("connecting").textContent = error.message; });
