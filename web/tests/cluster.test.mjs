// Several servers sharing meetings through a real redis-server, with
// browsers: pages entering one meeting through different servers end up on
// the one that holds it and see each other; a new meeting goes to another
// server; behind the nginx sample (one public name), the meeting's server
// is killed mid-call, or hangs, and every page is back, on another, within
// seconds; Redis goes away for 30 s and the meeting carries on.
// Runs inside ops/netns.sh.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import {
  cleanUp, counterSum, freePort, joinPage, launchBrowser, receivedByName, sleep, startServer, until, assertRealRoot,
} from './harness.mjs';
import { HOST, NEEDS_ROOT, startNginx } from './nginx.mjs';

const IDS = ['a', 'b', 'c'];

/** Debian's redis-server on a free loopback port, keeping nothing on disk. */
async function startRedis() {
  const port = await freePort();
  let child = null;
  let exited = null;
  const run = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    });
    exited = new Promise((resolve) => child.once('exit', resolve));
    await until('redis-server to listen', () => new Promise((resolve) => {
      const s = createConnection({ host: '127.0.0.1', port }, () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    }), 10000, 50);
  };
  const stop = async () => {
    if (!child) return;
    child.kill('SIGTERM');
    await exited;
    child = null;
  };
  await run();
  return {
    url: `redis://127.0.0.1:${port}/0`,
    stop,
    /** Stops it, all it held lost, until `resume`. */
    pause: stop,
    /** Starts it again, empty, on its port. */
    resume: run,
  };
}

/** Three servers sharing meetings through `redis`; `env(id)` adds each
 * one's settings; `ports`: where each listens (else anywhere). */
async function startCluster(redis, env, ports = {}) {
  const servers = {};
  for (const id of IDS) {
    servers[id] = await startServer({
      MEET_REDIS: redis.url, MEET_NODE_ID: id, MEET_WORKERS: '1',
      // The same on every server: whichever holds a meeting checks the
      // tokens and invite links another made.
      MEET_TOKEN_SECRET: 'a-token-secret-that-all-servers-share',
      ...env(id),
    }, { port: ports[id] ?? 0 });
  }
  // Each has read the others' records.
  await until('every server to see the other two', async () => {
    for (const s of Object.values(servers)) {
      if (await counterSum(s.url, 'meet_cluster_nodes') !== 3) return false;
    }
    return true;
  }, 10000);
  return servers;
}

/** How many meetings each server still running holds (`meet_cluster_leases`). */
async function holders(servers) {
  const held = {};
  for (const [id, s] of Object.entries(servers)) {
    // A stopped server would never answer.
    if (s.killed || s.stopped) continue;
    held[id] = await counterSum(s.url, 'meet_cluster_leases');
  }
  return held;
}

/** Whether every page decodes every other's video. */
async function allDecode(pages) {
  for (const p of pages) {
    const got = await receivedByName(p);
    for (const other of pages) {
      if (other !== p && !(got[other.name]?.framesDecoded > 0)) return false;
    }
  }
  return true;
}

