// Staff behind firewalls that block meet's media path reach it through
// TURN: Debian's coturn, configured by ops/coturn/turnserver.conf itself
// (this test's addresses, ports and secret put in; no TLS, as there is no
// certificate here), with the short-lived credentials meet hands out in
// `joined`. Everything runs in this test's own network namespace
// (ops/netns.sh): coturn on 10.99.0.2, meet's media on 10.99.0.1.
//
// 1. Pages that may use only relayed candidates (iceTransportPolicy
//    'relay', as a strict client would) decode each other's video.
// 2. With every UDP datagram dropped except coturn's relayed leg to meet
//    (an nftables rule: a client whose firewall lets no UDP out), pages
//    still meet, over TURN on TCP.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  cleanUp, freePort, joinPage, launchBrowser, nftRule, receivedByName, sleep, startServer, until,
} from './harness.mjs';

const TURN_IP = '10.99.0.2';
const MEET_MEDIA_IP = '10.99.0.1';
// coturn's relayed side: below the kernel's ephemeral ports, so that the
// nftables rule can tell coturn's datagrams to meet from everyone else's.
const RELAY_PORTS = [20000, 20099];

/** The sample configuration with this test's values; fails on a key the sample lacks. */
function turnConfig(dir, port, secret) {
  const sample = readFileSync(new URL('../../ops/coturn/turnserver.conf', import.meta.url), 'utf8');
  const set = {
    'listening-ip': TURN_IP,
    'listening-port': String(port),
    'static-auth-secret': secret,
    'allowed-peer-ip': MEET_MEDIA_IP,
    'min-port': String(RELAY_PORTS[0]),
    'max-port': String(RELAY_PORTS[1]),
    realm: 'meet.test',
    'log-file': 'stdout',
  };
  const tls = new Set(['tls-listening-port', 'cert', 'pkey', 'no-tlsv1', 'no-tlsv1_1']);
  const seen = new Set();
  const lines = sample.split('\n').filter((l) => !tls.has(l.split('=')[0])).map((l) => {
    const key = l.split('=')[0];
    if (!(key in set)) return l;
    seen.add(key);
    return `${key}=${set[key]}`;
  });
  for (const key of Object.keys(set)) assert.ok(seen.has(key), `ops/coturn/turnserver.conf has no ${key}`);
  lines.push('no-tls', 'no-dtls', `relay-ip=${TURN_IP}`, `pidfile=${join(dir, 'turnserver.pid')}`,
    `userdb=${join(dir, 'turndb')}`);
  const path = join(dir, 'turnserver.conf');
  writeFileSync(path, lines.join('\n'));
  return path;
}

