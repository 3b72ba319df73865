// Switching devices in the meeting, without rejoining: the other side
// keeps decoding, and what it receives is the new device's. Chromium's
// fake cameras differ in their pictures: the first is green of saturation
// 139–153 (the mean over the frame of max−min of R, G, B, as measured with
// this Chromium), the third 127–129 (another pixel format), so the picture
// Bea decodes tells which camera Ada sends. (The second, a 16-bit depth
// camera, is grey, but its frames are not encoded once sent.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cleanUp, joinPage, launchBrowser, receivedByName, sleep, startServer, until,
} from './harness.mjs';

/** How colourful (mean max−min of R, G, B, 0–255) the picture of `name`'s
 * tile is on `p`'s page: the highest of three looks 100 ms apart (the
 * first camera's picture moves). */
async function colourOf(p, name) {
  const looks = [];
  for (let i = 0; i < 3; i += 1) {
    if (i) await sleep(100);
    looks.push(await colourNow(p, name));
  }
  return Math.max(...looks);
}

function colourNow(p, name) {
  return p.page.evaluate((who) => {
    const tile = [...document.querySelectorAll('#grid .tile:not(.screen)')]
      .find((el) => el.querySelector('.name').dataset.name === who);
    const video = tile.querySelector('video');
    const canvas = document.createElement('canvas');
    [canvas.width, canvas.height] = [160, 90];
    const g = canvas.getContext('2d');
    g.drawImage(video, 0, 0, 160, 90);
    const px = g.getImageData(0, 0, 160, 90).data;
    let sum = 0;
    for (let i = 0; i < px.length; i += 4) {
      sum += Math.max(px[i], px[i + 1], px[i + 2]) - Math.min(px[i], px[i + 1], px[i + 2]);
    }
    return sum / (px.length / 4);
  }, name);
}

test('camera, microphone and speaker switched mid-call: the other side receives the new ones', { timeout: 90000 }, async (t) => {
  const server = await startServer();
  const browser = await launchBrowser({ cameras: 3 });
  t.after(() => cleanUp(() => browser.close(), () => server.stop()));
  const ada = await joinPage(browser, server.url, 'switch', 'Ada', {}, { t });
  const bea = await joinPage(browser, server.url, 'switch', 'Bea', {}, { t });
  await until('Bea to decode Ada', async () => (await receivedByName(bea)).Ada?.framesDecoded > 10, 15000);
  const colourBefore = await colourOf(bea, 'Ada');
  assert.ok(colourBefore > 136, `Ada's first camera decodes in colour (${colourBefore})`);

  // The devices dialog, from the controls.
  await ada.page.getByRole('button', { name: 'Devices' }).click();
  const dialog = ada.page.getByRole('dialog', { name: 'Camera, microphone and speaker' });
  await dialog.waitFor();
  const cameras = await dialog.getByLabel('Camera').locator('option').allTextContents();
  assert.deepEqual(cameras, ['fake_device_0', 'fake_device_1', 'fake_device_2']);
  const framesBefore = (await receivedByName(bea)).Ada.framesDecoded;
  await dialog.getByLabel('Camera').selectOption({ label: 'fake_device_2' });
  let colour;
  await until('Bea to decode Ada\'s third camera, a darker green', async () => (colour = await colourOf(bea, 'Ada')) < 134, 10000, 100)
    .catch((e) => { throw new Error(`${e.message}: colour ${colour}`); });
  console.log(`# measured: Ada's camera as Bea decodes it, colour ${colourBefore.toFixed(1)} before the switch, ${colour.toFixed(1)} after`);
  const got = await receivedByName(bea);
  assert.ok(got.Ada.framesDecoded > framesBefore, 'the same track keeps decoding');
  assert.equal(await ada.page.evaluate(() => window.meet.state.localStream.getVideoTracks()[0].label), 'fake_device_2');
  assert.equal(await ada.page.evaluate(() => window.meet.participantId), ada.id, 'no rejoin');
  // Ada's own picture shows the new camera too.
  assert.equal(await ada.page.evaluate(() => document.querySelector('.tile video.local').srcObject.getVideoTracks()[0].label), 'fake_device_2');

  // The microphone: a muted one stays muted on the new device.
  await ada.page.keyboard.press('Escape');
  await ada.page.locator('#toggle-mic').click();
  await ada.page.getByRole('button', { name: 'Devices' }).click();
  await dialog.getByLabel('Microphone').selectOption({ label: 'Fake Audio Input 2' });
  await until('Ada to send the second microphone', () => ada.page.evaluate(() => {
    const sent = window.meet.state.published.find((p) => p.source === 'microphone');
    return sent.transceiver.sender.track?.label === 'Fake Audio Input 2' && !sent.track.enabled;
  }), 5000);
  await ada.page.keyboard.press('Escape');
  await ada.page.locator('#toggle-mic').click();
  const audioBefore = (await receivedByName(bea)).Ada.audioPackets;
  await until('Bea to receive Ada\'s new microphone', async () => (await receivedByName(bea)).Ada.audioPackets > audioBefore + 50, 5000);

  // Bea's speaker: every tile plays through the one she picked.
  await bea.page.getByRole('button', { name: 'Devices' }).click();
  const beaDialog = bea.page.getByRole('dialog', { name: 'Camera, microphone and speaker' });
  await beaDialog.getByLabel('Speaker').selectOption({ label: 'Fake Audio Output 2' });
  const speaker = await bea.page.evaluate(async () => (await navigator.mediaDevices.enumerateDevices())
    .find((d) => d.label === 'Fake Audio Output 2').deviceId);
  await until('Bea\'s tiles to play through the second speaker', () => bea.page.evaluate((id) => [...document.querySelectorAll('#grid video.remote')]
    .every((v) => v.sinkId === id), speaker), 5000);
  // A tile that comes later plays there too.
  const cy = await joinPage(browser, server.url, 'switch', 'Cy', {}, { t });
  await until('Bea to decode Cy', async () => (await receivedByName(bea)).Cy?.framesDecoded > 0, 15000);
  assert.ok(await bea.page.evaluate((id) => [...document.querySelectorAll('#grid video.remote')].every((v) => v.sinkId === id), speaker));
  // Cy's own speaker is untouched by Bea's choice.
  assert.equal(await cy.page.evaluate(() => document.querySelector('#grid video.remote')?.sinkId), '');
});
