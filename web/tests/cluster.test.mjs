// Several servers sharing meetings through a real redis-server, with
// browsers: pages entering one meeting through different servers end up on
// the one that holds it and see each other; a new meeting goes to another
// server; behind the nginx sample (one public name), the meeting's server
// is killed mid-call, or hangs, and every page is back, on another, within
// seconds; Redis goes away for 30 s and the meeting carries on.
// Runs inside ops/netns.sh.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cleanUp, counterSum, freePort, joinPage, launchBrowser, receivedByName, sleep, until,
} from './harness.mjs';
import {
  IDS, allDecode, backInTheMeeting, holders, killTheOwner, meetingBehindNginx, startCluster, startRedis,
} from './cluster.mjs';

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

test('behind nginx, the meeting\'s server is killed and every page is back on another within 10 s', {
  timeout: 180000,
}, async (t) => {
  const { servers, pages, owner, nginx } = await meetingBehindNginx(t);
  const { next, seated, decoding } = await killTheOwner(servers, pages, owner);
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
