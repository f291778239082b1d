// The live dashboard at /dashboard, built on the edge's JavaScript client.
// The service key is kept in sessionStorage only and sent to this edge alone (Authorization header,
// and the WebSocket's `token` parameter, which browsers give no other way to send).
// Everything shown comes from users' data, so it is written with textContent, never as HTML.
import { connect, PresenceError } from "/realtime/client.js";

const KEY_STORAGE = "presence.dashboard.credential";
const STATUSES = ["online", "away", "busy", "dnd", "invisible", "offline"];
const POLL_MS = 2000;
const MAX_PAGES = 10;
const CHART_POINTS = 120; // the last points kept per channel
const SVG = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);
const state = {
  service: null, // PresenceClient with the service key: observes only
  channel: null, // the Channel subscribed to
  history: new Map(), // channel -> [{t, occupancy}]
  poll: null,
  user: null, // PresenceClient acting as a user
  userChannels: new Map(),
};

function log(message, kind = "ok") {
  const item = document.createElement("li");
  item.dataset.kind = kind;
  item.textContent = `${new Date().toLocaleTimeString()} ${message}`;
  $("log").prepend(item);
}

function describe(error) {
  return error instanceof PresenceError ? `${error.code}: ${error.message}` : String(error);
}

function credential() {
  return sessionStorage.getItem(KEY_STORAGE) ?? "";
}

function setBadge(element, connectionState) {
  element.dataset.state = connectionState;
  element.textContent = connectionState;
}

async function connectService() {
  const key = credential();
  if (!key) return;
  state.service?.close();
  state.channel = null;
  setBadge($("connection"), "connecting");
  try {
    state.service = await connect(location.origin, { token: key, device: "dashboard" });
  } catch (error) {
    setBadge($("connection"), "refused");
    log(`service connection: ${describe(error)}`, "error");
    return;
  }
  const client = state.service;
  client.addEventListener("status", (event) => { if (client === state.service) setBadge($("connection"), event.detail.state); });
  client.addEventListener("error", (event) => log(describe(event.detail.error), "error"));
  setBadge($("connection"), client.state);
  clearInterval(state.poll);
  state.poll = setInterval(pollChannels, POLL_MS);
  await pollChannels();
}

async function api(path, { method = "GET", body } = {}) {
  const response = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${credential()}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const answer = await response.json();
  if (!response.ok) {
    const { code, message, retriable } = answer.error;
    throw new PresenceError(code, message, retriable);
  }
  return answer;
}

