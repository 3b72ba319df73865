// One client tries to take a server down while a 3-person meeting goes on
// there: more WebSockets than one address may open, a chat flood, an ICE
// candidate flood, garbage, and sockets that fill a meeting's seats and do
// nothing else. Each attempt gets the limit's own code, and the meeting
// keeps decoding video throughout.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cleanUp, joinPage, launchBrowser, openPage, receivedByName, sleep, startServer, until,
} from './harness.mjs';

const PER_ADDRESS = 40;
const MAX_PARTICIPANTS = 4;
const IDLE_SEAT_SECS = 8;

/** Frames each page has decoded from each other page, summed. */
async function decoded(pages) {
  let sum = 0;
  for (const p of pages) {
    const got = await receivedByName(p);
    for (const q of pages) if (q !== p) sum += got[q.name]?.framesDecoded ?? 0;
  }
  return sum;
}

test('an attacking client gets the limits\' codes while a meeting goes on', { timeout: 120000 }, async (t) => {
  const server = await startServer({
    MEET_MAX_CONNECTIONS_PER_ADDRESS: String(PER_ADDRESS),
    MEET_MAX_CHAT_MESSAGES_PER_MINUTE: '20',
    MEET_MAX_PARTICIPANTS: String(MAX_PARTICIPANTS),
    MEET_IDLE_SEAT_SECS: String(IDLE_SEAT_SECS),
  });
  const browser = await launchBrowser();
  t.after(() => cleanUp(() => browser.close(), () => server.stop()));
  const pages = [];
  for (const name of ['Ann', 'Ben', 'Cid']) pages.push(await joinPage(browser, server.url, 'steady', name, {}, { t }));
  await until('the meeting decodes', async () => (await decoded(pages)) > 6 * 30, 30000);
  const before = await decoded(pages);

  const attacker = await openPage(browser, 'Attacker', { t });
  await attacker.page.goto(`${server.url}/m/elsewhere`);
  const report = await attacker.page.evaluate(async ({ n }) => {
    const url = `${location.origin.replace(/^http/, 'ws')}/ws`;
    const open = (ws) => new Promise((resolve) => {
      ws.onopen = () => resolve(true);
      ws.onerror = () => resolve(false);
    });
    // 1. Connections: the server refuses those past the bound (429).
    const sockets = [];
    for (let i = 0; i < n; i += 1) sockets.push(new WebSocket(url));
    const opened = await Promise.all(sockets.map(open));
    const accepted = opened.filter(Boolean).length;
    sockets.forEach((ws, i) => { if (opened[i] && i > 0) ws.close(); });
    // 2. On the first one: join, then floods.
    const ws = sockets[opened.indexOf(true)];
    const codes = {};
    const joined = new Promise((resolve) => {
      ws.onmessage = (e) => {
        const m = JSON.parse(e.data);
        if (m.type === 'joined') resolve();
        if (m.type === 'error') codes[m.code] = (codes[m.code] || 0) + 1;
      };
    });
    ws.send(JSON.stringify({ type: 'join', v: 1, room: 'elsewhere', name: 'Mallory' }));
    await joined;
    const pause = () => new Promise((r) => setTimeout(r, 600));
    const candidate = {
      type: 'candidate', target: 'subscriber',
      candidate: { candidate: 'candidate:1 1 udp 1 192.0.2.1 9 typ host', sdpMid: '0' },
    };
    // Spread out: 20 messages per 0.6 s stays under the per-second bound,
    // which would end the session and hide the other limits.
    for (let i = 0; i < 80; i += 1) {
      ws.send(JSON.stringify(candidate));
      ws.send(JSON.stringify({ type: 'chat', text: `spam ${i}` }));
      if (i % 10 === 9) await pause();
    }
    ws.send('{"type": 42');
    ws.send('x'.repeat(70 * 1024));
    await new Promise((r) => setTimeout(r, 1000));
    return { accepted, refused: n - accepted, codes, open: ws.readyState === WebSocket.OPEN };
  }, { n: 60 });
  console.log(`# measured: attack: ${report.accepted} WebSockets accepted, ${report.refused} refused; `
    + `errors by code: ${JSON.stringify(report.codes)}; the attacker's socket open: ${report.open}`);

  // The meeting's three pages hold three of the address's connections.
  assert.equal(report.accepted, PER_ADDRESS - 3);
  assert.ok(report.codes.too_many_candidates >= 80 - 64, JSON.stringify(report.codes));
  assert.ok(report.codes.too_many_chat_messages >= 80 - 20, JSON.stringify(report.codes));
  assert.ok(report.codes.bad_message >= 1, JSON.stringify(report.codes));
  assert.ok(report.codes.too_large >= 1, JSON.stringify(report.codes));

  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  for (const limit of ['connections_per_address', 'candidates', 'chat_messages']) {
    assert.match(metrics, new RegExp(`meet_limits_hit_total\\{limit="${limit}"\\} [1-9]`), limit);
  }
  // Idle seats: sockets that join a meeting and do nothing else fill it,
  // and give way to a real participant once they have been idle too long.
  // The refused page is opened first: opening a browser context can take
  // seconds on a loaded machine, and the refusal must come while the seats
  // are still young.
  const full = await openPage(browser, 'Early', { t });
  await attacker.page.evaluate(async ({ seats }) => {
    const url = `${location.origin.replace(/^http/, 'ws')}/ws`;
    window.idle = { codes: [] };
    await Promise.all(Array.from({ length: seats }, (_, i) => new Promise((resolve) => {
      const ws = new WebSocket(url);
      ws.onopen = () => ws.send(JSON.stringify({ type: 'join', v: 1, room: 'seats', name: `Idle ${i}` }));
      ws.onmessage = (e) => {
        const m = JSON.parse(e.data);
        if (m.type === 'joined') resolve();
        if (m.type === 'error') window.idle.codes.push(m.code);
      };
    })));
  }, { seats: MAX_PARTICIPANTS });
  const filled = Date.now();
  await full.page.goto(`${server.url}/m/seats?name=Early&join=now`);
  await full.page.locator('#left').waitFor({ state: 'visible', timeout: 10000 });
  assert.match(await full.page.locator('#left-reason').textContent(), /full/);
  assert.ok(Date.now() - filled < IDLE_SEAT_SECS * 1000, 'refused while the seats were not idle yet');
  await sleep(IDLE_SEAT_SECS * 1000 - (Date.now() - filled) + 200);
  const seated = Date.now();
  await joinPage(browser, server.url, 'seats', 'Real', {}, { t });
  console.log(`# measured: idle seats: a full meeting of ${MAX_PARTICIPANTS} idle sockets refused a page, `
    + `then seated one ${Date.now() - seated} ms after it opened, ${IDLE_SEAT_SECS} s on`);
  await until('an idle socket is told', async () => (
    await attacker.page.evaluate(() => window.idle.codes)).includes('timeout'), 5000);

  // And the meeting went on: every page kept decoding both others.
  await until('the meeting still decodes', async () => (await decoded(pages)) > before + 6 * 40, 20000);
});
