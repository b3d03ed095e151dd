// The live copy of every object the user may see: one xo.getAllObjects, then the server's `all`
// notifications (enter/exit), exactly what xo-lib's clients keep. Views are told what changed at most
// once per animation frame, so a storm of events costs one redraw, not one per event.

export class ObjectCache extends EventTarget {
  constructor(api) {
    super();
    this.api = api;
    this.objects = new Map(); // id → object
    this.types = new Map(); // type → Map(id → object)
    this.ready = false;
    this.changed = new Set();
    this.changedTypes = new Set();
    this.scheduled = false;
    this.version = 0; // bumped on every flush: views compare it to know whether to recompute
    api.addEventListener("all", (event) => this.apply(event.detail));
  }

  /**
   * Read everything; notifications before the answer are already in it (one ordered socket). Called again
   * after a reconnection: what vanished meanwhile is gone from the answer, so it leaves the cache too.
   */
  async load() {
    const all = await this.api.call("xo.getAllObjects");
    this.objects.clear();
    this.types.clear();
    for (const [id, obj] of Object.entries(all)) this.put(id, obj);
    this.ready = true;
    this.version += 1;
    this.dispatchEvent(new CustomEvent("change", { detail: { ids: null, types: null } }));
  }

  put(id, obj) {
    const old = this.objects.get(id);
    if (old && old.type !== obj.type) this.types.get(old.type)?.delete(id);
    this.objects.set(id, obj);
    let ofType = this.types.get(obj.type);
    if (!ofType) this.types.set(obj.type, (ofType = new Map()));
    ofType.set(id, obj);
    if (old) this.changedTypes.add(old.type);
  }

  drop(id) {
    const old = this.objects.get(id);
    if (!old) return;
    this.objects.delete(id);
    this.types.get(old.type)?.delete(id);
    this.changedTypes.add(old.type);
  }

  apply({ type, items }) {
    if (!this.ready) return;
    for (const [id, obj] of Object.entries(items)) {
      if (type === "exit") this.drop(id);
      else {
        this.put(id, obj);
        this.changedTypes.add(obj.type);
      }
      this.changed.add(id);
    }
    this.schedule();
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    const flush = () => {
      this.scheduled = false;
      const detail = { ids: this.changed, types: this.changedTypes };
      this.changed = new Set();
      this.changedTypes = new Set();
      this.version += 1;
      this.dispatchEvent(new CustomEvent("change", { detail }));
    };
    // A hidden tab gets no animation frames: changes are still applied, on a timer.
    if (document.hidden) setTimeout(flush, 250);
    else requestAnimationFrame(flush);
  }

  get(id) {
    return id ? this.objects.get(id) : undefined;
  }

  /** The objects of one type (an array; cheap to call, it is not kept). */
  all(type) {
    return [...(this.types.get(type)?.values() ?? [])];
  }

  /** The objects of a type that satisfy a test. */
  where(type, test) {
    const out = [];
    for (const obj of this.types.get(type)?.values() ?? []) if (test(obj)) out.push(obj);
    return out;
  }

  /** Watch changes while `node` is in the document; the listener gets the change's detail. */
  watch(node, listener) {
    const handler = (event) => {
      if (!node.isConnected) this.removeEventListener("change", handler);
      else listener(event.detail);
    };
    this.addEventListener("change", handler);
    return () => this.removeEventListener("change", handler);
  }
}

/** Whether a change (an object cache's event detail) touches one of these ids or types; null means everything. */
export function touches(detail, { ids = [], types = [] } = {}) {
  if (detail.ids === null) return true;
  return ids.some((id) => detail.ids.has(id)) || types.some((t) => detail.types.has(t));
}
