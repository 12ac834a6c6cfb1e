// cairn web UI: a dashboard, a stream browser, an event view, a live tail and the subscriptions,
// over the server's HTTP API (docs/http-api.md). Plain JavaScript, no build step; the server
// embeds this file. Routes live in the URL hash, so every view can be bookmarked and the browser's
// back button works.
"use strict";

const main = document.getElementById("main");
let auth = sessionStorage.getItem("cairn-auth") || "";
let cleanup = null;  // stops the current view's timers and streams
let routeGeneration = 0;  // a view that awaited past a route change starts nothing

// --- small helpers ---------------------------------------------------------------------------

// h("a", {href: "#/"}, "text", child...): builds an element; strings become text (never HTML).
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function show(...children) {
  main.replaceChildren(...children);
}

function fmtNumber(n) {
  return typeof n === "number" ? n.toLocaleString("en-US") : "–";
}

function fmtBytes(n) {
  if (typeof n !== "number") return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function streamPath(name) {
  return "/streams/" + encodeURIComponent(name);
}

function eventHref(e) {
  return "#/event/" + encodeURIComponent(e.stream) + "/" + e.version;
}

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query] = raw.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query || "") };
}

// --- the API, with the login --------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || ("HTTP " + status));
    this.status = status;
    this.body = body;
  }
}

function headers(extra) {
  const h = { "X-Cairn-UI": "1", ...extra };
  if (auth) h.Authorization = auth;
  return h;
}

async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: headers(options.headers) });
  if (res.status === 401) {
    await login("Sign in to continue.");
    return api(path, options);
  }
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = { message: text }; }
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}

let loginWaiters = null;
function login(why) {
  if (loginWaiters) return new Promise((resolve) => loginWaiters.push(resolve));
  loginWaiters = [];
  const dialog = document.getElementById("login");
  document.getElementById("login-why").textContent = why;
  return new Promise((resolve) => {
    const form = document.getElementById("login-form");
    form.onsubmit = async (ev) => {
      ev.preventDefault();
      const data = new FormData(form);
      const candidate = "Basic " + btoa(unescape(encodeURIComponent(data.get("user") + ":" + data.get("password"))));
      const probe = await fetch("/streams?max=1", { headers: { "X-Cairn-UI": "1", Authorization: candidate } });
      if (probe.status === 401) {
        document.getElementById("login-error").textContent = "Wrong user name or password.";
        return;
      }
      auth = candidate;
      sessionStorage.setItem("cairn-auth", auth);
      document.getElementById("login-error").textContent = "";
      dialog.close();
      renderUser(data.get("user"));
      const waiters = loginWaiters;
      loginWaiters = null;
      resolve();
      waiters.forEach((w) => w());
    };
    dialog.showModal();
  });
}

function renderUser(name) {
  const el = document.getElementById("user");
  if (!auth) { el.replaceChildren(); return; }
  el.replaceChildren(name ? "Signed in as " + name : "Signed in",
    h("button", { type: "button", onclick: () => { auth = ""; sessionStorage.removeItem("cairn-auth"); renderUser(); route(); } }, "Sign out"));
}

function errorBox(err) {
  return h("p", { class: "error", role: "alert" }, err instanceof ApiError ? `${err.status}: ${err.message}` : String(err));
}

// --- live streams (server-sent events over fetch, so that the Authorization header goes along) ---

// Calls onMessage({id, event, data}) for each message, starting right after the message id
// `lastId` (null: from the start); reconnects with Last-Event-ID after a drop. Returns a
// function that stops it.
function follow(path, lastId, onMessage, onState) {
  let stopped = false;
  let controller = null;
  async function run() {
    while (!stopped) {
      controller = new AbortController();
      try {
        const extra = lastId !== null ? { "Last-Event-ID": lastId } : {};
        const url = lastId !== null ? path : path + (path.includes("?") ? "&" : "?") + "from=start";
        const res = await fetch(url, { headers: headers(extra), signal: controller.signal });
        if (res.status === 401) { await login("Sign in to follow events."); continue; }
        if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
        onState("live");
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const msg = { id: null, event: "message", data: "" };
            for (const line of block.split("\n")) {
              if (line.startsWith("id: ")) msg.id = line.slice(4);
              else if (line.startsWith("event: ")) msg.event = line.slice(7);
              else if (line.startsWith("data: ")) msg.data += line.slice(6);
            }
            if (msg.id !== null) lastId = msg.id;
            if (msg.data) onMessage(msg);
          }
        }
      } catch (err) {
        if (stopped) return;
        onState("error: " + err.message);
      }
      if (!stopped) {
        onState("reconnecting");
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }
  run();
  return () => { stopped = true; if (controller) controller.abort(); };
}

