// Proves that the official Node.js clients work unchanged against `cairn serve` with TLS and
// authentication: credentials in the connection string, the server's certificate checked against
// a CA file, permissions per stream prefix enforced, bad credentials refused.
// Usage: node secure.mjs PORT CA_FILE ADMIN_PASSWORD  (run by run_e2e.sh, which starts the server
// with a config whose rules let the group "tellers" read and write "acct-" streams).
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
// One client library per process: both register their generated protobuf classes under the same
// global names, so loading both in one process makes one serialize with the other's classes.
const only = process.argv.at(-1);
assert.ok(only === "eventstore" || only === "kurrent", "the last argument: eventstore or kurrent");
const esdb = only === "eventstore" ? await import("@eventstore/db-client") : null;
const kurrent = only === "kurrent" ? await import("@kurrent/kurrentdb-client") : null;

const [port, caFile, adminPassword] = [Number(process.argv[2]), process.argv[3], process.argv[4]];
assert.ok(port > 0 && caFile && adminPassword, "usage: node secure.mjs PORT CA_FILE ADMIN_PASSWORD");
const run = randomUUID().slice(0, 8);

const clients = [
  {
    name: "eventstore-db-client",
    lib: esdb,
    connect: (cred) =>
      esdb.EventStoreDBClient.connectionString(`esdb://${cred}@127.0.0.1:${port}?tls=true&tlsCAFile=${caFile}`),
    Client: esdb?.EventStoreDBClient,
  },
  {
    name: "kurrent-kurrentdb-client",
    lib: kurrent,
    connect: (cred) =>
      kurrent.KurrentDBClient.connectionString(`kurrentdb://${cred}@127.0.0.1:${port}?tls=true&tlsCAFile=${caFile}`),
    Client: kurrent?.KurrentDBClient,
  },
].filter((c) => c.lib !== null);

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (error) {
    failed++;
    console.log(`FAIL ${name}\n${error?.stack ?? error}`);
  }
}
async function accessDenied(fn) {
  try {
    await fn();
  } catch (error) {
    assert.equal(error.type, "access-denied", `expected access-denied, got ${error.type}: ${error.message}`);
    return;
  }
  assert.fail("expected access-denied, but the call succeeded");
}
async function collect(iterable) {
  const out = [];
  for await (const e of iterable) out.push(e);
  return out;
}

for (const c of clients) {
  const event = (type) => c.lib.jsonEvent({ type, data: { run } });
  const admin = c.connect(`admin:${adminPassword}`);
  const teller = c.connect("teller:teller-password");
  const wrong = c.connect("teller:not-the-password");
  const stream = `acct-${c.name}-${run}`;

  await check(`${c.name}: admin appends and reads over TLS`, async () => {
    const r = await admin.appendToStream(`admin-${stream}`, [event("Opened")]);
    assert.equal(r.success, true);
    const events = await collect(admin.readStream(`admin-${stream}`));
    assert.equal(events.length, 1);
    assert.equal(events[0].event.type, "Opened");
  });
  await check(`${c.name}: a teller writes and reads acct- streams`, async () => {
    await teller.appendToStream(stream, [event("Deposited"), event("Withdrawn")]);
    const events = await collect(teller.readStream(stream));
    assert.deepEqual(events.map((e) => e.event.type), ["Deposited", "Withdrawn"]);
  });
  await check(`${c.name}: a teller may not write other streams, read $all or delete`, async () => {
    await accessDenied(() => teller.appendToStream(`other-${stream}`, [event("Sneaked")]));
    await accessDenied(() => collect(teller.readAll({ maxCount: 10 })));
    await accessDenied(() => teller.deleteStream(stream));
    const other = await collect(admin.readAll({ maxCount: 100000 }));
    assert.ok(!other.some((e) => e.event?.streamId === `other-${stream}`), "the refused append wrote nothing");
  });
  await check(`${c.name}: a wrong password is refused`, async () => {
    await accessDenied(() => wrong.appendToStream(stream, [event("Forged")]));
    const events = await collect(admin.readStream(stream));
    assert.equal(events.length, 2);
  });
  await check(`${c.name}: a client without TLS cannot talk to the TLS server`, async () => {
    const plain = c.Client.connectionString(`esdb://admin:${adminPassword}@127.0.0.1:${port}?tls=false`);
    await assert.rejects(() => plain.appendToStream(`plain-${stream}`, [event("Plain")], { deadline: 3000 }));
    await plain.dispose();
  });
  await Promise.all([admin.dispose(), teller.dispose(), wrong.dispose()]);
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
