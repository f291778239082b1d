// The browser client of the presence service, served by the edge at /realtime/client.js.
// One ES module, no dependencies, no build step (docs/api.md#javascript-client).
//
// Rules this module keeps:
// 1. A channel's presence is a fold of its frames in `seq` order (ChannelPresence, pure, no I/O):
//    a snapshot replaces it, a diff or batch applies only on the view it follows, an old one is
//    ignored, and a gap is answered by subscribing again without `since` (a fresh snapshot).
// 2. One request, at most one answer: answers carry the request's `ref`, error frames too; an error
//    without one answers no request (it is about a frame sent without a ref, such as typing.start)
//    and is dispatched as an `error` event. An error sent just before the edge
//    closes the socket (CLOSING_CODES) answers no request: it says why the socket closed.
// 3. A socket that ends is reopened with full-jitter exponential backoff and every channel resumed
//    with `since`; a request made or unanswered meanwhile is sent on the next socket. Except after 4403 (origin), 4409 (forced offline), and 4401 (token) when there is
//    no tokenProvider to get a fresh token from. The backoff starts afresh after a connection that
//    lasted `healthyAfterMs`, so an edge that accepts and drops at once is not hammered.
// The same rules as the Python SDK (clients/python/presence_client/client.py).

const FINAL_CLOSE_CODES = new Set([4403, 4409]);
const TOKEN_CLOSE_CODE = 4401;
const CLOSING_CODES = new Set(["connection.timed_out", "connection.slow_consumer", "service.broker_unavailable",
  "limit.abuse", "auth.token_expired", "connection.forced_offline", "server.internal"]);

/** An error answer of the edge (`code` from docs/errors.md), or of this client itself: `client.connect_failed`,
 * `client.connection_lost`, `client.closed`, `client.timeout`. */
export class PresenceError extends Error {
  constructor(code, message, retriable = false) {
    super(message);
    this.name = "PresenceError";
    this.code = code;
    this.retriable = retriable;
  }
}

/** One channel's presence, kept by applying its frames; `apply` answers "applied", "ignored" or "gap". */
export class ChannelPresence {
  constructor(channel) {
    this.channel = channel;
    this.seq = null; // null until the first snapshot
    this.occupancy = 0;
    this.members = new Map(); // user_id -> member
    this.typing = new Set();
  }

  apply(frame) {
    switch (frame.type) {
      case "presence.snapshot":
        this.seq = frame.seq;
        this.occupancy = frame.occupancy;
        this.members = new Map(frame.members.map((m) => [m.user_id, m]));
        this.typing = new Set(frame.typing);
        return "applied";
      case "presence.diff":
      case "presence.batch": {
        if (this.seq === null || frame.seq <= this.seq) return "ignored";
        if ((frame.from_seq ?? frame.seq) !== this.seq + 1) return "gap";
        for (const m of [...frame.joins, ...frame.updates]) this.members.set(m.user_id, m);
        for (const d of frame.leaves) this.members.delete(d.user_id);
        this.seq = frame.seq;
        this.occupancy = frame.occupancy;
        this.typing = new Set(frame.typing);
        return "applied";
      }
      case "presence.resumed": // the view held at `since` continues with the diffs that follow
        return "ignored";
      default:
        throw new TypeError(`not a channel frame: ${frame.type}`);
    }
  }
}

/** The delay before reconnect attempt `attempt` (0-based): uniform in [0, min(maxMs, baseMs * 2^attempt)). */
export function backoffDelay(attempt, { baseMs = 500, maxMs = 30000 } = {}, random = Math.random) {
  return Math.floor(random() * Math.min(maxMs, baseMs * 2 ** attempt));
}

/** The WebSocket URL of an edge's base URL (http -> ws, https -> wss) with the connect parameters. */
export function socketUrl(baseUrl, { token, device, metadata }) {
  const url = new URL("/realtime/ws", baseUrl);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("token", token);
  if (device !== undefined) url.searchParams.set("device", device);
  if (metadata !== undefined) url.searchParams.set("metadata", JSON.stringify(metadata));
  return url.toString();
}