test('pages entering through three servers meet on one; a new meeting goes to another', {
  timeout: 180000,
}, async (t) => {
  const redis = await startRedis();
  const ports = Object.fromEntries(await Promise.all(IDS.map(async (id) => [id, await freePort()])));
  // Each server reached under its own address: clients are sent on to
  // it there, and pages of the others' origins may open meetings on it.
  let servers = {};
  let browser;
  t.after(() => cleanUp(
    () => browser?.close(),
    ...Object.values(servers).map((s) => () => s.stop()),
    () => redis.stop(),
  ));
  servers = await startCluster(redis, (id) => ({
    MEET_PUBLIC_URL: `http://127.0.0.1:${ports[id]}/`,
    MEET_NODE_URL: `ws://127.0.0.1:${ports[id]}/ws`,
  }), ports);
  browser = await launchBrowser();
  const pages = [];
  for (const [id, name] of [['a', 'Alice'], ['b', 'Bob'], ['c', 'Carol']]) {
    pages.push(await joinPage(browser, servers[id].url, 'all-hands', name, {}, { t }));
  }
  await until('each page to decode the other two', () => allDecode(pages), 30000);
  const held = await holders(servers);
  const owner = Object.keys(held).find((id) => held[id] === 1);
  assert.ok(owner, `one server holds the meeting: ${JSON.stringify(held)}`);
  assert.equal(await counterSum(servers[owner].url, 'meet_participants'), 3, 'all three on it');
  let redirects = 0;
  for (const s of Object.values(servers)) redirects += await counterSum(s.url, 'meet_cluster_redirects_total');
  assert.equal(redirects, 2, 'the two pages that entered elsewhere were sent on');

  // The holder's load reaches the others at its next heartbeat; a new
  // meeting entered through it then goes to a server with nobody on it.
  await sleep(2500);
  const dave = await joinPage(browser, servers[owner].url, 'one-to-one', 'Dave', {}, { t });
  const erin = await joinPage(browser, servers[owner].url, 'one-to-one', 'Erin', {}, { t });
  await until('Dave and Erin to see each other', () => allDecode([dave, erin]), 30000);
  const after = await holders(servers);
  assert.equal(after[owner], 1, `the new meeting is not on ${owner}: ${JSON.stringify(after)}`);
  assert.equal(Object.values(after).reduce((a, b) => a + b, 0), 2, JSON.stringify(after));
});

/** Three servers behind the nginx sample (one public name; a client sent
 * on to a server goes by its node_url's path, /node/<id>/ws), and three
 * pages in a meeting through it, decoding each other. */
async function meetingBehindNginx(t) {
  assertRealRoot(NEEDS_ROOT);
  const setup = { servers: {}, pages: [] };
  const redis = await startRedis();
  setup.redis = redis;
  t.after(() => cleanUp(
    () => setup.browser?.close(),
    () => setup.nginx?.stop(),
    ...IDS.map((id) => () => {
      const s = setup.servers[id];
      if (!s || s.killed) return null;
      if (s.stopped) process.kill(s.pid, 'SIGCONT');
      return s.stop();
    }),
    () => redis.stop(),
  ));
  setup.servers = await startCluster(redis, (id) => ({ MEET_NODE_URL: `/node/${id}/ws` }));
  setup.nginx = await startNginx(Object.fromEntries(IDS.map((id) => [id, new URL(setup.servers[id].url).host])));
  setup.browser = await launchBrowser();
  const options = { t, contextOptions: { ignoreHTTPSErrors: true } };
  for (const name of ['Alice', 'Bob', 'Carol']) {
    setup.pages.push(await joinPage(setup.browser, `https://${HOST}`, 'board', name, {}, options));
  }
  await until('each page to decode the other two', () => allDecode(setup.pages), 30000);
  const held = await holders(setup.servers);
  setup.owner = Object.keys(held).find((id) => held[id] === 1);
  assert.ok(setup.owner, JSON.stringify(held));
  return setup;
}

/** Waits until every page is in the meeting anew (a new participant id)
 * and decodes the others; ms from `since` until seated and until decoding. */
async function backInTheMeeting(pages, since, withinMs) {
  const ids = await Promise.all(pages.map((p) => p.page.evaluate(() => window.meet.participantId)));
  // What each page said meanwhile, timed from `since`: a failure shows
  // where the time went.
  const timeline = [];
  for (const p of pages) {
    p.page.on('console', (m) => timeline.push(`${Math.round(performance.now() - (since() ?? performance.now()))} ms [${p.name}] ${m.text()}`));
  }
  return async (description) => {
    let seated = null;
    try {
      await until(description, async () => {
        for (const [i, p] of pages.entries()) {
          const id = await p.page.evaluate(() => window.meet.participantId);
          if (!id || id === ids[i]) return false;
        }
        seated ??= performance.now() - since();
        return allDecode(pages);
      }, withinMs, 50);
    } catch (e) {
      e.message += `\n${timeline.join('\n')}`;
      throw e;
    }
    return { seated, decoding: performance.now() - since() };
  };
}