// --- views ---------------------------------------------------------------------------------------

function sparkline(values) {
  const max = Math.max(1, ...values);
  const w = 200, hgt = 40;
  const pts = values.map((v, i) => `${(i / Math.max(1, values.length - 1)) * w},${hgt - (v / max) * (hgt - 2) - 1}`).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${hgt}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("aria-hidden", "true");
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", pts);
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "#1f5fa8");
  line.setAttribute("stroke-width", "2");
  svg.append(line);
  return svg;
}

function card(label, value, extra) {
  return h("div", { class: "card" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value), extra);
}

async function viewDashboard() {
  const rates = [];
  let previous = null;
  const cards = h("div", { class: "cards" }, h("p", { class: "muted" }, "Loading…"));
  const recent = h("div");
  show(h("h1", {}, "Dashboard"), cards, h("h2", {}, "Latest events"), recent);
  async function refresh() {
    try {
      const s = await api("/stats");
      const now = Date.now();
      if (previous) {
        const seconds = (now - previous.at) / 1000;
        rates.push(Math.max(0, (s.events_written - previous.events) / seconds));
        if (rates.length > 60) rates.shift();
      }
      previous = { at: now, events: s.events_written };
      const rate = rates.length ? rates[rates.length - 1] : 0;
      const fsyncMs = s.fsyncs ? (s.fsync_seconds_sum / s.fsyncs) * 1000 : null;
      cards.replaceChildren(
        card("Events", fmtNumber(s.total_events)),
        card("Streams", fmtNumber(s.streams)),
        card("Write rate (events/s)", rate.toFixed(1), sparkline(rates.length ? rates : [0])),
        card("Disk", fmtBytes(s.disk_bytes)),
        card("Appends since start", fmtNumber(s.appends)),
        card("Mean fsync", fsyncMs === null ? "–" : fsyncMs.toFixed(2) + " ms"),
        card("Live tails", fmtNumber(s.live_tails)),
        h("a", { class: "card-link", href: "#/subscriptions", "aria-label": "Subscriptions and projections" },
          card("Groups · projections", `${fmtNumber(s.persistent_groups)} · ${fmtNumber(s.projections)}`,
            s.projections_failed ? h("div", { class: "badge warn" }, `${s.projections_failed} failed`) : null)),
        card("Head position", fmtNumber(s.head_position)));
      const page = await api("/streams/%24all?direction=backward&max=10&exclude_system=true");
      recent.replaceChildren(eventTable(page.events, true));
    } catch (err) {
      cards.replaceChildren(errorBox(err));
    }
  }
  await refresh();
  const timer = setInterval(refresh, 2000);
  cleanup = () => clearInterval(timer);
}

function eventTable(events, withStream, newest) {
  if (!events.length) return h("p", { class: "muted" }, "No events.");
  return h("table", {},
    h("thead", {}, h("tr", {},
      withStream ? h("th", {}, "Stream") : null,
      h("th", { class: "num" }, "Version"), h("th", {}, "Type"), h("th", { class: "num" }, "Position"), h("th", {}, "Recorded"))),
    h("tbody", {}, events.map((e) => eventRow(e, withStream, newest))));
}

function eventRow(e, withStream, isNew) {
  return h("tr", { class: isNew ? "new" : null, "data-stream": e.stream, "data-type": e.type },
    withStream ? h("td", {}, h("a", { href: "#/stream/" + encodeURIComponent(e.stream) }, e.stream)) : null,
    h("td", { class: "num" }, h("a", { href: eventHref(e), "aria-label": `Event ${e.version} of ${e.stream}` }, e.version)),
    h("td", {}, h("a", { href: eventHref(e) }, e.type)),
    h("td", { class: "num" }, e.position),
    h("td", {}, e.recorded_at));
}

