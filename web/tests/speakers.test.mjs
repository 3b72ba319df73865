// Who speaks, decided on the server from the audio level in each packet:
// pages whose fake microphone plays a speech-like recording (two of them,
// which join muted) and one whose microphone is silent. When one unmutes,
// every page names it the active speaker within a second and frames its
// tile; when the other takes over, the pages follow within a second; the
// speaker layout shows the active speaker large and follows too; in
// silence nobody is framed and the last speaker stays large.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cleanUp, joinPage, launchBrowser, receivedByName, sleep, startServer, until,
} from './harness.mjs';

const ROOM = 'speakers';

/** A 16-bit mono WAV of `samples` (floats in −1..1) at `rate`. */
function wav(samples, rate) {
  const data = Buffer.alloc(samples.length * 2);
  samples.forEach((s, i) => data.writeInt16LE(Math.round(Math.max(-1, Math.min(1, s)) * 32767), i * 2));
  const head = Buffer.alloc(44);
  head.write('RIFF', 0);
  head.writeUInt32LE(36 + data.length, 4);
  head.write('WAVEfmt ', 8);
  head.writeUInt32LE(16, 16);
  head.writeUInt16LE(1, 20); // PCM
  head.writeUInt16LE(1, 22); // mono
  head.writeUInt32LE(rate, 24);
  head.writeUInt32LE(rate * 2, 28);
  head.writeUInt16LE(2, 32);
  head.writeUInt16LE(16, 34);
  head.write('data', 36);
  head.writeUInt32LE(data.length, 40);
  return Buffer.concat([head, data]);
}

/** Something like a voice talking without a break for breath: a
 * glottal buzz at a wandering pitch with a few formants, in syllables of
 * 150–300 ms with short gaps between them, about −12 dBFS at its loudest. */
function speech(rate, seconds) {
  const out = new Float32Array(rate * seconds);
  let seed = 7;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  let phase = 0;
  let start = 0;
  let end = 0;
  let next = 0;
  for (let i = 0; i < out.length; i += 1) {
    if (i >= next) {
      start = i;
      end = i + Math.floor(rate * (0.15 + 0.15 * random()));
      next = end + Math.floor(rate * (0.03 + 0.04 * random()));
    }
    if (i >= end) continue;
    const pitch = 120 + 30 * Math.sin(2 * Math.PI * 0.7 * (i / rate));
    phase += pitch / rate;
    let v = 0;
    for (const [harmonic, gain] of [[1, 1], [2, 0.6], [3, 0.5], [5, 0.3], [8, 0.2], [12, 0.1]]) {
      v += gain * Math.sin(2 * Math.PI * harmonic * phase);
    }
    out[i] = 0.1 * v * Math.sqrt(Math.sin((Math.PI * (i - start)) / (end - start)));
  }
  return out;
}

/** Joins with the microphone muted (its track disabled from the start). */
function mutedAtFirst() {
  const get = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    const stream = await get(constraints);
    stream.getAudioTracks().forEach((track) => { track.enabled = false; });
    return stream;
  };
}

const speakers = (p) => p.page.evaluate(() => window.meet.speakers());

/** Clicks `p`'s microphone button; when, by the page's clock (the same
 * clock as the other pages'), at once, not after Playwright's checks. */
const toggleMic = (p) => p.page.evaluate(() => {
  document.getElementById('toggle-mic').click();
  return Date.now();
});

/** When (by the page's clock, the same as ours) each page named `id` the
 * active speaker and framed it as speaking. */
function whenNamed(pages, id) {
  return Promise.all(pages.map((p) => p.page.waitForFunction((pid) => {
    const s = window.meet.speakers();
    return s.active === pid && s.speaking.includes(pid) && Date.now();
  }, id, { polling: 20, timeout: 5000 }).then((h) => h.jsonValue())));
}

