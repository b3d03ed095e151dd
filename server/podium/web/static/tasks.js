// The tasks panel: the pools' tasks (XAPI tasks, live in the objects) with their progress and a cancel
// button; the header's button says how many are running.
import { touches } from "./objects.js";
import { act, h, when } from "./ui.js";

export function tasksPanel({ api, objects }) {
  const badge = h("span", { class: "count", id: "tasks-count" }, "0");
  const toggle = h("button", { type: "button", id: "tasks-toggle", class: "secondary", "aria-expanded": "false", "aria-controls": "tasks" }, "Tasks ", badge);
  const list = h("ul", {});
  const panel = h("aside", { id: "tasks", class: "tasks", hidden: true, "aria-label": "Tasks" }, h("h2", {}, "Tasks"), list);
  toggle.addEventListener("click", () => {
    panel.hidden = !panel.hidden;
    toggle.setAttribute("aria-expanded", String(!panel.hidden));
    if (!panel.hidden) draw();
  });
  const draw = () => {
    const tasks = objects.all("task").sort((a, b) => (b.created ?? 0) - (a.created ?? 0));
    const pending = tasks.filter((t) => t.status === "pending");
    badge.textContent = String(pending.length);
    toggle.classList.toggle("busy", pending.length > 0);
    if (panel.hidden) return;
    if (tasks.length === 0) return list.replaceChildren(h("li", {}, "No tasks."));
    list.replaceChildren(...tasks.slice(0, 50).map((t) => h("li", { class: `task ${t.status}`, dataset: { id: t.id } },
      h("div", {}, h("strong", {}, t.name_label || "task"), " ", h("small", {}, when(t.created))),
      t.status === "pending"
        ? [h("progress", { max: "1", value: String(t.progress ?? 0), "aria-label": `${t.name_label} progress` }),
          (t.allowedOperations ?? []).includes("cancel")
            ? h("button", { type: "button", class: "link", onclick: (e) => act(e.currentTarget, () => api.call("task.cancel", { id: t.id }), `${t.name_label}: cancel asked`) }, "Cancel")
            : null]
        : h("small", {}, t.status === "failure" ? `failed: ${t.result || ""}` : t.status))));
  };
  draw();
  objects.addEventListener("change", (e) => { if (touches(e.detail, { types: ["task"] })) draw(); });
  return { toggle, panel };
}