/** A joined or subscribed channel: `presence` is its live ChannelPresence; fires `change` after each frame applied. */
export class Channel extends EventTarget {
  constructor(client, name, mode) {
    super();
    this.client = client;
    this.name = name;
    this.mode = mode; // "join" or "subscribe"
    this.presence = new ChannelPresence(name);
    this._typingSentAt = -Infinity;
  }

  get members() { return this.presence.members; }
  get typing() { return this.presence.typing; }
  get seq() { return this.presence.seq; }

  /** Says the user is typing; call it on every keystroke, frames go out at most once per `typingThrottleMs`. */
  startTyping(timeoutS) {
    const now = this.client._now();
    if (now - this._typingSentAt < this.client.options.typingThrottleMs) return;
    this._typingSentAt = now;
    this.client._send({ type: "typing.start", channel: this.name, ...(timeoutS ? { timeout_s: timeoutS } : {}) });
  }

  stopTyping() {
    this._typingSentAt = -Infinity;
    this.client._send({ type: "typing.stop", channel: this.name });
  }

  /** Leaves (a joined channel) or unsubscribes; the channel is no longer resumed on reconnect. */
  async leave() {
    if (this.client.channels.get(this.name) !== this) return;
    this.client.channels.delete(this.name);
    try {
      await this.client._request({ type: this.mode === "join" ? "leave" : "unsubscribe", channel: this.name });
    } catch (error) { // a reconnect came between: the new socket never entered the channel
      if (!["channel.not_joined", "channel.not_subscribed"].includes(error.code)) throw error;
    }
  }
}

/** A connection to an edge; fires `open`, `close`, `status`, `reconnecting`, `change`, `error`, `user`. */
export class PresenceClient extends EventTarget {
  constructor(baseUrl, options = {}) {
    super();
    this.baseUrl = baseUrl;
    this.options = {
      typingThrottleMs: 1000,
      backoff: { baseMs: 500, maxMs: 30000 },
      healthyAfterMs: 10000,
      requestTimeoutMs: 30000, // reconnects included, as the Python SDK's request_timeout_s
      WebSocket: globalThis.WebSocket,
      now: () => Date.now(),
      random: Math.random,
      ...options,
    };
    this.token = options.token ?? null;
    this.state = "idle"; // idle, connecting, open, reconnecting, closed
    this.welcome = null;
    this.channels = new Map(); // name -> Channel, resumed on reconnect
    this.watched = new Set();
    this.closeInfo = null;
    this._ws = null;
    this._ref = 0;
    this._pending = []; // [{ref, frame, resend, resolve, reject}] in the order sent
    this._attempt = 0;
    this._timers = new Set();
    this._heartbeat = null;
    this._lastError = null;
    this._lastSent = 0;
    this._welcomedAt = null;
  }

  /** Opens the first connection; resolves on `welcome`, rejects with a PresenceError if it cannot open. */
  open() {
    return new Promise((resolve, reject) => {
      const onOpen = () => { this.removeEventListener("close", onClose); resolve(this); };
      const onClose = (event) => {
        this.removeEventListener("open", onOpen);
        reject(event.detail.error ?? new PresenceError("client.connect_failed", `closed with ${event.detail.code}`, true));
      };
      this.addEventListener("open", onOpen, { once: true });
      this.addEventListener("close", onClose, { once: true });
      this._connect(true);
    });
  }

  join(channel) { return this._enter(channel, "join"); }
  subscribe(channel) { return this._enter(channel, "subscribe"); }

  /** Sets status and optionally `text`, `emoji`, `expiresInS`, `statusMetadata`; resolves with the event id. */
  async setStatus(status, { text, emoji, expiresInS, statusMetadata } = {}) {
    const frame = { type: "update", status };
    if (text !== undefined) frame.status_text = text;
    if (emoji !== undefined) frame.status_emoji = emoji;
    if (expiresInS !== undefined) frame.expires_in_s = expiresInS;
    if (statusMetadata !== undefined) frame.status_metadata = statusMetadata;
    return (await this._request(frame)).event_id;
  }

  async setMetadata(metadata) {
    return (await this._request({ type: "update", metadata })).event_id;
  }

  /** Watches users (a friends list): resolves with `{users, not_found}`; later changes fire `user`. */
  async watch(users) {
    const answer = await this._request({ type: "watch", users });
    for (const user of users) this.watched.add(user);
    return { users: answer.users, not_found: answer.not_found };
  }

