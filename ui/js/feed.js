// The watch feed (`GET /v1/watch`) over a WebSocket: events handed over in batches, a reconnect
// with backoff that resumes after the last event seen (`since`), and `resync` passed up so that
// the app reloads what it holds.
//
// A browser cannot set an Authorization header on a WebSocket, so the token goes in the
// `access_token` parameter, which the scheduler accepts on this one endpoint.

const kBatchMs = 100;
const kMaxBackoffMs = 10000;

export class Feed {
  // `since`: the seq the snapshot the app holds is current to.
  constructor({token, since, topics = 'jobs,nodes,accounts', onEvents, onResync, onStatus,
               onTrouble}) {
    this.token = token;
    this.since = since;
    this.topics = topics;
    this.onEvents = onEvents;
    this.onResync = onResync;
    this.onStatus = onStatus;
    this.onTrouble = onTrouble;  // Asked after repeated failures: is the token still good?
    this.ws = null;
    this.stopped = false;
    this.failures = 0;
    this.buffer = [];
    this.flushTimer = null;
    this.retryTimer = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.flushTimer);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close(1000, 'signed out');
      this.ws = null;
    }
  }

  url() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const q = new URLSearchParams({topics: this.topics, since: String(this.since),
                                   access_token: this.token});
    return `${scheme}//${location.host}/v1/watch?${q}`;
  }

  connect() {
    this.onStatus('connecting');
    const ws = new WebSocket(this.url());
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.failures = 0;
      this.onStatus('live');
    };
    ws.onmessage = (m) => {
      let e;
      try {
        e = JSON.parse(m.data);
      } catch {
        return;
      }
      for (const event of Array.isArray(e) ? e : [e]) this.take(event);
    };
    ws.onclose = () => {
      this.ws = null;
      if (this.stopped) return;
      this.flush();
      if (!opened) this.failures += 1;
      this.onStatus(this.failures > 2 ? 'offline' : 'reconnecting');
      if (this.failures === 3 && this.onTrouble) this.onTrouble();
      const base = Math.min(kMaxBackoffMs, 500 * 2 ** Math.min(this.failures, 5));
      this.retryTimer = setTimeout(() => this.connect(), base * (0.5 + Math.random() / 2));
    };
  }

  take(event) {
    if (typeof event.seq !== 'number') return;
    if (event.type === 'resync') {
      // The events up to `seq` are gone from the log: whatever was built from them is stale.
      this.flush();
      this.since = event.seq;
      this.onResync(event);
      return;
    }
    if (event.seq <= this.since) return;  // Already seen (a replay overlapping the snapshot).
    this.since = event.seq;
    this.buffer.push(event);
    if (!this.flushTimer) this.flushTimer = setTimeout(() => this.flush(), kBatchMs);
  }

  flush() {
    clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (this.buffer.length === 0) return;
    const batch = this.buffer;
    this.buffer = [];
    this.onEvents(batch);
  }
}
