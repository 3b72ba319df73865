// The client side of the signalling protocol (docs/signalling.md): a
// WebSocket carrying JSON messages, each with a "type".

export const PROTOCOL_VERSION = 1;

// How long a handshake may take: short at first, because a server that
// hangs (or a proxy waiting on one: the next try usually reaches another
// server) would otherwise hold a participant back from the meeting's next
// server; longer after each handshake that timed out, so that a slow
// link's TLS handshake gets through.
const CONNECT_TIMEOUTS_MS = [1500, 3000, 6000];
let timeoutsInARow = 0;

export class Signalling {
  /** @param {string} url  ws:// or wss:// address of /ws */
  constructor(url) {
    this.url = url;
    this.handlers = new Map();
    this.ws = null;
    /** When the server last sent a message (performance.now()). */
    this.lastHeard = -Infinity;
  }

  /** Registers the handler for one message type ("close" for the socket closing). */
  on(type, handler) {
    this.handlers.set(type, handler);
    return this;
  }

  connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      let opened = false;
      // A socket that never opened reports that by the rejection alone,
      // never as a `close` of the session.
      const unreachable = () => {
        clearTimeout(timer);
        ws.onclose = null;
        reject(new Error('cannot reach the meeting server'));
      };
      // A server that hangs (stopped, or a proxy waiting on one) never
      // answers the handshake; the browser would wait minutes.
      const timeout = CONNECT_TIMEOUTS_MS[Math.min(timeoutsInARow, CONNECT_TIMEOUTS_MS.length - 1)];
      const timer = setTimeout(() => {
        timeoutsInARow += 1;
        unreachable();
        ws.close();
      }, timeout);
      ws.onopen = () => {
        opened = true;
        timeoutsInARow = 0;
        clearTimeout(timer);
        resolve();
      };
      ws.onerror = () => { if (!opened) unreachable(); };
      ws.onclose = (e) => {
        if (!opened) unreachable();
        else this.dispatch({ type: 'close', code: e.code, reason: e.reason });
      };
      ws.onmessage = (e) => {
        this.lastHeard = performance.now();
        let msg;
        try {
          msg = JSON.parse(e.data);
        } catch {
          console.warn('ignoring a message that is not JSON');
          return;
        }
        this.dispatch(msg);
      };
    });
  }

  dispatch(msg) {
    const handler = this.handlers.get(msg.type);
    if (handler) {
      Promise.resolve(handler(msg)).catch((err) => console.error(`handling ${msg.type}:`, err));
    }
  }

  /** Whether messages sent now go out. */
  get open() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(msg));
    }
  }

  close() {
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
    }
  }
}