async function viewStreams(params) {
  const mode = params.get("category") !== null ? "category" : "prefix";
  const term = params.get(mode) || "";
  const after = params.get("after") || "";
  const input = h("input", { id: "search", type: "search", value: term, placeholder: "account- or order", "aria-label": "Search streams", "data-search": true });
  const select = h("select", { "aria-label": "Search by" },
    h("option", { value: "prefix", selected: mode === "prefix" }, "Name starts with"),
    h("option", { value: "category", selected: mode === "category" }, "Category is"));
  const form = h("form", { class: "toolbar", onsubmit: (ev) => {
    ev.preventDefault();
    location.hash = `#/streams?${select.value}=${encodeURIComponent(input.value)}`;
  } }, select, input, h("button", { type: "submit", class: "primary" }, "Search"),
  h("label", {}, "or open stream ", h("input", { id: "open-stream", "aria-label": "Open stream by name", placeholder: "exact name", onkeydown: (ev) => {
    if (ev.key === "Enter") { ev.preventDefault(); location.hash = "#/stream/" + encodeURIComponent(ev.target.value); }
  } })));
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  show(h("h1", {}, "Streams"), form, body);
  const query = new URLSearchParams();
  if (term) query.set(mode, term);
  if (after) query.set("after", after);
  query.set("max", "50");
  try {
    const page = await api("/streams?" + query.toString());
    const rows = page.streams.map((s) => h("tr", {},
      h("td", {}, h("a", { href: "#/stream/" + encodeURIComponent(s.name) }, s.name)),
      h("td", { class: "num" }, s.last_version),
      h("td", { class: "num" }, s.last_position),
      h("td", {}, s.tombstoned ? h("span", { class: "badge warn" }, "tombstoned") : s.deleted ? h("span", { class: "badge warn" }, "deleted") : "")));
    const pager = h("div", { class: "pager" });
    if (after) pager.append(h("button", { type: "button", "data-prev": true, onclick: () => history.back() }, "← Previous"));
    if (page.links.next) {
      const next = new URLSearchParams(page.links.next.split("?")[1]);
      const q = new URLSearchParams();
      q.set(mode, term);
      q.set("after", next.get("after"));
      pager.append(h("a", { href: "#/streams?" + q.toString(), "data-next": true }, "Next page →"));
    }
    body.replaceChildren(page.streams.length
      ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Stream"), h("th", { class: "num" }, "Last version"), h("th", { class: "num" }, "Last position"), h("th", {}, ""))), h("tbody", {}, rows))
      : h("p", { class: "muted" }, "No streams match."), pager);
  } catch (err) {
    body.replaceChildren(errorBox(err));
  }
}

async function viewStream(name, params) {
  const from = params.get("from");
  const query = new URLSearchParams({ max: "25", direction: "backward" });
  if (from !== null) query.set("from", from);
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  show(h("h1", {}, "Stream ", h("code", {}, name)),
    h("div", { class: "toolbar" },
      h("a", { href: "#/live?stream=" + encodeURIComponent(name) }, "Live tail of this stream"),
      h("a", { href: "#/streams?category=" + encodeURIComponent(name.split("-")[0]) }, "Streams of this category")),
    body);
  try {
    const [info, page, meta] = await Promise.all([
      api(streamPath(name) + "/info"),
      api(streamPath(name) + "?" + query.toString()).catch((err) => (err.status === 404 || err.status === 410 ? { events: [], links: {} } : Promise.reject(err))),
      api(streamPath(name) + "/metadata").catch(() => null)]);
    const pager = h("div", { class: "pager" });
    if (from !== null) pager.append(h("button", { type: "button", "data-prev": true, onclick: () => history.back() }, "← Newer"));
    if (page.links && page.links.next) {
      const next = new URLSearchParams(page.links.next.split("?")[1]).get("from");
      pager.append(h("a", { href: `#/stream/${encodeURIComponent(name)}?from=${next}`, "data-next": true }, "Older →"));
    }
    body.replaceChildren(
      h("dl", { class: "props" },
        h("dt", {}, "State"), h("dd", {}, info.tombstoned ? "tombstoned" : info.deleted ? "deleted" : info.exists ? "exists" : "never written"),
        h("dt", {}, "Last version"), h("dd", {}, info.last_version ?? "–"),
        h("dt", {}, "Last position"), h("dd", {}, info.last_position ?? "–"),
        h("dt", {}, "Metadata"), h("dd", {}, meta && meta.metadata_version !== null ? JSON.stringify(meta.metadata) : "none")),
      eventTable(page.events, false), pager);
  } catch (err) {
    body.replaceChildren(errorBox(err));
  }
}

