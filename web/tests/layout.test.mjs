// The meeting's layout on a 4K screen, a 1920 px one and a 360 px phone,
// four people in, and on a 1280×800 laptop in Swedish, three people in:
// every tile 16:9 and on screen, our own camera small in a corner, no
// sideways scrolling, all controls reachable and none covered by anything
// (our own camera's tile included), with the participant list closed and
// open. We are a host, whose tiles and controls carry the most buttons.
// Twelve people on
// the phone: the tiles scroll, and a tile scrolled out of view asks for
// the low layer until it is scrolled back. Screenshots go to
// $TEST_ARTIFACTS (default: a folder under the system's temp dir), to be
// looked at; they are not committed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
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

/**
 * Every control in view that something else covers, even in part: at the
 * centre of each visible button, select, input or link, and 4 px in from
 * each of its corners, elementFromPoint must find the control itself or
 * something inside it. Controls scrolled out of view are not covered, only
 * away: on the phone the page scrolls under its sticky controls, whose
 * top is then where the view of everything else ends.
 */
function coveredControls(page) {
  return page.evaluate(() => {
    const name = (el) => {
      if (!el) return 'nothing';
      const label = (el.getAttribute('aria-label') || el.textContent || '').trim().slice(0, 40);
      return `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.className && typeof el.className === 'string' ? `.${el.className.split(' ')[0]}` : ''}${label ? ` "${label}"` : ''}`;
    };
    const controls = document.getElementById('controls');
    const sticky = getComputedStyle(controls).position === 'sticky';
    const out = [];
    for (const el of document.querySelectorAll('button, select, input, textarea, a[href]')) {
      if (!el.checkVisibility({ visibilityProperty: true })) continue;
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      const bottom = sticky && !controls.contains(el) ? controls.getBoundingClientRect().top : innerHeight;
      const x = r.x + r.width / 2;
      const y = r.y + r.height / 2;
      if (x < 0 || y < 0 || x >= innerWidth || y >= bottom) continue;
      const dx = Math.min(4, r.width / 4);
      const dy = Math.min(4, r.height / 4);
      const points = [[x, y], [r.left + dx, r.top + dy], [r.right - dx, r.top + dy],
        [r.left + dx, r.bottom - dy], [r.right - dx, r.bottom - dy]];
      for (const [px, py] of points) {
        const hit = document.elementFromPoint(px, py);
        if (hit && el.contains(hit)) continue;
        out.push(`${name(el)} under ${name(hit?.closest('button, .tile, nav, aside, header') || hit)} at ${Math.round(px)},${Math.round(py)}`);
        break;
      }
    }
    return out;
  });
}

const SCREENS = [
  ['3840', { width: 3840, height: 2160 }, 'en-GB', ['Ada', 'Bo', 'Cy']],
  ['1920', { width: 1920, height: 1080 }, 'en-GB', ['Ada', 'Bo', 'Cy']],
  ['1280', { width: 1280, height: 800 }, 'sv-SE', ['Ada', 'Bo']],
  ['360', { width: 360, height: 740 }, 'en-GB', ['Ada', 'Bo', 'Cy']],
];

for (const [label, viewport, locale, others] of SCREENS) {
  test(`${others.length + 1} people on a ${label} px wide screen (${locale}): 16:9 tiles on screen, a small self-view, no sideways scroll, no control covered`, { timeout: 120000 }, async (t) => {
    const key = randomBytes(32).toString('hex');
    const server = await startServer({ MEET_ADMIN_KEY: key });
    const browser = await launchBrowser();
    t.after(() => cleanUp(() => browser.close(), () => server.stop()));
    const room = `layout-${label}`;
    const pages = [];
    for (const name of others) pages.push(await joinPage(browser, server.url, room, name, {}, { t }));
    const r = await fetch(`${server.url}/api/admin/meetings/${room}/invites`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ role: 'host' }),
    });
    const { invite } = await r.json();
    const me = await joinPage(browser, server.url, room, 'Dee', { invite }, { t, contextOptions: { viewport, locale } });
    await until('Dee to decode everyone', async () => {
      const got = await receivedByName(me);
      return others.every((n) => got[n]?.framesDecoded > 10);
    }, 30000);
    assert.equal(await me.page.evaluate(() => window.meet.role().role), 'host');
    mkdirSync(artifacts, { recursive: true });
    const shot = join(artifacts, `meeting-${label}px.png`);
    await me.page.screenshot({ path: shot });
    console.log(`# screenshot: ${shot}`);

    assert.deepEqual(await coveredControls(me.page), [], 'controls covered');
    const m = await measure(me.page);
    assert.ok(m.scrollWidth <= m.width, `sideways scroll: ${m.scrollWidth} > ${m.width}`);
    assert.equal(m.others.length, others.length);
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

    // The participant list open beside (or, on the phone, below) the tiles.
    await me.page.locator('#toggle-people').click();
    await me.page.locator('#people-list > li').nth(others.length).waitFor({ timeout: 5000 });
    await me.page.screenshot({ path: join(artifacts, `meeting-${label}px-people.png`) });
    assert.deepEqual(await coveredControls(me.page), [], 'controls covered with the participant list open');
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
