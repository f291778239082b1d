// Unit tests of /realtime/client.js under `node --test` (run by tests/unit/test_js_client.py):
// the pure seq fold, the backoff and URL helpers, and the client against a scripted fake socket.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";

// The module is served as an ES module but lives in a .js file without a package.json saying so.
const source = await readFile(new URL("../../services/static/client.js", import.meta.url), "utf8");
const { ChannelPresence, PresenceClient, PresenceError, backoffDelay, connect, socketUrl } = await import(
  `data:text/javascript,${encodeURIComponent(source)}`
);

const member = (user_id, status = "online") => ({ user_id, status, devices: [], connections: 1, metadata: {} });
const snapshot = (seq, members, typing = []) => ({
  type: "presence.snapshot", channel: "lobby", seq, occupancy: members.length, members, typing,
});
const diff = (seq, { joins = [], leaves = [], updates = [], typing = [], occupancy = 0, from_seq } = {}) => ({
  type: "presence.diff", channel: "lobby", seq, occupancy, joins, leaves, updates, typing,
  ...(from_seq === undefined ? {} : { from_seq }),
});

test("a snapshot replaces the view", () => {
  const view = new ChannelPresence("lobby");
  assert.equal(view.apply(snapshot(10, [member("alice")], ["alice"])), "applied");
  view.apply(snapshot(12, [member("bob")]));
  assert.equal(view.seq, 12);
  assert.deepEqual([...view.members.keys()], ["bob"]);
  assert.deepEqual([...view.typing], []);
});

test("diffs apply in seq order: joins, updates, leaves, typing replaced", () => {
  const view = new ChannelPresence("lobby");
  view.apply(snapshot(10, [member("alice")]));
  assert.equal(view.apply(diff(11, { joins: [member("bob")], occupancy: 2 })), "applied");
  assert.equal(view.apply(diff(12, { updates: [member("bob", "busy")], occupancy: 2 })), "applied");
  assert.equal(view.apply(diff(13, { typing: ["bob"], occupancy: 2 })), "applied");
  assert.equal(view.members.get("bob").status, "busy");
  assert.deepEqual([...view.typing], ["bob"]);
  assert.equal(view.apply(diff(14, { leaves: [{ user_id: "alice", reason: "leave" }], occupancy: 1 })), "applied");
  assert.deepEqual([...view.members.keys()], ["bob"]);
  assert.equal(view.occupancy, 1);
  assert.equal(view.seq, 14);
});

test("an old or repeated diff is ignored, a gap is reported and not applied", () => {
  const view = new ChannelPresence("lobby");
  view.apply(snapshot(10, [member("alice")]));
  assert.equal(view.apply(diff(10, { joins: [member("bob")] })), "ignored");
  assert.equal(view.apply(diff(9, { joins: [member("bob")] })), "ignored");
  assert.equal(view.apply(diff(12, { joins: [member("bob")] })), "gap");
  assert.equal(view.seq, 10);
  assert.deepEqual([...view.members.keys()], ["alice"]);
});

test("a diff before any snapshot is ignored; the first diff of a channel's life applies on seq 0", () => {
  const view = new ChannelPresence("lobby");
  assert.equal(view.apply(diff(5, { joins: [member("alice")] })), "ignored");
  view.apply(snapshot(0, []));
  assert.equal(view.apply(diff(1795829019511001, { from_seq: 1, joins: [member("alice")], occupancy: 1 })), "applied");
  assert.equal(view.seq, 1795829019511001);
});

test("a batch applies on from_seq - 1 only", () => {
  const view = new ChannelPresence("lobby");
  view.apply(snapshot(10, [member("alice")]));
  const batch = { ...diff(13, { joins: [member("bob")], occupancy: 2 }), type: "presence.batch", from_seq: 11 };
  assert.equal(view.apply({ ...batch, from_seq: 12 }), "gap");
  assert.equal(view.apply(batch), "applied");
  assert.equal(view.seq, 13);
  assert.equal(view.apply({ ...batch, from_seq: 12 }), "ignored");
});