test('every page names the one who speaks, within a second, and the speaker layout follows', { timeout: 120000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meet-speakers-'));
  const rate = 48000;
  writeFileSync(join(dir, 'speech.wav'), wav(speech(rate, 6), rate));
  writeFileSync(join(dir, 'silence.wav'), wav(new Float32Array(rate), rate));
  const server = await startServer();
  const talkers = await launchBrowser({ args: [`--use-file-for-fake-audio-capture=${join(dir, 'speech.wav')}`] });
  const quiet = await launchBrowser({ args: [`--use-file-for-fake-audio-capture=${join(dir, 'silence.wav')}`] });
  t.after(() => cleanUp(() => talkers.close(), () => quiet.close(), () => server.stop(), () => rmSync(dir, { recursive: true, force: true })));

  const ada = await joinPage(talkers, server.url, ROOM, 'Ada', {}, { t, initScript: mutedAtFirst });
  const bo = await joinPage(talkers, server.url, ROOM, 'Bo', {}, { t, initScript: mutedAtFirst });
  const cy = await joinPage(quiet, server.url, ROOM, 'Cy', {}, { t });
  const pages = [ada, bo, cy];
  await until('everyone to decode everyone', async () => {
    for (const p of pages) {
      const got = await receivedByName(p);
      const others = pages.filter((q) => q !== p).map((q) => q.name);
      if (!others.every((n) => got[n]?.framesDecoded > 5)) return false;
    }
    return true;
  }, 30000);
  // Two muted and one silent: nobody speaks.
  await sleep(1500);
  for (const p of pages) assert.deepEqual(await speakers(p), { active: null, speaking: [] }, p.name);

  // Ada unmutes: everyone names her within a second.
  let t0 = await toggleMic(ada);
  let named = await whenNamed(pages, ada.id);
  console.log(`# Ada named after ${named.map((at) => at - t0).join(', ')} ms (Ada's, Bo's and Cy's page)`);
  for (const at of named) assert.ok(at - t0 <= 1000, `named after ${at - t0} ms`);
  await until('Ada\'s tile framed on Cy\'s page', () => cy.page.locator('#grid .tile:not(.self)', { hasText: 'Ada' })
    .evaluate((el) => el.classList.contains('speaking')), 2000, 50);
  assert.ok(await ada.page.locator('#grid .tile.self').evaluate((el) => el.classList.contains('speaking')));

  // Cy switches to the speaker layout: Ada large, Bo small.
  const layout = cy.page.getByRole('button', { name: 'Speaker view' });
  await layout.click();
  assert.equal(await layout.getAttribute('aria-pressed'), 'true');
  const mainName = () => cy.page.locator('#grid .tile.main .name').getAttribute('data-name', { timeout: 1000 }).catch(() => null);
  await until('Ada large on Cy\'s page', async () => (await mainName()) === 'Ada', 2000, 50);
  const sizes = await cy.page.evaluate(() => Object.fromEntries([...document.querySelectorAll('#grid .tile:not(.self)')]
    .map((el) => [el.querySelector('.name').dataset.name, el.getBoundingClientRect()])));
  assert.ok(sizes.Ada.width > 2 * sizes.Bo.width, `Ada's tile ${sizes.Ada.width} px wide, Bo's ${sizes.Bo.width}`);
  for (const [name, r] of Object.entries(sizes)) {
    assert.ok(Math.abs(r.width / r.height - 16 / 9) < 0.05, `${name}'s tile ${r.width}×${r.height}`);
    assert.ok(r.bottom <= await cy.page.evaluate(() => innerHeight), `${name}'s tile below the fold`);
  }

  // Ada stops, Bo starts: everyone follows within a second.
  await toggleMic(ada);
  t0 = await toggleMic(bo);
  named = await whenNamed(pages, bo.id);
  console.log(`# Bo named after ${named.map((at) => at - t0).join(', ')} ms`);
  for (const at of named) assert.ok(at - t0 <= 1000, `named after ${at - t0} ms`);
  await until('Bo large on Cy\'s page', async () => (await mainName()) === 'Bo', 2000, 50);

  // Silence: nobody framed, Bo still the active speaker (still large).
  await toggleMic(bo);
  await until('nobody to speak', async () => {
    const all = await Promise.all(pages.map(speakers));
    return all.every((s) => s.speaking.length === 0 && s.active === bo.id);
  }, 3000, 50);
  assert.equal(await mainName(), 'Bo');
  assert.equal(await cy.page.locator('#grid .tile.speaking').count(), 0);

  // Back to the grid: every tile the same size again.
  await layout.click();
  assert.equal(await layout.getAttribute('aria-pressed'), 'false');
  assert.equal(await cy.page.locator('#grid .tile.main').count(), 0);
});
