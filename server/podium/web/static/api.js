// The JSON-RPC 2.0 client of Podium's WebSocket API (/api/), the protocol xo-lib speaks.
export class Api extends EventTarget {
  constructor(url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/`) {
    super();
    this.url = url;
    this.nextId = 1;
    this.pending = new Map();
  }

  open() {
    return new Promise((resolve, reject) => {
      this.ws = new WebSocket(this.url);
      this.ws.onopen = () => resolve(this);
      this.ws.onerror = () => reject(new Error("cannot reach the Podium server"));
      this.ws.onclose = () => {
        for (const { reject: fail } of this.pending.values()) fail(new Error("the connection was lost"));
        this.pending.clear();
        this.dispatchEvent(new Event("close"));
      };
      this.ws.onmessage = (event) => this.receive(JSON.parse(event.data));
    });
  }

  receive(message) {
    if (message.id !== undefined && this.pending.has(message.id)) {
      const { resolve, reject } = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (message.error) {
        const error = new Error(message.error.message);
        error.code = message.error.code;
        error.data = message.error.data;
        reject(error);
      } else {
        resolve(message.result);
      }
    } else if (message.method) {
      this.dispatchEvent(new CustomEvent(message.method, { detail: message.params }));
    }
  }

  get connected() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  call(method, params = {}) {
    // A closed socket drops what is sent without a word: say so instead of waiting for ever.
    if (!this.connected) return Promise.reject(new Error("not connected to the Podium server"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
    });
  }
}
