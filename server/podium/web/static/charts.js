// Stats charts of a VM or a host (CPU, memory, network, disk), from vm.stats / host.stats, which read the
// host's rrd_updates as Xen Orchestra does. Measurements are not objects of the pool, so they are not
// pushed: the panel asks again every 5 s while it is in the page. Drawn with uPlot (vendored by `make`).
import { bytes, h } from "./ui.js";

const UPLOT = "./vendor/uplot/uPlot.esm.js";
const REFRESH_MS = 5000;

const sum = (series) => {
  const lists = Object.values(series ?? {}).filter(Array.isArray);
  if (lists.length === 0) return null;
  return lists[0].map((_, i) => lists.reduce((total, list) => total + (list[i] ?? 0), 0));
};
const average = (series) => {
  const lists = Object.values(series ?? {}).filter(Array.isArray);
  const total = sum(series);
  return total && total.map((v) => v / lists.length);
};

/** The charts of one kind of object: each a title, series (label → values) and a unit formatter. */
function charts(kind, stats) {
  const cpu = average(stats.cpus); // per CPU, in % (the server scales as Xen Orchestra does)
  const memoryUsed = stats.memory && stats.memoryFree // both in bytes
    ? stats.memory.map((m, i) => (m == null ? null : m - (stats.memoryFree[i] ?? 0)))
    : stats.memory;
  const net = kind === "vm" ? stats.vifs : stats.pifs;
  const out = [
    { id: "cpu", title: "CPU", series: { "CPU %": cpu }, format: (v) => `${v.toFixed(0)} %` },
    { id: "memory", title: "Memory used", series: { used: memoryUsed }, format: bytes },
    { id: "network", title: "Network", series: { received: sum(net?.rx), sent: sum(net?.tx) }, format: (v) => `${bytes(v)}/s` },
  ];
  if (kind === "vm") out.push({ id: "disk", title: "Disk", series: { read: sum(stats.xvds?.r), written: sum(stats.xvds?.w) }, format: (v) => `${bytes(v)}/s` });
  else if (stats.load) out.push({ id: "load", title: "Load", series: { load: stats.load }, format: (v) => v.toFixed(2) });
  return out.map((c) => ({ ...c, series: Object.fromEntries(Object.entries(c.series).filter(([, v]) => Array.isArray(v))) }))
    .filter((c) => Object.keys(c.series).length > 0);
}

const COLOURS = ["#0b5cad", "#c05500", "#1d6b2f", "#7a1fa2"];

/** A panel of live charts for a VM (`kind` "vm") or a host ("host"). */
export function statsPanel(api, kind, id) {
  const status = h("p", { class: "chart-status", role: "status", id: "stats-status" }, "Loading the measurements…");
  const grid = h("div", { class: "charts", id: "charts" });
  const panel = h("section", { class: "stats", "aria-labelledby": "stats-title" }, h("h3", { id: "stats-title" }, "Stats (last 10 minutes)"), status, grid);
  const plots = new Map();
  let uPlot = null;

  // Every REFRESH_MS until the panel has left the document (the page changed): then its plots go too.
  async function refresh() {
    if (!panel.isConnected) {
      for (const p of plots.values()) p.plot.destroy();
      return;
    }
    try {
      uPlot ??= (await import(UPLOT)).default;
      const answer = await api.call(`${kind}.stats`, { id, granularity: "seconds" });
      draw(answer);
      status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      status.textContent = `No measurements: ${error.message}`;
    }
    setTimeout(refresh, REFRESH_MS);
  }

  function draw({ endTimestamp, interval, stats }) {
    const list = charts(kind, stats);
    const points = Math.max(0, ...list.flatMap((c) => Object.values(c.series).map((s) => s.length)));
    const times = Array.from({ length: points }, (_, i) => endTimestamp - (points - 1 - i) * interval);
    for (const chart of list) {
      const data = [times, ...Object.values(chart.series)];
      let entry = plots.get(chart.id);
      if (!entry) {
        const box = h("figure", { class: "chart", id: `chart-${chart.id}`, "aria-label": `${chart.title} chart` }, h("figcaption", {}, chart.title));
        grid.append(box);
        const width = Math.max(240, box.clientWidth || 320); // the grid's column, as CSS laid it out
        const plot = new uPlot({
          width, height: 180,
          series: [{}, ...Object.keys(chart.series).map((label, i) => ({ label, stroke: COLOURS[i % COLOURS.length], width: 1.5, value: (_, v) => (v == null ? "—" : chart.format(v)) }))],
          axes: [{}, { values: (_, ticks) => ticks.map((v) => chart.format(v)), size: 70 }],
          scales: { x: { time: true } },
          legend: { live: true },
        }, data, box);
        entry = { plot, box };
        plots.set(chart.id, entry);
        new ResizeObserver(() => { if (box.clientWidth) plot.setSize({ width: box.clientWidth, height: 180 }); }).observe(box);
      } else {
        entry.plot.setData(data);
      }
      // For screen readers and tests: the latest value of each series, in words.
      entry.box.dataset.latest = Object.entries(chart.series).map(([label, s]) => `${label} ${s.at(-1) == null ? "—" : chart.format(s.at(-1))}`).join(", ");
      entry.box.setAttribute("aria-description", entry.box.dataset.latest);
    }
  }

  queueMicrotask(refresh);
  return panel;
}
