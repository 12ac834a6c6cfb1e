// Proves the web UI works in a real browser: starts `cairn serve`, opens the UI in headless
// Chromium (Debian's package), follows $all in the live tail, appends an event through the HTTP
// API, sees it arrive, opens it with the keyboard, follows its causation link, signs in to a
// server with authentication on, shows a consumer group and the configured projections (one
// failing) with their lag on the Subscriptions page, and saves screenshots as test artifacts. How: the Chrome DevTools Protocol over a pipe
// (--remote-debugging-pipe) from Node 20, no npm packages.
// Usage: node ui_test.mjs CAIRN_BINARY ARTIFACT_DIR
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [cairn, artifacts] = process.argv.slice(2);
if (!cairn || !artifacts) {
  console.error("usage: node ui_test.mjs CAIRN_BINARY ARTIFACT_DIR");
  process.exit(2);
}
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
if (!existsSync(chromiumPath)) {
  console.error(`web: FAIL: ${chromiumPath} is missing; scripts/install-deps installs the chromium package`);
  process.exit(1);
}
mkdirSync(artifacts, { recursive: true });
const work = mkdtempSync(join(tmpdir(), "cairn-web-"));
const servers = [];
let browser = null;

function fail(message) {
  throw new Error(message);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    // A page that is still loading (its context about to be replaced) may throw: try again.
    last = await Promise.resolve().then(fn).catch((err) => `error: ${err.message}`);
    if (last && !(typeof last === "string" && last.startsWith("error: "))) return last;
    await sleep(100);
  }
  fail(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

// --- the server ---------------------------------------------------------------------------------
async function startServer(name, extraArgs = []) {
  let log = "";
  const server = spawn(cairn, ["serve", "--db", `file:${join(work, name)}`, "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0", ...extraArgs],
                       { stdio: ["ignore", "pipe", "pipe"] });
  servers.push(server);
  server.stdout.on("data", (d) => (log += d));
  server.stderr.on("data", (d) => (log += d));
  server.exited = new Promise((resolve) => server.on("exit", (code, signal) => resolve({ code, signal })));
  server.log = () => log;
  const port = await waitFor("cairn serve to print its HTTP port", () => {
    const m = /HTTP API and web UI on http:\/\/127\.0\.0\.1:(\d+)\//.exec(log);
    return m && Number(m[1]);
  });
  return port;
}

// --- the browser, over the DevTools protocol on fds 3 (to Chromium) and 4 (from it) -----------------
function startBrowser() {
  const proc = spawn(chromiumPath, [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--no-default-browser-check", "--remote-debugging-pipe", `--user-data-dir=${join(work, "profile")}`,
    "--window-size=1280,900", "about:blank"], { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"] });
  let stderr = "";
  proc.stdio[2].on("data", (d) => (stderr += d));
  const pending = new Map();
  const listeners = [];
  let nextId = 1;
  let buffer = Buffer.alloc(0);
  proc.stdio[4].on("data", (chunk) => {
    buffer = Buffer.concat([buffer, chunk]);
    let end;
    while ((end = buffer.indexOf(0)) >= 0) {
      const msg = JSON.parse(buffer.subarray(0, end).toString("utf8"));
      buffer = buffer.subarray(end + 1);
      if (msg.id && pending.has(msg.id)) {
        const { resolve, reject, method } = pending.get(msg.id);
        pending.delete(msg.id);
        if (msg.error) reject(new Error(`${method}: ${msg.error.message}`));
        else resolve(msg.result);
      } else if (msg.method) {
        for (const l of listeners) l(msg);
      }
    }
  });
  const send = (method, params = {}, sessionId) => new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject, method });
    proc.stdio[3].write(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }) + "\0");
  });
  return { proc, send, on: (fn) => listeners.push(fn), stderr: () => stderr };
}

// Two projections for `cairn serve --config`: one that follows the orders, one whose handler
// fails at its first event (a missing table), so the page shows both states.
function writeConfig() {
  const good = join(work, "order_totals.json");
  writeFileSync(good, JSON.stringify({
    name: "order_totals",
    tables: [{ name: "order_totals", create: "CREATE TABLE order_totals (order_id TEXT PRIMARY KEY, total INTEGER NOT NULL)" }],
    filter: { categories: ["order"] },
    on: { OrderPlaced: { sql: "INSERT INTO order_totals VALUES (?1, ?2)", params: ["stream", "data.total"] } },
  }));
  const broken = join(work, "broken.json");
  writeFileSync(broken, JSON.stringify({
    name: "broken_totals",
    tables: [{ name: "broken_totals", create: "CREATE TABLE broken_totals (id TEXT)" }],
    on: { OrderPlaced: { sql: "INSERT INTO no_such_table VALUES (?1)", params: ["stream"] } },
  }));
  const config = join(work, "serve.toml");
  writeFileSync(config, `[[projections]]\nspec = "${good}"\nsink = "sqlite:${join(work, "read.db")}"\n\n` +
                        `[[projections]]\nspec = "${broken}"\nsink = "sqlite:${join(work, "broken.db")}"\n`);
  return config;
}