function jsonBlock(value, label) {
  return h("pre", { tabindex: "0", "aria-label": label }, JSON.stringify(value, null, 2));
}

async function viewEvent(stream, version) {
  show(h("h1", {}, "Event"), h("p", { class: "muted" }, "Loading…"));
  try {
    const page = await api(`${streamPath(stream)}?from=${version}&max=1`);
    const e = page.events[0];
    if (!e || String(e.version) !== String(version)) throw new Error(`version ${version} of ${stream} is not there (deleted or truncated)`);
    await renderEvent(e);
  } catch (err) {
    show(h("h1", {}, "Event"), errorBox(err));
  }
}

async function viewEventById(id) {
  show(h("h1", {}, "Event"), h("p", { class: "muted" }, "Looking for event " + id + "…"));
  try {
    await renderEvent(await api("/events/" + encodeURIComponent(id)));
  } catch (err) {
    show(h("h1", {}, "Event"), errorBox(err));
  }
}

async function renderEvent(e) {
  const meta = e.metadata && typeof e.metadata === "object" ? e.metadata : {};
  const idLink = (id) => (typeof id === "string" && id ? h("a", { href: "#/id/" + encodeURIComponent(id) }, id) : "–");
  show(
    h("h1", {}, e.type, " ", h("span", { class: "muted" }, `#${e.version} of `), h("a", { href: "#/stream/" + encodeURIComponent(e.stream) }, e.stream)),
    h("dl", { class: "props", id: "event-props" },
      h("dt", {}, "Stream"), h("dd", {}, h("a", { href: "#/stream/" + encodeURIComponent(e.stream) }, e.stream)),
      h("dt", {}, "Version"), h("dd", {}, e.version),
      h("dt", {}, "Position"), h("dd", {}, e.position),
      h("dt", {}, "Id"), h("dd", {}, e.id),
      h("dt", {}, "Type"), h("dd", {}, e.type),
      h("dt", {}, "Recorded"), h("dd", {}, e.recorded_at),
      h("dt", {}, "Correlation id"), h("dd", {}, idLink(meta.$correlationId)),
      h("dt", {}, "Causation id"), h("dd", {}, idLink(meta.$causationId))),
    h("div", { class: "pager" },
      e.version > 0 ? h("a", { href: eventHref({ stream: e.stream, version: e.version - 1 }), "data-prev": true }, "← Previous in stream") : null,
      h("a", { href: eventHref({ stream: e.stream, version: e.version + 1 }), "data-next": true }, "Next in stream →")),
    h("h2", {}, "Data", e.content_type === "bytes" ? " (bytes, base64)" : ""),
    jsonBlock(e.data, "Event data"),
    h("h2", {}, "Metadata"),
    e.metadata === null ? h("p", { class: "muted" }, "None.") : jsonBlock(e.metadata, "Event metadata"));
}

