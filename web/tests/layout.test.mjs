// The meeting's layout on a 1920 px screen and on a 360 px phone, four
// people in: every tile 16:9 and on screen, our own camera small in a
// corner, no sideways scrolling, all controls reachable. Screenshots go to
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

for (const [label, viewport] of [['1920', { width: 1920, height: 1080 }], ['360', { width: 360, height: 740 }]]) {
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
    const visible = label === '1920' ? m.others : m.others.slice(0, 1);
    for (const tile of visible) assert.ok(tile.y >= 0 && tile.y + tile.h <= m.height, `a tile below the fold: ${JSON.stringify(tile)}`);
    assert.ok(m.self.w < m.others[0].w, 'the self-view is not smaller than the others');
    for (const b of m.controls) {
      assert.ok(b.x >= 0 && b.x + b.w <= m.width + 0.5 && b.y >= 0 && b.y + b.h <= m.height + 0.5,
        `a control off screen: ${JSON.stringify(b)}`);
    }
    console.log(`# measured: ${label} px: tiles ${m.others.map((x) => `${Math.round(x.w)}×${Math.round(x.h)}`).join(', ')}; self-view ${Math.round(m.self.w)}×${Math.round(m.self.h)}; ${m.controls.length} controls`);
  });
}