/** Every channel with members, a page of 1000 at a time, up to MAX_PAGES pages. */
async function listChannels() {
  const channels = [];
  let cursor = null;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const answer = await api(`/realtime/channels?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    channels.push(...answer.channels);
    cursor = answer.next_cursor;
    if (!cursor) break;
  }
  return channels;
}

async function pollChannels() {
  let channels;
  try {
    channels = await listChannels();
  } catch (error) {
    $("channels-note").textContent = `Channel list unavailable (${describe(error)}); open a channel by its id.`;
    return;
  }
  $("channels-note").textContent = channels.length ? "" : "No channel has members.";
  const list = $("channels");
  list.replaceChildren(...channels.map((entry) => {
    const item = document.createElement("li");
    item.dataset.channel = entry.channel;
    item.dataset.occupancy = String(entry.occupancy);
    item.classList.toggle("selected", entry.channel === state.channel?.name);
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = entry.channel;
    const count = document.createElement("span");
    count.className = "count";
    count.textContent = String(entry.occupancy);
    item.append(name, count);
    item.addEventListener("click", () => selectChannel(entry.channel));
    return item;
  }));
  const now = Date.now();
  for (const entry of channels) record(entry.channel, now, entry.occupancy);
  if (state.channel) renderChart();
}

function record(channel, t, occupancy) {
  const points = state.history.get(channel) ?? [];
  points.push({ t, occupancy });
  points.sort((a, b) => a.t - b.t);
  state.history.set(channel, points.slice(-CHART_POINTS));
}

async function selectChannel(name) {
  if (!state.service || state.channel?.name === name) return;
  const previous = state.channel;
  state.channel = null;
  if (previous) await previous.leave().catch((error) => log(describe(error), "error"));
  try {
    const channel = await state.service.subscribe(name);
    state.channel = channel;
    channel.addEventListener("change", (event) => {
      const { frame } = event.detail;
      record(name, frame.at ?? Date.now(), channel.presence.occupancy);
      if (state.channel === channel) renderChannel();
    });
    record(name, Date.now(), channel.presence.occupancy);
    document.querySelectorAll("#channels li").forEach((li) => li.classList.toggle("selected", li.dataset.channel === name));
    renderChannel();
  } catch (error) {
    log(`subscribe ${name}: ${describe(error)}`, "error");
  }
}

function cell(text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  return td;
}

function renderChannel() {
  const channel = state.channel;
  const presence = channel.presence;
  $("channel-panel").dataset.channel = channel.name;
  $("channel-title").textContent = channel.name;
  $("occupancy").textContent = String(presence.occupancy);
  const entry = document.querySelector(`#channels li[data-channel="${CSS.escape(channel.name)}"]`);
  if (entry) { // the live count, between two polls of the list
    entry.dataset.occupancy = String(presence.occupancy);
    entry.querySelector(".count").textContent = String(presence.occupancy);
  }
  $("seq").textContent = String(presence.seq);
  const typing = [...presence.typing].sort();
  $("typing").dataset.typing = typing.join(",");
  $("typing").textContent = typing.length ? `${typing.join(", ")} ${typing.length > 1 ? "are" : "is"} typing…` : "";
  const members = [...presence.members.values()].sort((a, b) => a.user_id.localeCompare(b.user_id));
  $("members").tBodies[0].replaceChildren(...members.map((member) => {
    const row = document.createElement("tr");
    row.dataset.user = member.user_id;
    row.dataset.status = member.status;
    row.classList.toggle("typing", presence.typing.has(member.user_id));
    const status = cell("", "status");
    const dot = document.createElement("span");
    dot.className = "status-dot";
    dot.dataset.status = member.status;
    const label = document.createElement("span");
    label.textContent = member.status;
    status.append(dot, label);
    const text = [member.status_emoji, member.status_text].filter(Boolean).join(" ");
    const devices = cell("", "devices");
    devices.append(...member.devices.map((device) => {
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.textContent = device;
      return chip;
    }));
    const metadata = cell("", "metadata");
    const code = document.createElement("code");
    code.textContent = Object.keys(member.metadata ?? {}).length ? JSON.stringify(member.metadata) : "";
    metadata.append(code);
    row.append(cell(member.user_id, "user"), status, cell(text, "status-text"), devices,
      cell(String(member.connections), "connections"), metadata,
      cell(new Date(member.last_seen).toLocaleTimeString(), "last-seen"));
    return row;
  }));
  renderChart();
}

function svg(name, attributes) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

/** A step chart of the selected channel's occupancy over its recorded points. */
function renderChart() {
  const chart = $("occupancy-chart");
  const points = state.history.get(state.channel?.name) ?? [];
  const [width, height, pad] = [600, 150, 24];
  const children = [svg("line", { x1: pad, y1: height - pad, x2: width - pad / 2, y2: height - pad, class: "axis" })];
  if (points.length) {
    const t0 = points[0].t;
    const span = Math.max(points[points.length - 1].t - t0, 1000);
    const top = Math.max(...points.map((p) => p.occupancy), 1);
    const x = (t) => pad + ((t - t0) / span) * (width - 1.5 * pad);
    const y = (n) => height - pad - (n / top) * (height - 2 * pad);
    let path = "";
    points.forEach((p, i) => {
      path += i === 0 ? `M${x(p.t)},${y(p.occupancy)}` : `H${x(p.t)}V${y(p.occupancy)}`;
    });
    children.push(svg("path", { d: path, class: "line" }));
    for (const p of points) {
      children.push(svg("circle", { cx: x(p.t), cy: y(p.occupancy), r: 3, class: "point", "data-occupancy": p.occupancy }));
    }
    const labels = [[2, pad, String(top)], [2, height - pad, "0"],
      [pad, height - 6, new Date(t0).toLocaleTimeString()],
      [width - 3.5 * pad, height - 6, new Date(t0 + span).toLocaleTimeString()]];
    for (const [lx, ly, text] of labels) {
      const label = svg("text", { x: lx, y: ly, class: "label" });
      label.textContent = text;
      children.push(label);
    }
  }
  chart.dataset.points = String(points.length);
  chart.replaceChildren(...children);
}

async function actAsUser() {
  const token = $("act-token").value.trim();
  if (!token) return;
  state.user?.close();
  state.userChannels.clear();
  try {
    state.user = await connect(location.origin, { token, device: "dashboard" });
  } catch (error) {
    setBadge($("act-state"), "refused");
    log(`user connection: ${describe(error)}`, "error");
    return;
  }
  const client = state.user;
  client.addEventListener("status", (event) => { if (client === state.user) setBadge($("act-state"), event.detail.state); });
  setBadge($("act-state"), client.state);
  $("act-state").dataset.user = client.welcome.user_id;
  log(`connected as ${client.welcome.user_id}`);
}

function actChannel() {
  return $("act-channel").value.trim() || state.channel?.name || "";
}

/** Runs one act, logs its outcome; `run` answers the line to log. */
async function act(run) {
  try {
    log(await run());
  } catch (error) {
    log(describe(error), "error");
  }
}

function fillStatuses(select) {
  select.replaceChildren(...STATUSES.map((status) => new Option(status, status)));
}

function setup() {
  fillStatuses($("act-status"));
  fillStatuses($("svc-status"));
  $("credential").value = credential();
  $("credential-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, $("credential").value.trim());
    connectService();
  });
  $("credential-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    $("credential").value = "";
    clearInterval(state.poll);
    state.service?.close();
    state.service = null;
    state.channel = null;
    setBadge($("connection"), "idle");
  });
  $("channel-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("channel-name").value.trim();
    if (name) selectChannel(name);
  });
  $("act-connect").addEventListener("click", actAsUser);
  $("act-disconnect").addEventListener("click", () => {
    state.user?.close();
    state.user = null;
    state.userChannels.clear();
  });
  $("act-join").addEventListener("click", () => act(async () => {
    const name = actChannel();
    state.userChannels.set(name, await state.user.join(name));
    return `joined ${name}`;
  }));
  $("act-leave").addEventListener("click", () => act(async () => {
    const name = actChannel();
    await state.userChannels.get(name)?.leave();
    state.userChannels.delete(name);
    return `left ${name}`;
  }));
  $("act-typing").addEventListener("click", () => act(async () => {
    const name = actChannel();
    state.userChannels.get(name)?.startTyping();
    return `typing in ${name}`;
  }));
  $("act-set-status").addEventListener("click", () => act(async () => {
    const status = $("act-status").value;
    await state.user.setStatus(status, { text: $("act-status-text").value });
    return `status ${status}`;
  }));
  $("svc-set-status").addEventListener("click", () => act(async () => {
    const user = $("svc-user").value.trim();
    const status = $("svc-status").value;
    await api(`/realtime/users/${encodeURIComponent(user)}/presence`, {
      method: "POST", body: { status, status_text: $("svc-status-text").value },
    });
    return `${user}: status ${status}, set by the service`;
  }));
  $("svc-offline").addEventListener("click", () => act(async () => {
    const user = $("svc-user").value.trim();
    await api(`/realtime/users/${encodeURIComponent(user)}/presence/offline`, { method: "POST", body: {} });
    return `${user}: forced offline`;
  }));
  renderChart();
  connectService();
}

setup();
