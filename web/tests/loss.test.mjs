// A meeting on a network that loses 5% of UDP datagrams must look almost
// like one on a clean network: every NACK answered, over RTX, so that no
// resend is taken for a replay. The loss is an nftables rule in this test's
// own network namespace (ops/netns.sh); every datagram between the pages
// and the server passes its input hook once, so media and RTCP are lost
// both ways, signalling (TCP) never.
//
// The cameras send one 1280x720 layer (?simulcast=0): large frames, whose
// keyframes run to many dozen packets, are where repair used to fail (a
// resend more than 64 packets late was refused as a replay: 9 s of freezes
// per stream-minute).
//
// The clean network must reach 20 fps, so that a slow clean run cannot
// excuse a slow lossy one: the cameras capture 24, as the page asks
// (Chromium's fake camera captures 20 unless told). And under loss, resends
// over RTX must flow both ways: from each publisher to the server (the
// server's NACKs, answered: the publisher's retransmittedPacketsSent) and
// from the server to each subscriber (answered from the server's own
// buffer: every received stream's retransmittedPacketsReceived, and the
// server's meet_rtp_retransmissions_total).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  joinPage, launchBrowser, nftRule, sleep, startServer, until,
} from './harness.mjs';

const LOSS_PERCENT = 5;
const MEASURE_MS = 20000;
const MIN_CLEAN_FPS = 20;

/** Loses `percent` % of the UDP datagrams arriving anywhere in the namespace. */
function loseUdp(percent) {
  return nftRule('meetloss', 'input', 'meta', 'l4proto', 'udp',
    'numgen', 'random', 'mod', '100', '<', String(percent), 'drop');
}

/** Each remote camera's counters on `p`'s subscriber connection. */
function videoStats(p) {
  return p.page.evaluate(async () => {
    const pc = window.meet.state.subscriber;
    const out = {};
    if (!pc) return out;
    (await pc.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
      out[s.trackIdentifier] = {
        frames: s.framesDecoded || 0,
        freezeS: s.totalFreezesDuration || 0,
        resent: s.retransmittedPacketsReceived || 0,
        nacks: s.nackCount || 0,
        plis: s.pliCount || 0,
      };
    });
    return out;
  });
}

/** `p`'s camera as its publisher connection sends it: packets sent again
 * over RTX (for the server's NACKs) and NACKs received. */
function sentStats(p) {
  return p.page.evaluate(async () => {
    const pc = window.meet.state.publisher;
    const out = { resent: 0, nacks: 0 };
    if (!pc) return out;
    (await pc.getStats()).forEach((s) => {
      if (s.type !== 'outbound-rtp' || s.kind !== 'video') return;
      out.resent += s.retransmittedPacketsSent || 0;
      out.nacks += s.nackCount || 0;
    });
    return out;
  });
}

/** The server's meet_rtp_retransmissions_total, summed over its workers. */
async function serverResends(server) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return [...text.matchAll(/^meet_rtp_retransmissions_total(?:\{[^}]*\})? (\S+)$/gm)]
    .reduce((sum, m) => sum + Number(m[1]), 0);
}

/** Frame rate, freezes and resends over `ms` on every page, per remote
 * stream, and the resends of each page's camera and of the server. */
async function measure(server, pages, ms) {
  const snapshot = async () => ({
    received: await Promise.all(pages.map(videoStats)),
    sent: await Promise.all(pages.map(sentStats)),
    server: await serverResends(server),
  });
  const before = await snapshot();
  const t0 = Date.now();
  await sleep(ms);
  const after = await snapshot();
  const seconds = (Date.now() - t0) / 1000;
  const sum = { frames: 0, freezeS: 0, resent: 0, nacks: 0, plis: 0 };
  let streams = 0;
  const resentPerStream = [];
  after.received.forEach((tracks, i) => {
    for (const [id, a] of Object.entries(tracks)) {
      const b = before.received[i][id];
      if (!b) continue;
      streams += 1;
      for (const k of Object.keys(sum)) sum[k] += a[k] - b[k];
      resentPerStream.push(a.resent - b.resent);
    }
  });
  const publishersResent = after.sent.map((a, i) => a.resent - before.sent[i].resent);
  return {
    streams,
    fps: sum.frames / streams / seconds,
    freezeSPerStreamMinute: sum.freezeS / (streams * seconds / 60),
    resent: sum.resent,
    resentPerStream,
    nacks: sum.nacks,
    plis: sum.plis,
    publishersResent,
    publisherNacks: after.sent.reduce((n, a, i) => n + a.nacks - before.sent[i].nacks, 0),
    serverResent: after.server - before.server,
  };
}

const show = (m) => `${m.fps.toFixed(1)} fps, ${m.freezeSPerStreamMinute.toFixed(2)} s of freezes per stream-minute, `
  + `${m.nacks} NACKs and ${m.plis} PLIs sent; resent over RTX: server→subscribers ${m.resent} packets received `
  + `(per stream ${m.resentPerStream.join(', ')}; the server counts ${m.serverResent} sent), `
  + `publishers→server ${m.publishersResent.join(', ')} packets sent for ${m.publisherNacks} NACKs (${m.streams} streams)`;

test(`a meeting on a network losing ${LOSS_PERCENT}% of UDP keeps its frame rate`, async (t) => {
  const server = await startServer();
  const browser = await launchBrowser({ fps: 24 });
  let stopLosing = () => {};
  t.after(async () => {
    stopLosing();
    await browser.close();
    await server.stop();
  });
  const pages = [];
  for (const name of ['Ann', 'Ben', 'Cid']) pages.push(await joinPage(browser, server.url, 'lossy', name, { simulcast: '0' }));
  await until('every page decodes both others', async () => {
    const all = await Promise.all(pages.map(videoStats));
    return all.every((tracks) => {
      const v = Object.values(tracks);
      return v.length === 2 && v.every((s) => s.frames > 60);
    });
  }, 30000);

  const clean = await measure(server, pages, MEASURE_MS);
  console.log(`# measured: clean network: ${show(clean)}`);
  stopLosing = loseUdp(LOSS_PERCENT);
  const lossy = await measure(server, pages, MEASURE_MS);
  stopLosing();
  console.log(`# measured: ${LOSS_PERCENT}% UDP loss: ${show(lossy)}; ${(lossy.fps / clean.fps).toFixed(2)} of the clean frame rate`);

  assert.equal(clean.streams, 6, 'every page measured both others');
  assert.ok(clean.fps >= MIN_CLEAN_FPS, `clean frame rate ${clean.fps.toFixed(1)} under ${MIN_CLEAN_FPS}`);
  assert.equal(lossy.streams, 6, 'every page measured both others');
  assert.ok(lossy.nacks > 0, 'the loss was felt (no NACKs at all)');
  // Resends over RTX, both ways, on every stream.
  assert.ok(lossy.publishersResent.every((n) => n > 0), `a publisher resent nothing: ${lossy.publishersResent}`);
  assert.ok(lossy.resentPerStream.every((n) => n > 0), `a subscriber got no resends: ${lossy.resentPerStream}`);
  assert.ok(lossy.serverResent > 0, 'the server counted no resends');
  assert.ok(lossy.fps >= 0.9 * clean.fps, `frame rate ${lossy.fps.toFixed(1)} under 0.9 of the clean ${clean.fps.toFixed(1)}`);
  assert.ok(lossy.freezeSPerStreamMinute < 3, `${lossy.freezeSPerStreamMinute.toFixed(2)} s of freezes per stream-minute`);
});
