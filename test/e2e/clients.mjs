// Proves that the official Node.js clients work unchanged against `cairn serve`: each client
// appends, reads, subscribes, sets metadata, deletes and tombstones, and every result is checked.
// Usage: node clients.mjs PORT  (run by run_e2e.sh, which starts the server).
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
// One client library per process: both register their generated protobuf classes under the same
// global names, so loading both in one process makes one serialize with the other's classes.
const only = process.argv.at(-1);
assert.ok(only === "eventstore" || only === "kurrent", "the last argument: eventstore or kurrent");
const esdb = only === "eventstore" ? await import("@eventstore/db-client") : null;
const kurrent = only === "kurrent" ? await import("@kurrent/kurrentdb-client") : null;

const port = Number(process.argv[2]);
assert.ok(port > 0, "usage: node clients.mjs PORT");
const run = randomUUID().slice(0, 8);

// The two clients name a few things differently; everything else is the same API.
const clients = [
  {
    name: "eventstore-db-client",
    lib: esdb,
    connect: () => esdb.EventStoreDBClient.connectionString(`esdb://127.0.0.1:${port}?tls=false`),
    appendOptions: (state) => ({ expectedRevision: state }),
    versions: (e) => ({ expected: e.expectedVersion, actual: e.actualVersion }),
  },
  {
    name: "kurrent-kurrentdb-client",
    lib: kurrent,
    connect: () => kurrent.KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${port}?tls=false`),
    appendOptions: (state) => ({ streamState: state }),
    versions: (e) => ({ expected: e.expectedState, actual: e.actualState }),
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

async function collect(iterable) {
  const out = [];
  for await (const e of iterable) out.push(e);
  return out;
}

async function rejects(promiseOrFn, type) {
  try {
    const p = typeof promiseOrFn === "function" ? promiseOrFn() : promiseOrFn;
    await p;
  } catch (error) {
    assert.equal(error.type, type, `expected a ${type} error, got ${error.type}: ${error.message}`);
    return error;
  }
  assert.fail(`expected a ${type} error, but the call succeeded`);
}

// Resolves with the events a subscription delivered before its caught-up signal and the first
// `liveCount` after it; `onCaughtUp` runs once (to append the live events).
function subscribeUntil(subscription, liveCount, onCaughtUp) {
  return new Promise((resolve, reject) => {
    const before = [];
    const after = [];
    let caughtUp = false;
    const timer = setTimeout(() => reject(new Error(`subscription timed out: caughtUp=${caughtUp}, ` +
      `${before.length} before, ${after.length} after`)), 15000);
    subscription.on("caughtUp", () => {
      if (caughtUp) return;
      caughtUp = true;
      Promise.resolve(onCaughtUp()).catch(reject);
    });
    subscription.on("error", reject);
    subscription.on("data", (e) => {
      (caughtUp ? after : before).push(e);
      if (after.length >= liveCount) {
        clearTimeout(timer);
        subscription.unsubscribe().then(() => resolve({ before, after }), reject);
      }
    });
  });
}

// Reads a persistent subscription until `done(received)` is true; `onEvent` answers each event
// (ack or nack). Gives up after 15 s.
function consumeUntil(subscription, onEvent, done) {
  return new Promise((resolve, reject) => {
    const received = [];
    const timer = setTimeout(() => reject(new Error(`persistent subscription timed out after ${received.length} events: ` +
      JSON.stringify(received.map((e) => [String(e.event?.revision), e.retryCount])))), 15000);
    subscription.on("error", reject);
    subscription.on("data", (e) => {
      received.push(e);
      Promise.resolve(onEvent(e))
        .then(() => {
          if (done(received)) {
            clearTimeout(timer);
            subscription.removeAllListeners("data");
            resolve(received);
          }
        })
        .catch(reject);
    });
  });
}

async function waitFor(what, fn) {
  const deadline = Date.now() + 10000;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

for (const c of clients) {
  const { lib } = c;
  const client = c.connect();
  const s = (name) => `${name}-${c.name}-${run}`;
  const main = s("order");
  const event = (type, data) => lib.jsonEvent({ type, data });

  await check(`${c.name}: append with each expected revision kind`, async () => {
    let r = await client.appendToStream(main, [event("Placed", { n: 0 }), event("Paid", { n: 1 })], c.appendOptions(lib.NO_STREAM));
    assert.equal(r.success, true);
    assert.equal(r.nextExpectedRevision, 1n);
    assert.ok(typeof r.position.commit === "bigint");
    r = await client.appendToStream(main, event("Packed", { n: 2 }), c.appendOptions(1n));
    assert.equal(r.nextExpectedRevision, 2n);
    r = await client.appendToStream(main, event("Shipped", { n: 3 }), c.appendOptions(lib.STREAM_EXISTS));
    assert.equal(r.nextExpectedRevision, 3n);
    r = await client.appendToStream(main, event("Delivered", { n: 4 }), c.appendOptions(lib.ANY));
    assert.equal(r.nextExpectedRevision, 4n);
  });

  await check(`${c.name}: wrong expected version is an error carrying both versions`, async () => {
    let e = await rejects(() => client.appendToStream(main, event("X", {}), c.appendOptions(lib.NO_STREAM)), "wrong-expected-version");
    assert.deepEqual(c.versions(e), { expected: "no_stream", actual: 4n });
    e = await rejects(() => client.appendToStream(main, event("X", {}), c.appendOptions(1n)), "wrong-expected-version");
    assert.deepEqual(c.versions(e), { expected: 1n, actual: 4n });
    e = await rejects(() => client.appendToStream(s("never"), event("X", {}), c.appendOptions(lib.STREAM_EXISTS)), "wrong-expected-version");
    assert.equal(c.versions(e).actual, "no_stream");
    // Nothing was written by the rejected appends.
    const events = await collect(client.readStream(main));
    assert.equal(events.length, 5);
  });

  await check(`${c.name}: read a stream forwards`, async () => {
    const events = await collect(client.readStream(main, { direction: lib.FORWARDS, fromRevision: lib.START }));
    assert.deepEqual(events.map((e) => e.event.type), ["Placed", "Paid", "Packed", "Shipped", "Delivered"]);
    assert.deepEqual(events.map((e) => e.event.revision), [0n, 1n, 2n, 3n, 4n]);
    assert.deepEqual(events.map((e) => e.event.data.n), [0, 1, 2, 3, 4]);
    assert.ok(events.every((e) => e.event.streamId === main && e.event.isJson));
    assert.ok(events.every((e) => e.event.created instanceof Date && Math.abs(e.event.created - Date.now()) < 600000));
    const page = await collect(client.readStream(main, { fromRevision: 2n, maxCount: 2 }));
    assert.deepEqual(page.map((e) => e.event.revision), [2n, 3n]);
  });

  await check(`${c.name}: read a stream backwards`, async () => {
    const events = await collect(client.readStream(main, { direction: lib.BACKWARDS, fromRevision: lib.END }));
    assert.deepEqual(events.map((e) => e.event.revision), [4n, 3n, 2n, 1n, 0n]);
    const page = await collect(client.readStream(main, { direction: lib.BACKWARDS, fromRevision: 3n, maxCount: 2 }));
    assert.deepEqual(page.map((e) => e.event.revision), [3n, 2n]);
  });

  await check(`${c.name}: reading a stream never written says stream-not-found`, async () => {
    await rejects(() => collect(client.readStream(s("missing"))), "stream-not-found");
  });

  await check(`${c.name}: read $all forwards and backwards`, async () => {
    const forward = (await collect(client.readAll({ direction: lib.FORWARDS, fromPosition: lib.START })))
      .filter((e) => e.event?.streamId === main);
    assert.deepEqual(forward.map((e) => e.event.revision), [0n, 1n, 2n, 3n, 4n]);
    for (let i = 1; i < forward.length; i++) assert.ok(forward[i].event.position.commit > forward[i - 1].event.position.commit);
    const backward = await collect(client.readAll({ direction: lib.BACKWARDS, fromPosition: lib.END, maxCount: 3 }));
    assert.equal(backward.length, 3);
    assert.ok(backward[0].event.position.commit > backward[1].event.position.commit);
    // The newest event of the store is the last one of this run's stream.
    assert.equal(backward[0].event.streamId, main);
    assert.equal(backward[0].event.revision, 4n);
    // Forward from a position starts at that event.
    const from = await collect(client.readAll({ fromPosition: forward[2].event.position, maxCount: 1 }));
    assert.equal(from[0].event.revision, 2n);
  });

  await check(`${c.name}: catch-up subscription to a stream, then a live event`, async () => {
    const sub = client.subscribeToStream(main, { fromRevision: lib.START });
    const { before, after } = await subscribeUntil(sub, 1, () =>
      client.appendToStream(main, event("Returned", { n: 5 }), c.appendOptions(4n)));
    assert.deepEqual(before.map((e) => e.event.revision), [0n, 1n, 2n, 3n, 4n]);
    assert.equal(after[0].event.type, "Returned");
    assert.equal(after[0].event.revision, 5n);
  });

  await check(`${c.name}: catch-up subscription to $all with a filter, then a live event`, async () => {
    const filter = lib.streamNameFilter({ prefixes: [main] });
    const sub = client.subscribeToAll({ fromPosition: lib.START, filter });
    const { before, after } = await subscribeUntil(sub, 1, () =>
      client.appendToStream(main, event("Refunded", { n: 6 }), c.appendOptions(5n)));
    assert.deepEqual(before.map((e) => e.event.revision), [0n, 1n, 2n, 3n, 4n, 5n]);
    assert.ok(before.every((e) => e.event.streamId === main));
    assert.equal(after[0].event.type, "Refunded");
  });

  await check(`${c.name}: stream metadata max count hides older events`, async () => {
    const r = await client.setStreamMetadata(main, { maxCount: 2 });
    assert.equal(r.success, true);
    const md = await client.getStreamMetadata(main);
    assert.equal(md.metadata.maxCount, 2);
    const events = await collect(client.readStream(main));
    assert.deepEqual(events.map((e) => e.event.revision), [5n, 6n]);
  });

  await check(`${c.name}: soft delete, then an append re-opens the stream`, async () => {
    const stream = s("cart");
    await client.appendToStream(stream, [event("Added", {}), event("Added", {})], c.appendOptions(lib.NO_STREAM));
    await rejects(() => client.deleteStream(stream, { expectedRevision: 0n }), "wrong-expected-version");
    await client.deleteStream(stream, { expectedRevision: 1n });
    await rejects(() => collect(client.readStream(stream)), "stream-not-found");
    const r = await client.appendToStream(stream, event("Added", {}), c.appendOptions(lib.ANY));
    assert.equal(r.nextExpectedRevision, 2n);
    const events = await collect(client.readStream(stream));
    assert.deepEqual(events.map((e) => e.event.revision), [2n]);
  });

  await check(`${c.name}: tombstone deletes for good`, async () => {
    const stream = s("session");
    await client.appendToStream(stream, event("Opened", {}), c.appendOptions(lib.NO_STREAM));
    await client.tombstoneStream(stream, { expectedRevision: lib.ANY });
    await rejects(() => collect(client.readStream(stream)), "stream-deleted");
    await rejects(() => client.appendToStream(stream, event("Opened", {}), c.appendOptions(lib.ANY)), "stream-deleted");
  });

  await check(`${c.name}: persistent subscription: create, receive, ack, nack retry and park, replay parked, delete`, async () => {
    const stream = s("jobs");
    const group = "workers";
    await client.appendToStream(stream, [event("Job", { n: 0 }), event("Job", { n: 1 }), event("Job", { n: 2 })]);
    const settings = lib.persistentSubscriptionToStreamSettingsFromDefaults({ startFrom: lib.START, maxRetryCount: 2 });
    await client.createPersistentSubscriptionToStream(stream, group, settings);
    await rejects(() => client.createPersistentSubscriptionToStream(stream, group, settings), "persistent-subscription-exists");
    const listed = await client.listPersistentSubscriptionsToStream(stream);
    assert.deepEqual(listed.map((i) => i.groupName), [group]);

    const sub = client.subscribeToPersistentSubscriptionToStream(stream, group, { bufferSize: 10 });
    // 0: ack. 1: retry once, then ack the redelivery. 2: park.
    const received = await consumeUntil(sub, async (e) => {
      const n = e.event.data.n;
      if (n === 1 && e.retryCount === 0) return sub.nack("retry", "try again", e);
      if (n === 2) return sub.nack("park", "poison", e);
      return sub.ack(e);
    }, (got) => got.length >= 4);
    const seen = received.map((e) => `${e.event.revision}/${e.retryCount}`).sort();
    assert.deepEqual(seen, ["0/0", "1/0", "1/1", "2/0"]);

    await waitFor("the parked event", async () =>
      (await client.getPersistentSubscriptionToStreamInfo(stream, group)).stats.parkedMessageCount === 1n);
    const info = await client.getPersistentSubscriptionToStreamInfo(stream, group);
    assert.equal(info.settings.maxRetryCount, 2);
    assert.equal(info.connections.length, 1);

    // Replaying the parked event delivers it again.
    const again = consumeUntil(sub, (e) => sub.ack(e), (got) => got.length >= 1);
    await client.replayParkedMessagesToStream(stream, group);
    const replayed = await again;
    assert.equal(replayed[0].event.revision, 2n);
    await waitFor("the parked stream to empty", async () =>
      (await client.getPersistentSubscriptionToStreamInfo(stream, group)).stats.parkedMessageCount === 0n);
    await sub.unsubscribe();

    await client.deletePersistentSubscriptionToStream(stream, group);
    await rejects(() => client.getPersistentSubscriptionToStreamInfo(stream, group), "persistent-subscription-does-not-exist");
    await rejects(() => client.deletePersistentSubscriptionToStream(stream, group), "persistent-subscription-does-not-exist");
  });

  await check(`${c.name}: persistent subscription to $all with a prefix filter, competing consumers`, async () => {
    const prefix = s("pall");
    const group = s("g");
    await client.createPersistentSubscriptionToAll(group,
      lib.persistentSubscriptionToAllSettingsFromDefaults({ startFrom: lib.END }),
      { filter: lib.streamNameFilter({ prefixes: [prefix] }) });
    const a = client.subscribeToPersistentSubscriptionToAll(group, { bufferSize: 2 });
    const b = client.subscribeToPersistentSubscriptionToAll(group, { bufferSize: 2 });
    const seen = [];
    const perConsumer = [0, 0];
    [a, b].forEach((sub, i) => sub.on("data", (e) => {
      seen.push(e.event.streamId);
      perConsumer[i]++;
      sub.ack(e).catch(() => {});
    }));
    await waitFor("both consumers", async () =>
      (await client.getPersistentSubscriptionToAllInfo(group)).connections.length === 2);
    for (let i = 0; i < 6; i++) {
      await client.appendToStream(`${prefix}-${i}`, event("Noted", { i }));
      await client.appendToStream(s("other"), event("Noted", { i }));
    }
    await waitFor("six events", async () => seen.length >= 6);
    assert.ok(perConsumer[0] > 0 && perConsumer[1] > 0, `round robin: ${perConsumer}`);
    assert.deepEqual([...seen].sort(), [0, 1, 2, 3, 4, 5].map((i) => `${prefix}-${i}`));
    await a.unsubscribe();
    await b.unsubscribe();
    await client.deletePersistentSubscriptionToAll(group);
  });

  await check(`${c.name}: persistent subscription to $all filtered by event type prefix and by stream regex`, async () => {
    const tag = s("flt").replace(/[^a-zA-Z0-9]/g, "");
    const byType = s("gtype");
    const byRegex = s("gregex");
    const defaults = lib.persistentSubscriptionToAllSettingsFromDefaults({ startFrom: lib.END });
    await client.createPersistentSubscriptionToAll(byType, defaults,
      { filter: lib.eventTypeFilter({ prefixes: [`${tag}Order`] }) });
    await client.createPersistentSubscriptionToAll(byRegex, defaults,
      { filter: lib.streamNameFilter({ regex: `^${tag}-(a|b)$` }) });
    await client.appendToStream(`${tag}-a`, event(`${tag}OrderPlaced`, { n: 1 }));
    await client.appendToStream(`${tag}-b`, event(`${tag}QuoteSent`, { n: 2 }));
    await client.appendToStream(`${tag}-c`, event(`${tag}OrderShipped`, { n: 3 }));
    const take = async (group, count) => {
      const sub = client.subscribeToPersistentSubscriptionToAll(group, { bufferSize: 10 });
      const got = await consumeUntil(sub, (e) => sub.ack(e), (all) => all.length >= count);
      // Nothing else arrives.
      await new Promise((r) => setTimeout(r, 300));
      await sub.unsubscribe();
      return got.map((e) => `${e.event.streamId}/${e.event.type}`);
    };
    assert.deepEqual(await take(byType, 2), [`${tag}-a/${tag}OrderPlaced`, `${tag}-c/${tag}OrderShipped`]);
    assert.deepEqual(await take(byRegex, 2), [`${tag}-a/${tag}OrderPlaced`, `${tag}-b/${tag}QuoteSent`]);
    await assert.rejects(() => client.createPersistentSubscriptionToAll(s("gbad"), defaults,
      { filter: lib.streamNameFilter({ regex: "(" }) }), /filter\.stream_regex/);
    await client.deletePersistentSubscriptionToAll(byType);
    await client.deletePersistentSubscriptionToAll(byRegex);
  });

  await check(`${c.name}: persistent subscription info: checkpoint, last event, totals, in flight, connections`, async () => {
    const stream = s("stats");
    const group = s("gstats");
    await client.appendToStream(stream, [event("Job", { n: 0 }), event("Job", { n: 1 }), event("Job", { n: 2 })]);
    await client.createPersistentSubscriptionToStream(stream, group,
      lib.persistentSubscriptionToStreamSettingsFromDefaults({ startFrom: lib.START, checkPointLowerBound: 1, checkPointAfter: 100 }));
    const sub = client.subscribeToPersistentSubscriptionToStream(stream, group, { bufferSize: 5 });
    // Acknowledge two, keep the third in flight.
    await consumeUntil(sub, (e) => (e.event.revision < 2n ? sub.ack(e) : undefined), (got) => got.length >= 3);
    await waitFor("the checkpoint after the first two", async () =>
      (await client.getPersistentSubscriptionToStreamInfo(stream, group)).stats.lastCheckpointedEventRevision === 1n);
    const info = await client.getPersistentSubscriptionToStreamInfo(stream, group);
    assert.equal(info.stats.lastKnownEventRevision, 2n);
    assert.equal(Number(info.stats.totalItems), 3);
    assert.equal(Number(info.stats.totalInFlightMessages), 1);
    assert.equal(Number(info.stats.parkedMessageCount), 0);
    assert.equal(info.connections.length, 1);
    const conn = info.connections[0];
    assert.equal(Number(conn.totalItems), 3);
    assert.equal(Number(conn.inFlightMessages), 1);
    assert.equal(Number(conn.availableSlots), 4);
    assert.match(conn.from, /127\.0\.0\.1|ipv4|ipv6/);
    const all = await client.listAllPersistentSubscriptions();
    const mine = all.find((i) => i.groupName === group);
    assert.ok(mine, "listAllPersistentSubscriptions has the group");
    assert.equal(mine.eventSource, stream);
    assert.equal(Number(mine.stats.totalItems), 3);
    await sub.unsubscribe();
    await client.deletePersistentSubscriptionToStream(stream, group);
  });

  await check(`${c.name}: a consumer of an updated or deleted group gets persistent-subscription-dropped`, async () => {
    const stream = s("drop");
    const group = s("gdrop");
    const settings = lib.persistentSubscriptionToStreamSettingsFromDefaults({ startFrom: lib.START });
    await client.createPersistentSubscriptionToStream(stream, group, settings);
    const dropped = (sub) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no error from the subscription")), 10000);
      sub.on("error", (error) => {
        clearTimeout(timer);
        resolve(error);
      });
      sub.on("data", () => {});
    });
    const connected = async (count) => waitFor(`${count} connection(s)`, async () =>
      (await client.getPersistentSubscriptionToStreamInfo(stream, group)).connections.length === count);
    const first = client.subscribeToPersistentSubscriptionToStream(stream, group);
    const firstError = dropped(first);
    await connected(1);
    await client.updatePersistentSubscriptionToStream(stream, group, { ...settings, maxRetryCount: 3 });
    const e1 = await firstError;
    assert.equal(e1.type, "persistent-subscription-dropped", `${e1.type}: ${e1.message}`);
    assert.equal(e1.groupName, group);

    const second = client.subscribeToPersistentSubscriptionToStream(stream, group);
    const secondError = dropped(second);
    await connected(1);
    await client.deletePersistentSubscriptionToStream(stream, group);
    const e2 = await secondError;
    assert.equal(e2.type, "persistent-subscription-dropped", `${e2.type}: ${e2.message}`);
  });

  await client.dispose();
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