async function main() {
  const port = await startServer("data", ["--config", writeConfig()]);
  const base = `http://127.0.0.1:${port}`;
  console.log(`web: cairn serve, HTTP on ${base}`);

  browser = startBrowser();
  const { targetId } = await browser.send("Target.createTarget", { url: "about:blank" });
  const { sessionId } = await browser.send("Target.attachToTarget", { targetId, flatten: true });
  const page = (method, params) => browser.send(method, params, sessionId);
  const pageErrors = [];
  browser.on((msg) => {
    if (msg.sessionId !== sessionId) return;
    if (msg.method === "Runtime.exceptionThrown") pageErrors.push(msg.params.exceptionDetails.exception?.description || msg.params.exceptionDetails.text);
    if (msg.method === "Runtime.consoleAPICalled" && msg.params.type === "error") pageErrors.push(msg.params.args.map((a) => a.value ?? a.description).join(" "));
  });
  await page("Runtime.enable");
  await page("Page.enable");
  await page("Emulation.setDeviceMetricsOverride", { width: 1280, height: 900, deviceScaleFactor: 1, mobile: false });
  const evaluate = async (expression) => {
    const r = await page("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true });
    if (r.exceptionDetails) fail(`evaluate ${expression}: ${r.exceptionDetails.exception?.description || r.exceptionDetails.text}`);
    return r.result.value;
  };
  const screenshot = async (name) => {
    const { data } = await page("Page.captureScreenshot", { format: "png" });
    const file = join(artifacts, name);
    writeFileSync(file, Buffer.from(data, "base64"));
    console.log(`web: screenshot ${file}`);
  };
  const append = async (stream, body) => {
    const res = await fetch(`${base}/streams/${encodeURIComponent(stream)}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const json = await res.json();
    if (res.status !== 200) fail(`append to ${stream}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };

  // The cause, before the UI opens (history), then the live tail of $all.
  const causeId = "0190a6e4-1b2c-7d3e-8f40-00000000c0de";
  await append("order-1", { events: [{ id: causeId, type: "OrderPlaced", data: { total: 42 } }] });
  await page("Page.navigate", { url: `${base}/#/live` });
  await waitFor("the live tail to catch up", () => evaluate(`document.querySelector("#live-state")?.textContent`).then((t) => t === "live" && t));
  await waitFor("the history event in the tail", () => evaluate(`!!document.querySelector('#live-rows tr[data-type="OrderPlaced"]')`));

  // An event appended through the API appears in the live tail.
  await append("shipment-7", { events: [{ type: "ShipmentSent", data: { carrier: "post", seen: true },
                                          metadata: { $correlationId: causeId, $causationId: causeId } }] });
  await waitFor("the appended event in the live tail", () => evaluate(`!!document.querySelector('#live-rows tr[data-type="ShipmentSent"]')`));
  const firstRow = await evaluate(`document.querySelector('#live-rows tr').dataset.type`);
  if (firstRow !== "ShipmentSent") fail(`the newest row is ${firstRow}, want ShipmentSent first`);
  await screenshot("web-ui-live-tail.png");

  // Open it with the keyboard: focus its link, press Enter.
  await evaluate(`document.querySelector('#live-rows tr[data-type="ShipmentSent"] td:nth-child(3) a').focus()`);
  for (const type of ["keyDown", "keyUp"]) {
    await page("Input.dispatchKeyEvent", { type, key: "Enter", code: "Enter", windowsVirtualKeyCode: 13, ...(type === "keyDown" ? { text: "\r" } : {}) });
  }
  await waitFor("the event view", () => evaluate(`!!document.querySelector("#event-props")`));
  const view = await evaluate(`document.querySelector("main").innerText`);
  for (const want of ["ShipmentSent", "shipment-7", '"carrier": "post"', '"seen": true', causeId]) {
    if (!view.includes(want)) fail(`the event view lacks ${want}:\n${view}`);
  }
  await screenshot("web-ui-event.png");

  // Its causation id links to the causing event.
  await evaluate(`[...document.querySelectorAll("#event-props a")].find((a) => a.textContent === "${causeId}").click()`);
  await waitFor("the causing event", () => evaluate(`document.querySelector("main h1")?.textContent.startsWith("OrderPlaced")`));

  // The stream browser finds the stream by category; the dashboard counts the events.
  await page("Page.navigate", { url: `${base}/#/streams?category=shipment` });
  await waitFor("the stream browser", () => evaluate(`[...document.querySelectorAll("main table a")].some((a) => a.textContent === "shipment-7")`));
  await page("Page.navigate", { url: `${base}/#/` });
  await waitFor("the dashboard", () => evaluate(`[...document.querySelectorAll(".card")].some((c) => c.innerText.startsWith("Events") && c.innerText.includes("2"))`));
  await screenshot("web-ui-dashboard.png");

  // A consumer group on order-1 from its start (one event, no consumer yet: lag 1), then the
  // Subscriptions page by keyboard (g u): the group with its lag, the projections with theirs.
  const created = await fetch(`${base}/subscriptions/order-1/billing`, {
    method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ start_from: "start" }) });
  if (created.status !== 201) fail(`PUT /subscriptions/order-1/billing: ${created.status} ${await created.text()}`);
  await evaluate(`document.querySelector("main").focus()`);
  for (const key of ["g", "u"]) {
    for (const type of ["keyDown", "keyUp"]) {
      await page("Input.dispatchKeyEvent", { type, key, code: "Key" + key.toUpperCase(), ...(type === "keyDown" ? { text: key } : {}) });
    }
  }
  await waitFor("the Subscriptions page", () => evaluate(`location.hash === "#/subscriptions" && !!document.querySelector("#groups")`));
  await waitFor("the group with lag 1", () => evaluate(`!!document.querySelector('#groups tr[data-group="billing"][data-stream="order-1"] [data-lag="1"]')`));
  await waitFor("the projection caught up (lag 0, one event handled)", () => evaluate(`(() => {
    const row = document.querySelector('#projections tr[data-projection="order_totals"][data-state="live"]');
    return !!row && !!row.querySelector('[data-lag="0"]') && row.children[4].textContent === "1";
  })()`));
  await waitFor("the failing projection with its reason", () => evaluate(`(() => {
    const row = document.querySelector('#projections tr[data-projection="broken_totals"][data-state="failed"]');
    return !!row && row.innerText.includes("no such table: no_such_table");
  })()`));
  await screenshot("web-ui-subscriptions.png");
  // The dashboard counts them.
  await page("Page.navigate", { url: `${base}/#/` });
  await waitFor("the dashboard's group and projection count", () => evaluate(`[...document.querySelectorAll(".card")].some((c) => c.innerText.startsWith("Groups · projections") && c.innerText.includes("1 · 2") && c.innerText.includes("1 failed"))`));

  if (pageErrors.length) fail(`the page reported errors:\n${pageErrors.join("\n")}`);

  // With authentication on, the UI asks for a login; typed credentials open the dashboard.
  const securePort = await startServer("secure", ["--auth", "--admin-password", "web-test-admin-pw"]);
  await page("Page.navigate", { url: `http://127.0.0.1:${securePort}/#/` });
  await waitFor("the sign-in dialog", () => evaluate(`document.getElementById("login").open`));
  await screenshot("web-ui-login.png");
  const type = async (selector, text) => {
    await evaluate(`document.querySelector('${selector}').focus()`);
    await page("Input.insertText", { text });
  };
  await type('#login-form input[name="user"]', "admin");
  await type('#login-form input[name="password"]', "web-test-admin-pw");
  for (const t of ["keyDown", "keyUp"]) {
    await page("Input.dispatchKeyEvent", { type: t, key: "Enter", code: "Enter", windowsVirtualKeyCode: 13, ...(t === "keyDown" ? { text: "\r" } : {}) });
  }
  await waitFor("the dashboard after signing in", () => evaluate(`!document.getElementById("login").open && [...document.querySelectorAll(".card")].some((c) => c.innerText.startsWith("Events"))`), 30000);
  const user = await evaluate(`document.getElementById("user").innerText`);
  if (!user.includes("Signed in as admin")) fail(`the header says "${user}", want "Signed in as admin"`);
  console.log("web: ok");
}

let status = 0;
try {
  await main();
} catch (err) {
  console.error(`web: FAIL: ${err.message}`);
  if (browser && browser.stderr()) console.error(`chromium stderr (tail):\n${browser.stderr().slice(-2000)}`);
  status = 1;
} finally {
  if (browser) {
    browser.proc.kill("SIGKILL");
  }
  for (const server of servers) {
    server.kill("SIGTERM");
    const timer = setTimeout(() => server.kill("SIGKILL"), 10000);
    const { code, signal } = await server.exited;
    clearTimeout(timer);
    if (code !== 0 || !server.log().includes("cairn serve: stopped")) {
      console.error(`web: FAIL: cairn serve did not stop cleanly on SIGTERM (code ${code}, signal ${signal}):\n${server.log()}`);
      status = 1;
    }
  }
  rmSync(work, { recursive: true, force: true });
}
process.exit(status);
