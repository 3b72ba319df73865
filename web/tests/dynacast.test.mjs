// Dynacast: a publisher's browser encodes only the simulcast layers
// someone receives. Ben is Ann's one viewer; when his tile of her gets
// small, her browser stops sending her upper layers within 5 s (her
// `outbound-rtp` for rid `f` sends no more bytes), while Ben still decodes
// her low layer; when his tile gets large again, her top layer sends bytes
// again within a second and Ben gets it. (Her layers come in three
// temporal layers each, L1T3, which the server reads.)

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  cleanUp, counterSum, joinPage, launchBrowser, receivedByName, sleep, startServer, until,
} from './harness.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(() => cleanUp(() => browser?.close(), () => server?.stop()));

/** The server's count of publishers told to change their layers. */
const updates = () => counterSum(server.url, 'meet_dynacast_updates_total');

test('dynacast: a layer nobody receives stops, and comes back within a second when wanted', async (t) => {
  const room = 'dynacast';
  const ann = await joinPage(browser, server.url, room, 'Ann', {}, { t });
  const ben = await joinPage(browser, server.url, room, 'Ben', {}, { t });
  await ben.page.setViewportSize({ width: 1600, height: 900 });

  /** Ann's camera layers: rid -> { bytes (sent so far), width, active,
   * mode (scalability mode) }. */
  const annLayers = () => ann.page.evaluate(async () => {
    const sender = window.meet.state.published.find((p) => p.source === 'camera').transceiver.sender;
    const out = {};
    for (const e of sender.getParameters().encodings) out[e.rid] = { active: e.active, bytes: 0, width: 0 };
    (await window.meet.state.publisher.getStats()).forEach((s) => {
      if (s.type === 'outbound-rtp' && s.rid && out[s.rid]) {
        out[s.rid].bytes = s.bytesSent;
        out[s.rid].width = s.frameWidth ?? 0;
        out[s.rid].mode = s.scalabilityMode;
      }
    });
    return out;
  });
  const shownWidth = () => ben.page.evaluate((id) => document
    .querySelector(`[data-participant-id="${id}"]:not([data-source]) video`)?.videoWidth ?? 0, ann.id);

  // Her top layer flows once her browser's bandwidth estimate allows it
  // (it starts low and ramps up; see the simulcast test).
  const joined = Date.now();
  await until('Ann to send her top layer', async () => (await annLayers()).f?.width === 1280, 60000, 250);
  await until('Ben to get it', async () => await shownWidth() === 1280, 20000, 100);
  console.log(`# measured: Ann sent her top layer ${Date.now() - joined} ms after joining`);
  // Each layer in three temporal layers, as Chromium sends VP8 simulcast:
  // what the server's allocator steps through before it drops a layer.
  for (const [rid, layer] of Object.entries(await annLayers())) assert.equal(layer.mode, 'L1T3', rid);
  const updatesBefore = await updates();

  // Ben's tile of Ann gets small: he asks for her low layer, and nobody
  // wants her upper ones.
  let started = Date.now();
  await ben.page.setViewportSize({ width: 800, height: 300 });
  let last = await annLayers();
  let lastGrowth = started;
  // Watched for 7 s: her top layer's bytes must stop growing within 5 s
  // and stay still.
  while (Date.now() - started < 7000) {
    await sleep(200);
    const now = await annLayers();
    if (now.f.bytes > last.f.bytes) lastGrowth = Date.now();
    last = now;
  }
  const stoppedAfter = lastGrowth - started;
  console.log(`# measured: Ann's top layer sent its last bytes ${stoppedAfter} ms after Ben's tile got small`);
  assert.ok(stoppedAfter <= 5000, `Ann's top layer still sent ${stoppedAfter} ms after nobody wanted it`);
  assert.deepEqual(
    Object.fromEntries(Object.entries(last).map(([rid, l]) => [rid, l.active])),
    { q: true, h: false, f: false },
  );
  // Ben still sees her, on the low layer.
  assert.equal(await shownWidth(), 320);
  const decoded = (await receivedByName(ben)).Ann.framesDecoded;
  await until('Ben to decode more of Ann', async () => (await receivedByName(ben)).Ann.framesDecoded >= decoded + 10, 10000, 100);

  // His tile gets large again: her top layer sends again within a second.
  const stillBytes = last.f.bytes;
  started = Date.now();
  await ben.page.setViewportSize({ width: 1600, height: 900 });
  await until('Ann to send her top layer again', async () => (await annLayers()).f.bytes > stillBytes, 5000, 25);
  const backAfter = Date.now() - started;
  console.log(`# measured: Ann's top layer sent again ${backAfter} ms after Ben's tile got large`);
  assert.ok(backAfter <= 1000, `Ann's top layer came back after ${backAfter} ms`);
  await until('Ben to get her top layer again', async () => await shownWidth() === 1280, 10000, 100);
  console.log(`# measured: Ben showed her top layer ${Date.now() - started} ms after his tile got large`);
  assert.ok(await updates() >= updatesBefore + 2, 'the server counted both updates');
});