  async unwatch(users) {
    for (const user of users) this.watched.delete(user);
    await this._request({ type: "unwatch", users });
  }

  /** Closes for good with 1000: a clean leave for the others. */
  close() {
    this._finish(1000, "closed by the client", null);
    if (this._ws !== null) this._ws.close(1000);
  }

  async _enter(name, mode) {
    const existing = this.channels.get(name);
    if (existing !== undefined) {
      if (existing.mode !== mode) throw new TypeError(`${name} is entered with ${existing.mode} already`);
      return existing;
    }
    const channel = new Channel(this, name, mode);
    const answer = await this._request({ type: mode, channel: name });
    this._applyTo(channel, answer);
    this.channels.set(name, channel);
    return channel;
  }

  async _connect(first) {
    this._setState(first ? "connecting" : "reconnecting");
    if (this.options.tokenProvider && (!first || this.token === null)) {
      try {
        this.token = await this.options.tokenProvider();
      } catch (error) {
        if (first) this._finish(null, "the token provider failed", error);
        else this._retry(null, error);
        return;
      }
      if (this.state === "closed") return; // closed while the provider was asked
    }
    const url = socketUrl(this.baseUrl, { token: this.token, device: this.options.device, metadata: this.options.metadata });
    const ws = new this.options.WebSocket(url);
    this._ws = ws;
    this._lastError = null;
    ws.onmessage = (message) => this._receive(JSON.parse(message.data));
    ws.onclose = (event) => { if (this._ws === ws) this._closed(event.code, event.reason); };
  }

  _closed(code, reason) {
    this._ws = null;
    clearInterval(this._heartbeat);
    if (this._welcomedAt !== null && this._now() - this._welcomedAt >= this.options.healthyAfterMs) this._attempt = 0;
    this._welcomedAt = null;
    const error = this._lastError;
    const lost = new PresenceError("client.connection_lost", `the socket closed (${code})`, true);
    if (this.state === "closed") {
      this._rejectPending(() => true, lost);
      return;
    }
    if (FINAL_CLOSE_CODES.has(code) || (code === TOKEN_CLOSE_CODE && !this.options.tokenProvider)
        || (this.welcome === null && this.state === "connecting")) {
      this._finish(code, reason, error);
      return;
    }
    this._rejectPending((waiting) => !waiting.resend, lost); // the others go out on the next socket
    this._retry(code, error);
  }

  _retry(code, error) {
    const delayMs = backoffDelay(this._attempt, this.options.backoff, this.options.random);
    this._attempt += 1;
    this._setState("reconnecting");
    this._emit("reconnecting", { attempt: this._attempt, delayMs, code, error });
    const timer = setTimeout(() => { this._timers.delete(timer); this._connect(false); }, delayMs);
    this._timers.add(timer);
  }

  _finish(code, reason, error) {
    if (this.state === "closed") return;
    for (const timer of this._timers) clearTimeout(timer);
    clearInterval(this._heartbeat);
    this._setState("closed");
    this._rejectPending(() => true, error ?? new PresenceError("client.closed", `closed (${code})`, false));
    this.closeInfo = { code, reason, error };
    this._emit("close", this.closeInfo);
  }

  _receive(frame) {
    switch (frame.type) {
      case "welcome":
        this._welcomed(frame);
        break;
      case "presence.snapshot":
      case "presence.resumed":
      case "presence.diff":
      case "presence.batch":
        if (frame.ref !== undefined && frame.ref !== null && this._answer(frame)) break;
        this._channelFrame(frame);
        break;
      case "ack":
      case "presence.users":
        this._answer(frame);
        break;
      case "presence.user":
        this._emit("user", { user: frame.user });
        break;
      case "presence.user.gone": // no longer readable by this connection (or erased)
        this._emit("user", { user: null, user_id: frame.user_id });
        break;
      case "auth.expiring":
        this._reauthenticate();
        break;
      case "error":
        this._failed(frame);
        break;
    }
  }