async function viewLive(params) {
  const generation = routeGeneration;
  const stream = params.get("stream") || "$all";
  const rows = h("tbody", { id: "live-rows" });
  const state = h("span", { class: "badge", id: "live-state", role: "status" }, "connecting");
  let paused = false;
  let held = [];
  const pause = h("button", { type: "button", onclick: () => {
    paused = !paused;
    pause.textContent = paused ? "Resume" : "Pause";
    if (!paused) { held.forEach(add); held = []; }
  } }, "Pause");
  const input = h("input", { id: "live-stream", value: stream, "aria-label": "Stream to follow ($all for every stream)", "data-search": true });
  const form = h("form", { class: "toolbar", onsubmit: (ev) => {
    ev.preventDefault();
    location.hash = "#/live?stream=" + encodeURIComponent(input.value || "$all");
  } }, h("label", {}, "Follow ", input), h("button", { type: "submit", class: "primary" }, "Follow"), pause, state);
  show(h("h1", {}, "Live tail"), form,
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Stream"), h("th", { class: "num" }, "Version"), h("th", {}, "Type"), h("th", { class: "num" }, "Position"), h("th", {}, "Recorded"))), rows),
    h("p", { class: "muted" }, "Newest first; the last 500 events are kept."));
  function add(e) {
    rows.prepend(eventRow(e, true, true));
    while (rows.children.length > 500) rows.lastChild.remove();
  }
  // The newest events first (a backward read), then live from right after the newest of them.
  const filter = stream === "$all" ? "exclude_system=true" : "";
  let lastId = null;
  try {
    const recent = await api(streamPath(stream) + "?direction=backward&max=20&" + filter);
    recent.events.slice().reverse().forEach((e) => add(e));
    if (recent.events.length) lastId = String(stream === "$all" ? recent.events[0].position : recent.events[0].version);
  } catch (err) {
    if (err.status !== 404) { state.textContent = "error: " + err.message; return; }
  }
  if (generation !== routeGeneration) return;
  const path = streamPath(stream) + "/live" + (filter ? "?" + filter : "");
  cleanup = follow(path, lastId, (msg) => {
    if (msg.event === "caught-up") { state.textContent = "live"; state.className = "badge ok"; return; }
    if (msg.event === "fell-behind") { state.textContent = "behind"; state.className = "badge warn"; return; }
    if (msg.event === "error") { state.textContent = "ended: " + JSON.parse(msg.data).message; state.className = "badge warn"; return; }
    const e = JSON.parse(msg.data);
    if (paused) held.push(e); else add(e);
  }, (s) => {
    state.textContent = s;
    state.className = s === "live" ? "badge ok" : "badge warn";
  });
}

// The lag of a group or projection as a badge: green at 0, red otherwise ("≥" when only a lower
// bound is known).
function lagBadge(events, exact = true) {
  if (typeof events !== "number") return h("span", { class: "muted" }, "–");
  return h("span", { class: events === 0 ? "badge ok" : "badge warn", "data-lag": events },
    (exact ? "" : "≥ ") + fmtNumber(events));
}

function stateBadge(state) {
  const cls = { live: "badge ok", Live: "badge ok", failed: "badge warn" }[state] || "badge";
  return h("span", { class: cls }, state);
}

