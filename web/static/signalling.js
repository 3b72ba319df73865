// The client side of the signalling protocol (docs/signalling.md): a
// WebSocket carrying JSON messages, each with a "type".

export const PROTOCOL_VERSION = 1;

// Long enough for a slow link's TLS handshake; short, because a server
// that hangs (or a proxy waiting on one) would otherwise hold a
// participant back from the meeting's next server.
const CONNECT_TIMEOUT_MS = 3000;

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
      const timer = setTimeout(() => {
        unreachable();
        ws.close();
      }, CONNECT_TIMEOUT_MS);
      ws.onopen = () => { opened = true; clearTimeout(timer); resolve(); };
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