test("resumed keeps the view held", () => {
  const view = new ChannelPresence("lobby");
  view.apply(snapshot(10, [member("alice")]));
  assert.equal(view.apply({ type: "presence.resumed", channel: "lobby", since: 10, seq: 12 }), "ignored");
  assert.equal(view.apply(diff(11, { joins: [member("bob")] })), "applied");
});

test("backoff is full jitter below min(max, base * 2^attempt)", () => {
  const options = { baseMs: 100, maxMs: 1000 };
  assert.equal(backoffDelay(0, options, () => 0), 0);
  assert.equal(backoffDelay(0, options, () => 0.999), 99);
  assert.equal(backoffDelay(3, options, () => 0.5), 400);
  assert.equal(backoffDelay(20, options, () => 0.999), 999);
});

test("the socket URL follows the base URL's scheme and carries the connect parameters", () => {
  const url = new URL(socketUrl("https://edge.example:8443/x", { token: "t", device: "web", metadata: { a: 1 } }));
  assert.equal(url.protocol, "wss:");
  assert.equal(url.pathname, "/realtime/ws");
  assert.equal(url.searchParams.get("token"), "t");
  assert.equal(url.searchParams.get("device"), "web");
  assert.deepEqual(JSON.parse(url.searchParams.get("metadata")), { a: 1 });
  assert.equal(new URL(socketUrl("http://127.0.0.1:8080", { token: "t" })).protocol, "ws:");
});

/** A scripted socket: the test plays the server. */
class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = new URL(url);
    this.sent = [];
    this.closedWith = null;
    FakeSocket.all.push(this);
  }
  send(data) { this.sent.push(JSON.parse(data)); }
  close(code) { this.closedWith = code; this.onclose?.({ code, reason: "" }); }
  receive(frame) { this.onmessage({ data: JSON.stringify(frame) }); }
  drop(code) { this.onclose({ code, reason: "" }); }
  last(type) { return this.sent.findLast((f) => f.type === type); }
}

const welcome = { type: "welcome", connection_id: "c", user_id: "alice", edge_id: "e", heartbeat_s: 0.02, timeout_s: 1 };
const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

async function opened(options = {}) {
  FakeSocket.all = [];
  const pending = connect("http://127.0.0.1:8080", { token: "t1", WebSocket: FakeSocket, random: () => 0, ...options });
  await tick();
  FakeSocket.all[0].receive(welcome);
  return [await pending, FakeSocket.all[0]];
}

async function joined(client, socket) {
  const joining = client.join("lobby");
  const ref = socket.last("join").ref;
  socket.receive({ ...snapshot(10, [member("alice")]), ref });
  return joining;
}

test("join resolves with the live channel; diffs fire change; heartbeats go out at heartbeat_s", async () => {
  const [client, socket] = await opened();
  const channel = await joined(client, socket);
  const changes = [];
  channel.addEventListener("change", (event) => changes.push(event.detail.frame.seq));
  socket.receive(diff(11, { joins: [member("bob")], occupancy: 2 }));
  assert.deepEqual([...channel.members.keys()], ["alice", "bob"]);
  assert.deepEqual(changes, [11]);
  await tick(70);
  assert.ok(socket.sent.filter((f) => f.type === "heartbeat").length >= 2);
  client.close();
  assert.equal(socket.closedWith, 1000);
});

test("a gap resyncs: the channel is asked again without since", async () => {
  const [client, socket] = await opened();
  const channel = await joined(client, socket);
  socket.receive(diff(13, { joins: [member("bob")] }));
  const again = socket.last("join");
  assert.equal(again.since, undefined);
  socket.receive({ ...snapshot(13, [member("alice"), member("bob")]), ref: again.ref });
  await tick();
  assert.equal(channel.seq, 13);
  assert.equal(channel.members.size, 2);
  client.close();
});