function tcpOpen(host, port) {
  return new Promise((resolve) => {
    const s = connect({ host, port }, () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

async function startCoturn(port, secret) {
  const dir = mkdtempSync(join(tmpdir(), 'meet-coturn-'));
  const child = spawn('turnserver', ['-c', turnConfig(dir, port, secret)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => child.once('close', resolve));
  await until('coturn listens', async () => {
    if (child.exitCode !== null) throw new Error(`coturn exited ${child.exitCode}:\n${log}`);
    return tcpOpen(TURN_IP, port);
  }, 15000);
  return {
    log: () => log,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Drops every UDP datagram but those of coturn's relayed side; returns what lets them through again. */
function blockUdp() {
  const relay = `${RELAY_PORTS[0]}-${RELAY_PORTS[1]}`;
  return nftRule('meetnoudp', 'output', 'udp', 'sport', '!=', relay, 'udp', 'dport', '!=', relay, 'drop');
}

let unblockUdp = () => {};

/** The local candidate of the subscriber connection's selected pair. */
function selectedLocalCandidate(p) {
  return p.page.evaluate(async () => {
    const stats = await window.meet.state.subscriber.getStats();
    let pairId = null;
    stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
    const pair = pairId && stats.get(pairId);
    const local = pair && stats.get(pair.localCandidateId);
    return local ? { type: local.candidateType, relayProtocol: local.relayProtocol || null } : null;
  });
}

async function decodeEachOther(a, b) {
  await until(`${a.name} and ${b.name} decode each other's video`, async () => {
    const [ga, gb] = await Promise.all([receivedByName(a), receivedByName(b)]);
    return ga[b.name]?.framesDecoded > 30 && gb[a.name]?.framesDecoded > 30;
  }, 30000);
}

let coturn;
let server;
let browser;
let turnPort;

before(async () => {
  const secret = randomBytes(32).toString('hex');
  turnPort = await freePort();
  coturn = await startCoturn(turnPort, secret);
  server = await startServer({
    MEET_MEDIA_IPS: `["${MEET_MEDIA_IP}"]`,
    MEET_TURN_URLS: JSON.stringify([
      `turn:${TURN_IP}:${turnPort}?transport=udp`,
      `turn:${TURN_IP}:${turnPort}?transport=tcp`,
    ]),
    MEET_TURN_SECRET: secret,
  });
  browser = await launchBrowser();
});

after(() => cleanUp(
  unblockUdp,
  () => browser?.close(),
  () => server?.stop(),
  () => coturn?.stop(),
));

test('pages that may only use relayed candidates meet through coturn', async (t) => {
  const relayOnly = () => {
    const Native = window.RTCPeerConnection;
    window.RTCPeerConnection = class extends Native {
      constructor(config = {}) { super({ ...config, iceTransportPolicy: 'relay' }); }
    };
  };
  const a = await joinPage(browser, server.url, 'relayed', 'Ann', {}, { initScript: relayOnly, t });
  const b = await joinPage(browser, server.url, 'relayed', 'Ben', {}, { initScript: relayOnly, t });
  const iceServers = await a.page.evaluate(() => window.meet.state.iceServers);
  assert.equal(iceServers.length, 1);
  assert.match(iceServers[0].username, /^\d+:[0-9a-f]+$/, 'an expiring username');
  await decodeEachOther(a, b);
  for (const p of [a, b]) assert.equal((await selectedLocalCandidate(p))?.type, 'relay', `${p.name} is relayed`);
});

/** Milliseconds from joining to the first decoded remote frame, per page. */
const firstFrames = (...pages) => Promise.all(pages.map((p) => p.page.evaluate(() => window.meet.firstFrameMs)));

test('with all UDP blocked but the relay, pages meet over TURN on TCP', async (t) => {
  // For comparison: the same on the open network (direct UDP).
  const x = await joinPage(browser, server.url, 'direct', 'Xan', {}, { t });
  const y = await joinPage(browser, server.url, 'direct', 'Yul', {}, { t });
  await decodeEachOther(x, y);
  const direct = await firstFrames(x, y);
  await Promise.all([x.context.close(), y.context.close()]);

  unblockUdp = blockUdp();
  t.after(unblockUdp);
  const a = await joinPage(browser, server.url, 'no-udp', 'Cid', {}, { t });
  const b = await joinPage(browser, server.url, 'no-udp', 'Dag', {}, { t });
  await decodeEachOther(a, b);
  const relayed = await firstFrames(a, b);
  console.log(`# measured: join to first decoded frame, direct UDP: ${direct.map(Math.round).join(' and ')} ms; `
    + `TURN over TCP with all UDP blocked: ${relayed.map(Math.round).join(' and ')} ms`);
  for (const p of [a, b]) {
    assert.deepEqual(await selectedLocalCandidate(p), { type: 'relay', relayProtocol: 'tcp' }, `${p.name}'s path`);
  }
  // Still flowing a moment later, not a lucky first burst.
  const before = (await receivedByName(a)).Dag.framesDecoded;
  await sleep(2000);
  assert.ok((await receivedByName(a)).Dag.framesDecoded > before + 20, 'video keeps coming');
});
