// The meeting's layout on a 4K screen, a 1920 px one and a 360 px phone,
// four people in: every tile 16:9 and on screen, our own camera small in a
// corner, no sideways scrolling, all controls reachable. Twelve people on
// the phone: the tiles scroll, and a tile scrolled out of view asks for
// the low layer until it is scrolled back. Screenshots go to
// $TEST_ARTIFACTS (default: a folder under the system's temp dir), to be
// looked at; they are not committed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cleanUp, joinPage, launchBrowser, receivedByName, startServer, until,
} from './harness.mjs';

const artifacts = process.env.TEST_ARTIFACTS || join(tmpdir(), 'meet-artifacts');

/** What the page looks like, measured. */
function measure(page) {
  return page.evaluate(() => {
    const box = (el) => {
      const r = el.getBoundingClientRect();
      return { x: r.x, y: r.y, w: r.width, h: r.height };
    };
    const tiles = [...document.querySelectorAll('#grid .tile')];
    return {
      width: innerWidth,
      height: innerHeight,
      scrollWidth: document.documentElement.scrollWidth,
      others: tiles.filter((t) => !t.classList.contains('self')).map(box),
      self: box(tiles.find((t) => t.classList.contains('self'))),
      controls: [...document.querySelectorAll('#controls button:not([hidden])')].map(box),
    };
  });
}

const SCREENS = [
  ['3840', { width: 3840, height: 2160 }],
  ['1920', { width: 1920, height: 1080 }],
  ['360', { width: 360, height: 740 }],
];

for (const [label, viewport] of SCREENS) {
  test(`four people on a ${label} px wide screen: 16:9 tiles on screen, a small self-view, no sideways scroll`, { timeout: 120000 }, async (t) => {
    const server = await startServer();
    const browser = await launchBrowser();
    t.after(() => cleanUp(() => browser.close(), () => server.stop()));
    const room = `layout-${label}`;
    const pages = [];
    for (const name of ['Ada', 'Bo', 'Cy']) pages.push(await joinPage(browser, server.url, room, name, {}, { t }));
    const me = await joinPage(browser, server.url, room, 'Dee', {}, { t, contextOptions: { viewport } });
    await until('Dee to decode everyone', async () => {
      const got = await receivedByName(me);
      return ['Ada', 'Bo', 'Cy'].every((n) => got[n]?.framesDecoded > 10);
    }, 30000);
    mkdirSync(artifacts, { recursive: true });
    const shot = join(artifacts, `meeting-${label}px.png`);
    await me.page.screenshot({ path: shot });
    console.log(`# screenshot: ${shot}`);

    const m = await measure(me.page);
    assert.ok(m.scrollWidth <= m.width, `sideways scroll: ${m.scrollWidth} > ${m.width}`);
    assert.equal(m.others.length, 3);
    for (const tile of m.others) {
      assert.ok(Math.abs(tile.w / tile.h - 16 / 9) < 0.05, `a tile of ${tile.w}×${tile.h}`);
      assert.ok(tile.x >= 0 && tile.x + tile.w <= m.width + 0.5, `a tile off screen sideways: ${JSON.stringify(tile)}`);
      assert.ok(tile.w >= 150, `a tile of ${tile.w} px`);
    }
    // On the wide screen everything fits at once; on the phone the first
    // tile does, and the rest scroll into view.
    const visible = label === '360' ? m.others.slice(0, 1) : m.others;
    for (const tile of visible) assert.ok(tile.y >= 0 && tile.y + tile.h <= m.height, `a tile below the fold: ${JSON.stringify(tile)}`);
    assert.ok(m.self.w < m.others[0].w, 'the self-view is not smaller than the others');
    for (const b of m.controls) {
      assert.ok(b.x >= 0 && b.x + b.w <= m.width + 0.5 && b.y >= 0 && b.y + b.h <= m.height + 0.5,
        `a control off screen: ${JSON.stringify(b)}`);
    }
    console.log(`# measured: ${label} px: tiles ${m.others.map((x) => `${Math.round(x.w)}×${Math.round(x.h)}`).join(', ')}; self-view ${Math.round(m.self.w)}×${Math.round(m.self.h)}; ${m.controls.length} controls`);
  });
}

test('twelve people on a phone: the tiles scroll, and one out of view gets the low layer', { timeout: 120000 }, async (t) => {
  const server = await startServer();
  const browser = await launchBrowser();
  t.after(() => cleanUp(() => browser.close(), () => server.stop()));
  const room = 'layout-many';
  const viewport = { width: 360, height: 740 };
  const me = await joinPage(browser, server.url, room, 'Dee', {}, { t, contextOptions: { viewport } });
  // Ten more without camera or microphone (a first visit with join=now
  // starts none), then Ada with hers, last in the grid.
  for (let i = 1; i <= 10; i += 1) {
    await joinPage(browser, server.url, room, `Guest ${i}`, {}, { t, firstVisit: true });
  }
  const ada = await joinPage(browser, server.url, room, 'Ada', {}, { t });
  await until('Dee to decode Ada', async () => (await receivedByName(me)).Ada?.framesDecoded > 10, 30000);
  const adaQuality = () => me.page.evaluate(() => {
    const [, p] = [...window.meet.state.participants].find(([, q]) => q.name === 'Ada');
    const video = p.stream.getVideoTracks()[0];
    return window.meet.state.sentQuality.get(video.id) ?? 'high';
  });
  const m = await measure(me.page);
  assert.equal(m.others.length, 11);
  assert.ok(m.scrollWidth <= m.width, `sideways scroll: ${m.scrollWidth} > ${m.width}`);
  // On a phone the page scrolls (the controls stay at the bottom); on a
  // wide screen the grid would.
  const grid = await me.page.evaluate(() => ({ scroll: document.documentElement.scrollHeight, client: innerHeight }));
  assert.ok(grid.scroll > grid.client, `the tiles scroll: ${JSON.stringify(grid)}`);
  for (const tile of m.others) assert.ok(tile.w >= 150, `a tile of ${tile.w} px`);
  await until('Ada\'s tile, out of view, to ask for the low layer', async () => (await adaQuality()) === 'low', 5000, 100);
  const adaTile = me.page.locator('#grid .tile:not(.self)', { hasText: 'Ada' });
  await adaTile.scrollIntoViewIfNeeded();
  await until('Ada\'s tile, in view, to ask for more', async () => (await adaQuality()) !== 'low', 5000, 100);
  mkdirSync(artifacts, { recursive: true });
  const shot = join(artifacts, 'meeting-12-people-360px.png');
  await me.page.screenshot({ path: shot });
  console.log(`# screenshot: ${shot}`);
  console.log(`# measured: 12 people at 360 px: ${m.others.length} tiles of ${Math.round(m.others[0].w)}×${Math.round(m.others[0].h)}, page ${grid.scroll} px tall in ${grid.client} px; Ada's tile asked ${await adaQuality()} once in view`);
  // Ada's page counts all twelve too.
  assert.equal(await ada.page.locator('#people-count').textContent(), '12');
});