async function viewSubscriptions() {
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  show(h("h1", {}, "Subscriptions and projections"), body);
  const generation = routeGeneration;
  async function refresh() {
    try {
      const s = await api("/subscriptions");
      if (generation !== routeGeneration) return;
      body.replaceChildren(
        h("p", { class: "muted" }, `Head position ${fmtNumber(s.head_position)}. Lag counts events: not yet read, or read and not yet acknowledged.`),
        h("h2", { id: "groups-title" }, "Persistent subscription groups"),
        s.persistent.length ? h("table", { id: "groups", "aria-labelledby": "groups-title" },
          h("thead", {}, h("tr", {}, h("th", {}, "Stream"), h("th", {}, "Group"), h("th", {}, "Strategy"), h("th", {}, "Status"),
            h("th", { class: "num" }, "Consumers"), h("th", { class: "num" }, "Checkpoint"), h("th", { class: "num" }, "In flight"),
            h("th", { class: "num" }, "Parked"), h("th", { class: "num" }, "Lag (events)"))),
          h("tbody", {}, s.persistent.map((g) => h("tr", { "data-group": g.group, "data-stream": g.stream },
            h("td", {}, g.stream === "$all" ? h("a", { href: "#/live" }, "$all") : h("a", { href: "#/stream/" + encodeURIComponent(g.stream) }, g.stream)),
            h("td", {}, g.group), h("td", {}, g.strategy), h("td", {}, stateBadge(g.status)),
            h("td", { class: "num" }, fmtNumber(g.consumers)), h("td", { class: "num" }, g.checkpoint ?? "–"),
            h("td", { class: "num" }, fmtNumber(g.in_flight)), h("td", { class: "num" }, fmtNumber(g.parked)),
            h("td", { class: "num" }, lagBadge(g.lag_events, g.lag_exact))))))
          : h("p", { class: "muted" }, "No groups. Clients create them over gRPC, or PUT /subscriptions/{stream}/{group}."),
        h("h2", { id: "projections-title" }, "Projections"),
        s.projections.length ? h("table", { id: "projections", "aria-labelledby": "projections-title" },
          h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "State"), h("th", {}, "Sink"),
            h("th", { class: "num" }, "Position"), h("th", { class: "num" }, "Handled"), h("th", { class: "num" }, "Lag (events)"), h("th", {}, "Error"))),
          h("tbody", {}, s.projections.map((p) => h("tr", { "data-projection": p.name, "data-state": p.state },
            h("td", {}, p.name, h("div", { class: "muted" }, p.spec)), h("td", {}, stateBadge(p.state)), h("td", {}, h("code", {}, p.sink)),
            h("td", { class: "num" }, p.position ?? "–"), h("td", { class: "num" }, fmtNumber(p.events_handled)),
            h("td", { class: "num" }, lagBadge(p.lag_events)),
            h("td", { class: p.error ? "error" : "muted" }, p.error || "–")))))
          : h("p", { class: "muted" }, "The server runs no projections ([[projections]] in the config file of cairn serve)."),
        h("h2", {}, "Live tails (server-sent events)"),
        s.subscriptions.length ? h("table", {},
          h("thead", {}, h("tr", {}, h("th", {}, "Id"), h("th", {}, "Stream"), h("th", {}, "Client"), h("th", {}, "Since"), h("th", { class: "num" }, "Delivered"), h("th", { class: "num" }, "Last position"), h("th", {}, "State"), h("th", { class: "num" }, "Lag (s)"))),
          h("tbody", {}, s.subscriptions.map((t) => h("tr", {},
            h("td", {}, t.id), h("td", {}, t.stream), h("td", {}, t.client), h("td", {}, t.started_at),
            h("td", { class: "num" }, fmtNumber(t.delivered)), h("td", { class: "num" }, t.last_position),
            h("td", {}, h("span", { class: t.caught_up ? "badge ok" : "badge warn" }, t.caught_up ? "caught up" : "catching up")),
            h("td", { class: "num" }, t.lag_seconds.toFixed(3))))))
          : h("p", { class: "muted" }, "None running."),
        h("h2", {}, "gRPC catch-up subscriptions"),
        h("p", { id: "grpc-subscriptions" }, s.grpc ? `${fmtNumber(s.grpc.streams)} to a stream, ${fmtNumber(s.grpc.all)} to $all (counted, not listed).` : "–"));
    } catch (err) {
      body.replaceChildren(errorBox(err));
    }
  }
  await refresh();
  const timer = setInterval(refresh, 2000);
  cleanup = () => clearInterval(timer);
}

// --- routing and keys ------------------------------------------------------------------------------

async function route() {
  if (cleanup) { cleanup(); cleanup = null; }
  routeGeneration++;
  const { parts, params } = parseHash();
  const section = parts[0] || "dashboard";
  const nav = { stream: "streams", event: "streams", id: "streams" }[section] || section;
  for (const a of document.querySelectorAll("header nav a")) {
    if (a.dataset.nav === nav) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  document.title = "cairn · " + section;
  if (section === "dashboard") await viewDashboard();
  else if (section === "streams") await viewStreams(params);
  else if (section === "stream") await viewStream(parts[1] || "", params);
  else if (section === "event") await viewEvent(parts[1] || "", parts[2] || "0");
  else if (section === "id") await viewEventById(parts[1] || "");
  else if (section === "live") await viewLive(params);
  else if (section === "subscriptions") await viewSubscriptions();
  else show(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the dashboard")));
}

let pendingG = false;
document.addEventListener("keydown", (ev) => {
  const t = ev.target;
  if (t instanceof HTMLInputElement || t instanceof HTMLSelectElement || t instanceof HTMLTextAreaElement) return;
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (pendingG) {
    pendingG = false;
    const target = { d: "#/", s: "#/streams", l: "#/live", u: "#/subscriptions" }[ev.key];
    if (target) { location.hash = target; ev.preventDefault(); }
    return;
  }
  if (ev.key === "g") { pendingG = true; setTimeout(() => (pendingG = false), 1500); return; }
  if (ev.key === "/") {
    const search = document.querySelector("[data-search]");
    if (search) { ev.preventDefault(); search.focus(); }
  } else if (ev.key === "n") {
    const next = document.querySelector("[data-next]");
    if (next) next.click();
  } else if (ev.key === "p") {
    const prev = document.querySelector("[data-prev]");
    if (prev) prev.click();
  }
});

window.addEventListener("hashchange", () => { route(); main.focus({ preventScroll: true }); });
renderUser();
route();