test("a dropped socket reconnects and resumes each channel with since", async () => {
  const [client, socket] = await opened();
  const channel = await joined(client, socket);
  const reconnecting = [];
  client.addEventListener("reconnecting", (event) => reconnecting.push(event.detail.code));
  socket.drop(1006);
  await tick(5);
  assert.deepEqual(reconnecting, [1006]);
  const second = FakeSocket.all[1];
  second.receive(welcome);
  const resume = second.last("join");
  assert.equal(resume.since, 10);
  second.receive({ type: "presence.resumed", channel: "lobby", ref: resume.ref, since: 10, seq: 11 });
  second.receive(diff(11, { joins: [member("bob")], occupancy: 2 }));
  await tick();
  assert.equal(channel.seq, 11);
  assert.equal(client.state, "open");
  client.close();
});

for (const [code, why] of [[4409, "forced offline"], [4403, "origin"], [4401, "token, no tokenProvider"]]) {
  test(`no reconnect after ${code} (${why})`, async () => {
    const [client, socket] = await opened();
    const closed = new Promise((resolve) => client.addEventListener("close", (e) => resolve(e.detail)));
    socket.receive({ type: "error", code: "connection.forced_offline", message: "m", retriable: false });
    socket.drop(code);
    const detail = await closed;
    assert.equal(detail.code, code);
    assert.equal(detail.error.code, "connection.forced_offline");
    await tick(5);
    assert.equal(FakeSocket.all.length, 1);
    assert.equal(client.state, "closed");
  });
}

test("4401 with a tokenProvider reconnects with a fresh token; auth.expiring re-authenticates", async () => {
  let issued = 0;
  const [client, socket] = await opened({ token: undefined, tokenProvider: async () => `t${++issued}` });
  assert.equal(socket.url.searchParams.get("token"), "t1");
  socket.receive({ type: "auth.expiring", token_expires_at: 1 });
  await tick();
  const auth = socket.last("auth");
  assert.equal(auth.token, "t2");
  socket.receive({ type: "ack", ref: auth.ref, token_expires_at: 2 });
  await tick();
  assert.equal(client.token, "t2");
  socket.drop(4401);
  await tick(5);
  assert.equal(FakeSocket.all[1].url.searchParams.get("token"), "t3");
  client.close();
});

test("setStatus resolves with the event id; an error frame with its ref rejects it as a PresenceError", async () => {
  const [client, socket] = await opened();
  const ok = client.setStatus("busy", { text: "In a call" });
  const sent = socket.last("update");
  assert.deepEqual({ status: sent.status, status_text: sent.status_text }, { status: "busy", status_text: "In a call" });
  socket.receive({ type: "ack", ref: sent.ref, event_id: "e1" });
  assert.equal(await ok, "e1");
  const bad = client.setStatus("sleeping");
  socket.receive({ type: "error", code: "presence.unknown_status", message: "unknown", retriable: false,
    ref: socket.last("update").ref });
  await assert.rejects(bad, (error) => error instanceof PresenceError && error.code === "presence.unknown_status");
  client.close();
});

test("an error frame without a ref rejects no request: it is an error event", async () => {
  const [client, socket] = await opened();
  const waiting = client.setStatus("busy");
  const errors = [];
  client.addEventListener("error", (event) => errors.push(event.detail.error.code));
  socket.receive({ type: "error", code: "channel.not_joined", message: "typing needs a join", retriable: false });
  assert.deepEqual(errors, ["channel.not_joined"]);
  socket.receive({ type: "ack", ref: socket.last("update").ref, event_id: "e2" });
  assert.equal(await waiting, "e2");
  client.close();
});

test("an error frame with a ref rejects the request it names, not the oldest", async () => {
  const [client, socket] = await opened();
  const first = client.setStatus("busy");
  const firstRef = socket.last("update").ref;
  const second = client.setStatus("sleeping");
  socket.receive({ type: "error", code: "presence.unknown_status", message: "unknown", retriable: false,
    ref: socket.last("update").ref });
  await assert.rejects(second, (error) => error.code === "presence.unknown_status");
  socket.receive({ type: "ack", ref: firstRef, event_id: "e1" });
  assert.equal(await first, "e1");
  client.close();
});