  _welcomed(frame) {
    const resumed = this.welcome !== null;
    this.welcome = frame;
    this._welcomedAt = this._now();
    this._setState("open");
    // Any frame is a sign of life: a heartbeat goes out only when nothing else did for heartbeat_s.
    const everyMs = frame.heartbeat_s * 1000;
    this._lastSent = this._now();
    this._heartbeat = setInterval(() => {
      if (this._now() - this._lastSent >= everyMs / 2) this._send({ type: "heartbeat" });
    }, everyMs / 2);
    const waiting = this._pending;
    this._pending = [];
    for (const channel of this.channels.values()) this._resume(channel);
    if (this.watched.size) this._request({ type: "watch", users: [...this.watched] }, false).catch(() => {});
    for (const request of waiting) this._sendRequest(request); // in their order, after the resumes
    this._emit("open", { welcome: frame, resumed });
  }

  _resume(channel, fresh = false) {
    const frame = { type: channel.mode, channel: channel.name };
    if (!fresh && channel.seq !== null) frame.since = channel.seq;
    this._request(frame, false).then((answer) => this._applyTo(channel, answer), () => {});
  }

  _channelFrame(frame) {
    const channel = this.channels.get(frame.channel);
    if (channel !== undefined) this._applyTo(channel, frame);
  }

  _applyTo(channel, frame) {
    const outcome = channel.presence.apply(frame);
    if (outcome === "gap") {
      this._resume(channel, true);
    } else if (outcome === "applied") {
      const detail = { channel, frame };
      channel.dispatchEvent(new CustomEvent("change", { detail }));
      this._emit("change", detail);
    }
  }

  async _reauthenticate() {
    if (!this.options.tokenProvider) return;
    try {
      const token = await this.options.tokenProvider();
      await this._request({ type: "auth", token });
      this.token = token;
    } catch (error) {
      this._emit("error", { error });
    }
  }

  _failed(frame) {
    const error = new PresenceError(frame.code, frame.message, frame.retriable);
    this._lastError = error;
    if (CLOSING_CODES.has(error.code)) return; // the close follows; `close` or `reconnecting` carries it
    const index = frame.ref === undefined ? -1 : this._pending.findIndex((p) => p.ref === frame.ref);
    const [waiting] = index < 0 ? [] : this._pending.splice(index, 1);
    if (waiting !== undefined) waiting.reject(error);
    else this._emit("error", { error });
  }

  _answer(frame) {
    const index = this._pending.findIndex((p) => p.ref === frame.ref);
    if (index < 0) return false;
    const [waiting] = this._pending.splice(index, 1);
    waiting.resolve(frame);
    return true;
  }

  /** Sends `frame` with a fresh `ref` now, or once a socket is open; `resend`: again on the next socket
   * if this one ends unanswered (resumes and watches are not: the next welcome sends them afresh). */
  _request(frame, resend = true) {
    if (this.state === "closed") {
      return Promise.reject(this.closeInfo?.error ?? new PresenceError("client.closed", "the client is closed", false));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._timers.delete(timer);
        this._rejectPending((waiting) => waiting === request, new PresenceError(
          "client.timeout", `no answer to ${frame.type} within ${this.options.requestTimeoutMs} ms`, true));
      }, this.options.requestTimeoutMs);
      this._timers.add(timer);
      const settled = () => { clearTimeout(timer); this._timers.delete(timer); };
      const request = { ref: ++this._ref, frame, resend,
        resolve: (answer) => { settled(); resolve(answer); }, reject: (error) => { settled(); reject(error); } };
      if (this.state === "open") this._sendRequest(request);
      else this._pending.push(request);
    });
  }

  _sendRequest(request) {
    this._pending.push(request);
    this._send({ ...request.frame, ref: request.ref });
  }

  _send(frame) {
    if (this._ws === null || this.state !== "open") return;
    this._ws.send(JSON.stringify(frame));
    this._lastSent = this._now();
  }

  _rejectPending(which, error) {
    const rejected = this._pending.filter(which);
    this._pending = this._pending.filter((waiting) => !which(waiting));
    for (const waiting of rejected) waiting.reject(error);
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit("status", { state });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _now() { return this.options.now(); }
}

/** Connects to the edge at `baseUrl` with `{token | tokenProvider, device, metadata}`; resolves once welcomed. */
export function connect(baseUrl, options) {
  if (!options?.token && !options?.tokenProvider) throw new TypeError("connect needs a token or a tokenProvider");
  return new PresenceClient(baseUrl, options).open();
}
