// Importing a VM from an XVA file: vm.import gives an upload address ($sendTo), the file goes there with
// its progress shown (and a cancel button), and the new VM's id comes back when the pool has it.
import { bytes, COLLATOR, confirmDialog, describe, h, toast } from "./ui.js";

/** PUT a file to a $sendTo address with its progress; resolves the JSON-RPC result the address answers. */
export function upload(url, file, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.upload.addEventListener("progress", (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size));
    xhr.addEventListener("load", () => {
      let answer = null;
      try {
        answer = JSON.parse(xhr.responseText);
      } catch {
        // not JSON: said below with the status
      }
      if (xhr.status === 200 && answer?.result) resolve(answer.result);
      else reject(new Error(answer?.error?.message ?? `the upload failed (HTTP ${xhr.status}): ${xhr.responseText.slice(0, 200)}`));
    });
    xhr.addEventListener("error", () => reject(new Error("the upload was cut off")));
    xhr.addEventListener("abort", () => reject(new Error("cancelled")));
    signal?.addEventListener("abort", () => xhr.abort());
    xhr.send(file);
  });
}

/** Upload an XVA into an SR; resolves the new VM's id (undefined when it failed or was cancelled). */
export async function importXva(api, sr, file) {
  const bar = h("progress", { max: "1", value: "0", "aria-label": `Uploading ${file.name}` });
  const text = h("span", {}, `Importing ${file.name}: 0 %`);
  const stop = new AbortController();
  const cancel = h("button", { type: "button", class: "link", onclick: () => stop.abort() }, "Cancel");
  const item = h("div", { class: "toast transfer", role: "status", id: "import-progress" }, h("div", {}, text, bar), cancel);
  document.getElementById("toasts").append(item);
  const started = performance.now();
  try {
    const { $sendTo } = await api.call("vm.import", { sr: sr.id });
    const id = await upload($sendTo, file, (done, total) => {
      bar.value = total ? done / total : 0;
      const rate = done / Math.max(0.001, (performance.now() - started) / 1000);
      text.textContent = `Importing ${file.name}: ${Math.floor((100 * done) / (total || 1))} % of ${bytes(total)} (${bytes(rate)}/s)`;
    }, stop.signal);
    toast(`${file.name} imported`);
    return id;
  } catch (error) {
    toast(`Import ${file.name}: ${describe(error)}`, "error");
    return undefined;
  } finally {
    item.remove();
  }
}

/** Ask for an XVA file and the SR to put it on, then import it; `navigate` opens the new VM. */
export async function importDialog(api, objects, navigate, srId) {
  const srs = objects.where("SR", (sr) => sr.content_type !== "iso" && sr.SR_type !== "iso" && sr.size > 0)
    .sort((a, b) => COLLATOR.compare(a.name_label, b.name_label));
  const values = await confirmDialog({ title: "Import a VM", action: "Import", fields: [
    { name: "file", id: "import-file", label: "XVA file", type: "file", accept: ".xva,application/x-tar" },
    { name: "sr", id: "import-sr", label: "Storage", type: "select", value: srId, options: srs.map((sr) => [sr.id,
      `${sr.name_label} (${objects.get(sr.$pool)?.name_label ?? ""}, ${bytes(sr.size - (sr.physical_usage ?? 0))} free)`]) },
  ] });
  const sr = objects.get(values?.sr);
  if (!values?.file || !sr) return;
  const id = await importXva(api, sr, values.file);
  if (id) navigate(`#/vm/${id}`);
}