test('behind nginx, the meeting\'s server is killed and every page is back on another within 10 s', {
  timeout: 180000,
}, async (t) => {
  const { servers, pages, owner, nginx } = await meetingBehindNginx(t);
  let killed;
  const back = await backInTheMeeting(pages, () => killed, 10000);
  process.kill(servers[owner].pid, 'SIGKILL');
  servers[owner].killed = true;
  killed = performance.now();
  const { seated, decoding } = await back('every page to be back in the meeting and decoding the others');
  const after = await holders(servers);
  const next = Object.keys(after).find((id) => after[id] === 1);
  assert.ok(next && next !== owner, JSON.stringify(after));
  console.log(`killed ${owner}: all three pages joined on ${next} after ${Math.round(seated)} ms, decoding after ${Math.round(decoding)} ms`);
  const access = nginx.accessLog();
  assert.match(access, /"GET \/node\/[abc]\/ws HTTP\/[\d.]+" (101|502) /, 'pages were sent on by node path');
});

test('behind nginx, the meeting\'s server hangs: pages move on within the lease and 5 s, and it does not take the meeting back', {
  timeout: 180000,
}, async (t) => {
  const { servers, pages, owner } = await meetingBehindNginx(t);
  let stopped;
  const back = await backInTheMeeting(pages, () => stopped, 9000);
  process.kill(servers[owner].pid, 'SIGSTOP');
  servers[owner].stopped = true;
  stopped = performance.now();
  const { seated, decoding } = await back('every page to be back in the meeting on another server');
  const after = await holders(servers);
  const next = Object.keys(after).find((id) => after[id] === 1);
  assert.ok(next && next !== owner, JSON.stringify(after));
  console.log(`stopped ${owner}: all three pages joined on ${next} after ${Math.round(seated)} ms, decoding after ${Math.round(decoding)} ms`);
  // Awake, it finds a higher fence on the meeting and lets it go; the
  // pages stay where they are.
  const ids = await Promise.all(pages.map((p) => p.page.evaluate(() => window.meet.participantId)));
  process.kill(servers[owner].pid, 'SIGCONT');
  servers[owner].stopped = false;
  await until('the woken server to let the meeting go', async () => await counterSum(servers[owner].url, 'meet_cluster_leases') === 0, 10000);
  await sleep(2000);
  assert.deepEqual(await Promise.all(pages.map((p) => p.page.evaluate(() => window.meet.participantId))), ids);
  assert.equal((await holders(servers))[next], 1);
  assert.ok(await allDecode(pages));
});

test('behind nginx, Redis stops for 30 s: the meeting carries on, and every server is back in the registry within two heartbeats', {
  timeout: 180000,
}, async (t) => {
  const { servers, pages, redis } = await meetingBehindNginx(t);
  await redis.pause();
  const away = performance.now();
  const frames = async () => Promise.all(pages.map(async (p) => Object.values(await receivedByName(p)).map((r) => r.framesDecoded)));
  let last = await frames();
  while (performance.now() - away < 30000) {
    await sleep(5000);
    const now = await frames();
    for (const [i, f] of now.entries()) {
      assert.ok(f.every((n, j) => n > last[i][j]), `page ${pages[i].name} stopped decoding while Redis was away`);
    }
    last = now;
  }
  for (const s of Object.values(servers)) assert.equal(await counterSum(s.url, 'meet_cluster_redis_up'), 0);
  await redis.resume();
  const back = performance.now();
  await until('every server registered again', async () => {
    for (const s of Object.values(servers)) {
      if (await counterSum(s.url, 'meet_cluster_redis_up') !== 1 || await counterSum(s.url, 'meet_cluster_nodes') !== 3) return false;
    }
    return true;
  }, 4000, 50);
  console.log(`Redis away 30 s: every server back in the registry ${Math.round(performance.now() - back)} ms after its return`);
  assert.ok(await allDecode(pages));
});
