// Staff behind firewalls that block meet's media path reach it through
// TURN: Debian's coturn, configured by ops/coturn/turnserver.conf itself
// (this test's addresses, ports and secret put in, and a self-signed
// certificate for its TLS port, 443 as in the sample), with the
// short-lived credentials meet hands out in `joined`. Everything runs in
// this test's own network namespace (ops/netns.sh): coturn on 10.99.0.2,
// meet's media on 10.99.0.1.
//
// 1. Pages that may use only relayed candidates (iceTransportPolicy
//    'relay', as a strict client would) decode each other's video.
// 2. With every UDP datagram dropped except coturn's relayed leg to meet
//    (an nftables rule: a client whose firewall lets no UDP out), pages
//    still meet, over TURN on TCP.
// 3. The same, with TURN over TLS on port 443 the only way offered: what
//    gets through a firewall that lets only HTTPS out.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  cleanUp, freePort, joinPage, launchBrowser, nftRule, receivedByName, sleep, startServer, until,
} from './harness.mjs';
import {
  MEET_MEDIA_IP, RELAY_PORTS, TURN_IP, startCoturn,
} from './coturn.mjs';

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
let secret;
let certDir;

before(async () => {
  secret = randomBytes(32).toString('hex');
  turnPort = await freePort();
  certDir = mkdtempSync(join(tmpdir(), 'meet-turn-tls-'));
  const cert = join(certDir, 'cert.pem');
  const key = join(certDir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
    '-subj', '/CN=turn test', '-addext', `subjectAltName=IP:${TURN_IP}`,
    '-keyout', key, '-out', cert], { stdio: 'ignore' });
  coturn = await startCoturn(turnPort, secret, { port: 443, cert, key });
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
  () => certDir && rmSync(certDir, { recursive: true, force: true }),
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

test('with all UDP blocked and only TURN over TLS on 443 offered, pages meet through it', async (t) => {
  const tlsOnly = await startServer({
    MEET_MEDIA_IPS: `["${MEET_MEDIA_IP}"]`,
    MEET_TURN_URLS: JSON.stringify([`turns:${TURN_IP}:443?transport=tcp`]),
    MEET_TURN_SECRET: secret,
  });
  t.after(() => tlsOnly.stop());
  // Chromium checks a TURN server's certificate as a web server's; this
  // one is self-signed.
  const trusting = await launchBrowser({ args: ['--ignore-certificate-errors'] });
  t.after(() => trusting.close());
  unblockUdp = blockUdp();
  t.after(unblockUdp);
  const a = await joinPage(trusting, tlsOnly.url, 'tls-443', 'Eva', {}, { t });
  const b = await joinPage(trusting, tlsOnly.url, 'tls-443', 'Fei', {}, { t });
  await decodeEachOther(a, b);
  const times = await firstFrames(a, b);
  console.log(`# measured: join to first decoded frame, TURN over TLS on 443 with all UDP blocked: ${times.map(Math.round).join(' and ')} ms`);
  for (const p of [a, b]) {
    assert.deepEqual(await selectedLocalCandidate(p), { type: 'relay', relayProtocol: 'tls' }, `${p.name}'s path`);
  }
});
