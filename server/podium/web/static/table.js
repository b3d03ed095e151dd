// A sortable, selectable table that draws only the rows in view (10,000 rows scroll as 40 do).
// Rows are fixed height; the body is a scrolling box with a spacer as tall as every row together.
import { COLLATOR, h } from "./ui.js";

const ROW = 36; // px, as in podium.css (.vtable .row)
const OVERSCAN = 8;

export class Table {
  /**
   * @param columns [{key, label, value(obj) → sortable, render(obj) → Node|string, width, optional}]
   *   (optional columns are left out when the table is narrower than 40rem);
   *   options.lookup(obj) → the object as it is now, for rows redrawn between two setRows
   * @param options {label, selectable, onSelect(ids), empty}
   */
  constructor(columns, { label, selectable = false, onSelect = () => {}, empty = "Nothing to show.", lookup = (o) => o } = {}) {
    this.lookup = lookup; // the object as it is now (rows keep the objects of the last setRows)
    this.columns = columns;
    this.selectable = selectable;
    this.onSelect = onSelect;
    this.empty = empty;
    this.rows = [];
    this.selected = new Set();
    this.sort = { key: columns[0].key, dir: 1 };
    this.allColumns = columns;
    this.narrow = false;
    this.head = h("div", { class: "row head", role: "row" });
    this.spacer = h("div", { class: "spacer", role: "presentation" });
    this.body = h("div", { class: "body", role: "rowgroup", tabindex: "0", "aria-label": `${label} rows` }, this.spacer);
    this.message = h("p", { class: "empty", hidden: true }, empty);
    this.el = h("div", { class: "vtable", role: "table", "aria-label": label, "aria-rowcount": "0" },
      h("div", { role: "rowgroup" }, this.head), this.body, this.message);
    this.body.addEventListener("scroll", () => this.draw(), { passive: true });
    // Narrower than 40rem (a phone): only the columns that are not optional, so the name stays readable.
    new ResizeObserver(() => {
      const narrow = this.el.clientWidth > 0 && this.el.clientWidth < 640;
      if (narrow !== this.narrow) {
        this.narrow = narrow;
        this.drawHead();
        this.refresh();
      } else this.draw();
    }).observe(this.el);
    this.drawHead();
  }

  get columns() {
    return this.narrow ? this.allColumns.filter((c) => !c.optional) : this.allColumns;
  }

  set columns(value) {
    this.allColumns = value;
  }

  drawHead() {
    this.template = [this.selectable ? "2.5rem" : null, ...this.columns.map((c) => c.width ?? "1fr")].filter(Boolean).join(" ");
    this.head.style.gridTemplateColumns = this.template;
    const cells = [];
    if (this.selectable) {
      this.all = h("input", { type: "checkbox", "aria-label": "Select all shown", onchange: () => this.selectAll(this.all.checked) });
      cells.push(h("div", { class: "cell", role: "columnheader" }, this.all));
    }
    for (const col of this.columns) {
      const sorted = this.sort.key === col.key;
      const button = h("button", { type: "button", class: "sort", onclick: () => this.sortBy(col.key) },
        col.label, sorted ? (this.sort.dir > 0 ? " ▲" : " ▼") : "");
      cells.push(h("div", {
        class: "cell", role: "columnheader",
        "aria-sort": sorted ? (this.sort.dir > 0 ? "ascending" : "descending") : "none",
      }, col.sortable === false ? col.label : button));
    }
    this.head.replaceChildren(...cells);
  }

  sortBy(key) {
    this.sort = this.sort.key === key ? { key, dir: -this.sort.dir } : { key, dir: 1 };
    this.drawHead();
    this.setRows(this.rows);
  }

  /** New rows (already filtered): sorted here, the selection kept to those still shown. */
  setRows(rows) {
    const col = this.allColumns.find((c) => c.key === this.sort.key) ?? this.allColumns[0];
    const value = col.value ?? ((o) => o[col.key]);
    const keyed = rows.map((o) => [value(o), o]);
    const dir = this.sort.dir;
    keyed.sort(([a], [b]) => {
      if (a === b) return 0;
      if (a === undefined || a === null || a === "") return 1;
      if (b === undefined || b === null || b === "") return -1;
      if (typeof a === "number" && typeof b === "number") return (a - b) * dir;
      return COLLATOR.compare(String(a), String(b)) * dir;
    });
    this.rows = keyed.map(([, o]) => o);
    const shown = new Set(this.rows.map((o) => o.id));
    let lost = false;
    for (const id of this.selected) if (!shown.has(id)) { this.selected.delete(id); lost = true; }
    if (lost) this.onSelect(this.selected);
    this.el.setAttribute("aria-rowcount", String(this.rows.length));
    this.spacer.style.height = `${this.rows.length * ROW}px`;
    this.message.hidden = this.rows.length > 0;
    this.drawn = null;
    this.draw();
  }

  /** Redraw the rows in view (objects changed, not the set of rows). */
  refresh() {
    this.drawn = null;
    this.draw();
  }

  draw() {
    const top = this.body.scrollTop;
    const height = this.body.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const last = Math.min(this.rows.length, Math.ceil((top + height) / ROW) + OVERSCAN);
    const key = `${first}:${last}`;
    if (this.drawn === key) return;
    this.drawn = key;
    const rows = [];
    for (let i = first; i < last; i += 1) rows.push(this.drawRow(this.lookup(this.rows[i]), i));
    this.spacer.replaceChildren(...rows);
    if (this.all) {
      this.all.checked = this.rows.length > 0 && this.selected.size === this.rows.length;
      this.all.indeterminate = this.selected.size > 0 && this.selected.size < this.rows.length;
    }
  }

  drawRow(obj, index) {
    const cells = [];
    if (this.selectable) {
      const box = h("input", {
        type: "checkbox", checked: this.selected.has(obj.id) ? true : null,
        "aria-label": `Select ${obj.name_label ?? obj.id}`,
        onchange: () => this.select(obj.id, box.checked),
      });
      cells.push(h("div", { class: "cell", role: "cell" }, box));
    }
    for (const col of this.columns) {
      const content = col.render ? col.render(obj) : obj[col.key];
      cells.push(h("div", { class: "cell", role: "cell" }, content));
    }
    return h("div", {
      class: `row${this.selected.has(obj.id) ? " selected" : ""}`, role: "row", "aria-rowindex": String(index + 2),
      style: `top: ${index * ROW}px; grid-template-columns: ${this.template}`, dataset: { id: obj.id },
    }, cells);
  }

  select(id, on) {
    if (on) this.selected.add(id);
    else this.selected.delete(id);
    this.refresh();
    this.onSelect(this.selected);
  }

  selectAll(on) {
    this.selected = on ? new Set(this.rows.map((o) => o.id)) : new Set();
    this.refresh();
    this.onSelect(this.selected);
  }
}
