// ICE restart: a page's address changes mid-call (a new address on its
// interface, the old one removed, as when a laptop moves to another
// network). The page restarts ICE on both connections and its video
// resumes with no rejoin: the participant ids stay, and the server sees
// no new join. Within 5 s: the aim is 3 s, but Chromium itself notices
// the new address only about 2 s after the change (its own check of the
// network); reconnecting and the next keyframe take 0.6–1.2 s after that
// (2.6–3.4 s in all over 11 runs).
//
// The test's network namespace (ops/netns.sh) has meet0 10.99.0.1 and meet1
// 10.99.0.2. The server's media candidate is 10.99.0.1, and UDP from
// 10.99.0.1 to itself is dropped, so the pages' only media path starts at
// meet1's address; replacing that address (10.99.1.2 added, 10.99.0.2
// removed) takes the path away, and only the new address reaches the
// server. Both pages run in one browser, so both move.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  cleanUp, joinPage, launchBrowser, nftRule, receivedByName, sleep, startServer, until,
} from './harness.mjs';

const ip = (...args) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

/** The local address of each connection's selected candidate pair. */
const localAddresses = (p) => p.page.evaluate(async () => {
  const out = {};
  for (const name of ['publisher', 'subscriber']) {
    const stats = await window.meet.state[name].getStats();
    stats.forEach((s) => {
      if (s.type !== 'transport' || !s.selectedCandidatePairId) return;
      out[name] = stats.get(stats.get(s.selectedCandidatePairId).localCandidateId).address;
    });
  }
  return out;
});

/** What a failure's timeline needs from a page: each connection's local
 * address, and the video it receives (packets, frames, keyframes, its
 * keyframe requests and NACKs) and the keyframe requests its camera gets. */
const pathReport = (p) => p.page.evaluate(async () => {
  const out = { video: { packets: 0, frames: 0, keyframes: 0, plis: 0, nacks: 0 }, camPlis: 0 };
  for (const name of ['publisher', 'subscriber']) {
    const stats = await window.meet.state[name].getStats();
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) {
        out[name] = stats.get(stats.get(s.selectedCandidatePairId).localCandidateId).address;
      } else if (s.type === 'inbound-rtp' && s.kind === 'video') {
        out.video.packets += s.packetsReceived || 0;
        out.video.frames += s.framesDecoded || 0;
        out.video.keyframes += s.keyFramesDecoded || 0;
        out.video.plis += s.pliCount || 0;
        out.video.nacks += s.nackCount || 0;
      } else if (s.type === 'outbound-rtp' && s.kind === 'video') {
        out.camPlis += s.pliCount || 0;
      }
    });
  }
  return out;
});

/** Adds to `timeline` what changed in `p`'s report since `last`. */
function noteChanges(timeline, at, p, last, now) {
  const said = (what) => timeline.push(`${at} ms [${p.name}] ${what}`);
  if (now.publisher !== last.publisher || now.subscriber !== last.subscriber) {
    said(`path: publisher ${now.publisher}, subscriber ${now.subscriber}`);
  }
  const v = now.video;
  const w = last.video;
  if (v.packets > w.packets && !last.flowing) said(`video packets arrive (${v.packets})`);
  if (v.frames > w.frames && !last.decoding) said(`video frames decoded (${v.frames})`);
  if (v.keyframes > w.keyframes) said(`keyframe decoded (${v.keyframes})`);
  if (v.plis > w.plis) said(`asked for a keyframe (PLIs ${v.plis})`);
  if (v.nacks > w.nacks && !last.nacking) said(`NACKs sent (${v.nacks})`);
  if (now.camPlis > last.camPlis) said(`camera asked for a keyframe (PLIs ${now.camPlis})`);
  now.flowing = v.packets > w.packets;
  now.decoding = v.frames > w.frames;
  now.nacking = last.nacking || v.nacks > w.nacks;
}

/** Frames each page has decoded from the other. */
async function frames(pages) {
  const [a, b] = pages;
  return [(await receivedByName(a))[b.name]?.framesDecoded ?? 0, (await receivedByName(b))[a.name]?.framesDecoded ?? 0];
}

test('a page whose address changes mid-call restarts ICE: video resumes within 5 s, no rejoin', { timeout: 90000 }, async (t) => {
  const server = await startServer({ MEET_MEDIA_IPS: '["10.99.0.1"]' });
  const unblock = nftRule('meetviameet1', 'output', 'ip', 'saddr', '10.99.0.1', 'ip', 'daddr', '10.99.0.1', 'meta', 'l4proto', 'udp', 'drop');
  const browser = await launchBrowser();
  t.after(() => cleanUp(
    () => browser.close(),
    () => server.stop(),
    unblock,
    () => ip('addr', 'replace', '10.99.0.2/24', 'dev', 'meet1'),
    () => ip('addr', 'del', '10.99.1.2/24', 'dev', 'meet1'),
  ));
  const a = await joinPage(browser, server.url, 'moving', 'Ada', {}, { t });
  const b = await joinPage(browser, server.url, 'moving', 'Bea', {}, { t });
  const pages = [a, b];
  await until('both pages to decode each other', async () => (await frames(pages)).every((n) => n > 10), 15000);
  for (const p of pages) {
    assert.deepEqual(await localAddresses(p), { publisher: '10.99.0.2', subscriber: '10.99.0.2' }, `${p.name}'s path`);
  }
  const joins = (server.log().match(/ joined/g) || []).length;
  assert.equal(joins, 2, 'the server logs each join once');

  // What each page said from here on, timed from the change: a failure
  // shows where the time went.
  let moved = null;
  const timeline = [];
  for (const p of pages) {
    p.page.on('console', (m) => timeline.push(`${moved ? Date.now() - moved : '-'} ms [${p.name}] ${m.text()}`));
  }
  // The address changes.
  ip('addr', 'add', '10.99.1.2/24', 'dev', 'meet1');
  ip('addr', 'del', '10.99.0.2/24', 'dev', 'meet1');
  moved = Date.now();
  // What was on its way is decoded at once; then the old path is gone.
  await sleep(200);
  const before = await frames(pages);
  const reports = await Promise.all(pages.map(pathReport));
  await until('video to resume both ways', async () => {
    const now = await Promise.all(pages.map(pathReport));
    pages.forEach((p, i) => noteChanges(timeline, Date.now() - moved, p, reports[i], now[i]));
    reports.splice(0, 2, ...now);
    return (await frames(pages)).every((n, i) => n > before[i] + 3);
  }, 10000, 50);
  const took = Date.now() - moved;
  console.log(`# measured: address changed → video decoded again both ways after ${took} ms`);

  for (const p of pages) {
    assert.equal(await p.page.evaluate(() => window.meet.participantId), p.id, `${p.name} rejoined`);
    assert.equal(await p.page.evaluate(() => window.meet.state.reconnects), 0, `${p.name} rejoined`);
    assert.ok(await p.page.evaluate(() => window.meet.state.iceRestarts) >= 1, `${p.name} did not restart ICE`);
    assert.deepEqual(await localAddresses(p), { publisher: '10.99.1.2', subscriber: '10.99.1.2' }, `${p.name}'s new path`);
  }
  assert.equal((server.log().match(/ joined/g) || []).length, joins, 'the server saw a new join');
  assert.ok(took < 5000, `video resumed ${took} ms after the address changed:\n${timeline.join('\n')}`);
});
