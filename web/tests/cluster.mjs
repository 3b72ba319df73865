// What the browser tests of several servers share: a real redis-server,
// three servers sharing meetings through it (alone, or behind the nginx
// sample with pages in a meeting), and what the tests ask of them.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import {
  cleanUp, counterSum, freePort, joinPage, launchBrowser, receivedByName, startServer, until, assertRealRoot,
} from './harness.mjs';
import { HOST, NEEDS_ROOT, startNginx } from './nginx.mjs';

export const IDS = ['a', 'b', 'c'];

/** Debian's redis-server on a free loopback port, keeping nothing on disk. */
export async function startRedis() {
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
export async function startCluster(redis, env, ports = {}) {
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
export async function holders(servers) {
  const held = {};
  for (const [id, s] of Object.entries(servers)) {
    // A stopped server would never answer.
    if (s.killed || s.stopped) continue;
    held[id] = await counterSum(s.url, 'meet_cluster_leases');
  }
  return held;
}

/** Whether every page decodes every other's video. */
export async function allDecode(pages) {
  for (const p of pages) {
    const got = await receivedByName(p);
    for (const other of pages) {
      if (other !== p && !(got[other.name]?.framesDecoded > 0)) return false;
    }
  }
  return true;
}

/** Three servers behind the nginx sample (one public name; a client sent
 * on to a server goes by its node_url's path, /node/<id>/ws), each with
 * `env(id)` beside, and three pages in a meeting through it, decoding
 * each other. */
export async function meetingBehindNginx(t, env = () => ({})) {
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
  setup.servers = await startCluster(redis, (id) => ({ MEET_NODE_URL: `/node/${id}/ws`, ...env(id) }));
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
export async function backInTheMeeting(pages, since, withinMs) {
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

/** Kills the meeting's server (`owner`) and waits until every page is
 * back in the meeting on another within 10 s, decoding the others;
 * returns that server and when (ms from the kill) the pages were seated
 * and decoding. */
export async function killTheOwner(servers, pages, owner) {
  let killed;
  const back = await backInTheMeeting(pages, () => killed, 10000);
  process.kill(servers[owner].pid, 'SIGKILL');
  servers[owner].killed = true;
  killed = performance.now();
  const { seated, decoding } = await back('every page to be back in the meeting and decoding the others');
  const after = await holders(servers);
  const next = Object.keys(after).find((id) => after[id] === 1);
  assert.ok(next && next !== owner, JSON.stringify(after));
  return {
    next, seated, decoding, killed,
  };
}
