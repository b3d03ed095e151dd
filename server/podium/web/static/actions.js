// What can be done to a VM, shared by the VM page and the home page's bulk actions. Each action says
// when it applies (from the VM's power state), whether it must be confirmed, and the API call it makes.
import { confirmDialog, describe, toast } from "./ui.js";

const running = (vm) => vm.power_state === "Running";

export const VM_ACTIONS = [
  { id: "start", label: "Start", done: "started", when: (vm) => vm.power_state === "Halted",
    call: (api, vm) => api.call("vm.start", { id: vm.id }) },
  { id: "stop", label: "Shut down", done: "shut down", when: running, confirm: "Shut down cleanly through the guest?",
    call: (api, vm) => api.call("vm.stop", { id: vm.id }) },
  { id: "force-stop", label: "Force shut down", done: "powered off", when: (vm) => vm.power_state !== "Halted", danger: true,
    confirm: "Power off at once, as pulling the plug: unsaved data in the guest is lost.",
    call: (api, vm) => api.call("vm.stop", { id: vm.id, force: true }) },
  { id: "restart", label: "Restart", done: "restarted", when: running, confirm: "Restart cleanly through the guest?",
    call: (api, vm) => api.call("vm.restart", { id: vm.id }) },
  { id: "suspend", label: "Suspend", done: "suspended", when: running,
    call: (api, vm) => api.call("vm.suspend", { id: vm.id }) },
  { id: "resume", label: "Resume", done: "resumed", when: (vm) => vm.power_state === "Suspended" || vm.power_state === "Paused",
    call: (api, vm) => api.call("vm.resume", { id: vm.id }) },
  { id: "snapshot", label: "Snapshot", done: "snapshotted", when: () => true,
    call: (api, vm) => api.call("vm.snapshot", { id: vm.id, name: `${vm.name_label} ${new Date().toISOString().slice(0, 16).replace("T", " ")}` }) },
  { id: "delete", label: "Delete", done: "deleted", when: (vm) => vm.power_state === "Halted", danger: true,
    confirm: "Delete, with its disks? This cannot be undone.", fields: [{ name: "deleteDisks", label: "Delete its disks too", type: "checkbox", value: true }],
    call: (api, vm, values) => api.call("vm.delete", { id: vm.id, deleteDisks: values?.deleteDisks ?? true }) },
];

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/**
 * Run an action on VMs (those it applies to), after confirmation where it destroys or interrupts.
 * Each VM's error is its own toast; the rest go on. Returns how many succeeded.
 */
export async function runOn(api, action, vms) {
  const targets = vms.filter(action.when);
  if (targets.length === 0) {
    toast(`${action.label}: none of the selected VMs is in a state for it`, "error");
    return 0;
  }
  let values = {};
  if (action.confirm) {
    const names = targets.length === 1 ? targets[0].name_label : plural(targets.length, "VM");
    values = await confirmDialog({ title: `${action.label} ${names}`, message: action.confirm, action: action.label,
      danger: action.danger, fields: action.fields ?? [] });
    if (!values) return 0;
  }
  let ok = 0;
  const queue = [...targets];
  const worker = async () => {
    for (let vm = queue.shift(); vm; vm = queue.shift()) {
      try {
        await action.call(api, vm, values);
        ok += 1;
      } catch (error) {
        toast(`${action.label} ${vm.name_label}: ${describe(error)}`, "error");
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, targets.length) }, worker));
  if (ok) toast(`${targets.length === 1 ? targets[0].name_label : plural(ok, "VM")} ${action.done}`);
  return ok;
}