test("typing.start is throttled on the client", async () => {
  let now = 0;
  const [client, socket] = await opened({ now: () => now });
  const channel = await joined(client, socket);
  for (const at of [0, 200, 900, 1000, 1500]) {
    now = at;
    channel.startTyping();
  }
  assert.equal(socket.sent.filter((f) => f.type === "typing.start").length, 2);
  channel.stopTyping();
  assert.equal(socket.last("typing.stop").channel, "lobby");
  client.close();
});

test("a first connection that closes before welcome rejects connect", async () => {
  FakeSocket.all = [];
  const pending = connect("http://127.0.0.1:8080", { token: "bad", WebSocket: FakeSocket });
  await tick();
  FakeSocket.all[0].drop(1006);
  await assert.rejects(pending, (error) => error.code === "client.connect_failed");
  assert.equal(FakeSocket.all.length, 1);
});

test("the client is an EventTarget", () => {
  assert.ok(new PresenceClient("http://x", { WebSocket: FakeSocket }) instanceof EventTarget);
});

test("an error that closes the socket answers no request: it is the close's reason", async () => {
  const [client, socket] = await opened();
  const update = client.setStatus("busy");
  const closed = new Promise((resolve) => client.addEventListener("close", (e) => resolve(e.detail)));
  socket.receive({ type: "error", code: "connection.forced_offline", message: "m", retriable: false });
  assert.equal(client.state, "open"); // the error alone ends nothing: the close does
  socket.drop(4409);
  await assert.rejects(update, (error) => error.code === "connection.forced_offline");
  assert.equal((await closed).error.code, "connection.forced_offline");
  await assert.rejects(client.setStatus("away"), (error) => error.code === "connection.forced_offline");
});

test("requests unanswered at a drop, or made while reconnecting, go out on the next socket after the resumes", async () => {
  const [client, socket] = await opened();
  await joined(client, socket);
  const before = client.setStatus("busy");
  const sent = socket.last("update");
  socket.drop(1006);
  const during = client.setMetadata({ a: 1 });
  await tick(5);
  const second = FakeSocket.all[1];
  assert.deepEqual(second.sent, []);
  second.receive(welcome);
  assert.deepEqual(second.sent.map((f) => f.type), ["join", "update", "update"]);
  assert.equal(second.sent[1].ref, sent.ref);
  second.receive({ type: "ack", ref: second.sent[1].ref, event_id: "e1" });
  second.receive({ type: "ack", ref: second.sent[2].ref, event_id: "e2" });
  assert.deepEqual([await before, await during], ["e1", "e2"]);
  client.close();
});

test("the backoff grows over quick drops and starts afresh after a healthy connection", async () => {
  let now = 0;
  const delays = [];
  const [client, socket] = await opened({ now: () => now, random: () => 0.999, backoff: { baseMs: 2, maxMs: 1000 } });
  client.addEventListener("reconnecting", (event) => delays.push(event.detail.delayMs));
  socket.drop(1006);
  await tick(5);
  FakeSocket.all[1].receive(welcome);
  FakeSocket.all[1].drop(1006); // lasted no time
  await tick(5);
  FakeSocket.all[2].receive(welcome);
  now += 10000; // healthyAfterMs
  FakeSocket.all[2].drop(1006);
  await tick(5);
  assert.deepEqual(delays, [1, 3, 1]);
  client.close();
});

test("a token provider that fails on the first connection rejects connect", async () => {
  const failure = new Error("no session");
  await assert.rejects(
    connect("http://127.0.0.1:8080", { WebSocket: FakeSocket, tokenProvider: async () => { throw failure; } }),
    (error) => error === failure,
  );
});

test("a request unanswered within requestTimeoutMs rejects with client.timeout; the socket stays", async () => {
  const [client, socket] = await opened({ requestTimeoutMs: 20 });
  const unanswered = client.setStatus("busy");
  await assert.rejects(unanswered, (error) => error instanceof PresenceError && error.code === "client.timeout");
  const answered = client.setStatus("away");
  socket.receive({ type: "ack", ref: socket.last("update").ref, event_id: "e3" });
  assert.equal(await answered, "e3");
  assert.equal(client.state, "open");
  client.close();
});
