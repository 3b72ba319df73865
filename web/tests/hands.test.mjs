// Raised hands and reactions between real pages: a hand goes up with the
// button or Ctrl+Shift+K, shows on the others' tiles and first in their
// participant lists, in the order raised, is told to screen readers, stays
// up for a late joiner, and is lowered by a host; a reaction floats over
// the reacting person's tile on every page.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  cleanUp, joinPage, launchBrowser, startServer, until,
} from './harness.mjs';

const ROOM = 'town-hall';

const tile = (p, name) => p.page.locator('#grid .tile:not(.self)', { hasText: name });
const announced = (p) => p.page.locator('#announcer').textContent();
const listed = (p) => p.page.locator('#people-list > li').allTextContents();

test('hands go up and down and reactions reach every page', { timeout: 90000 }, async (t) => {
  const key = randomBytes(32).toString('hex');
  const server = await startServer({ MEET_ADMIN_KEY: key });
  const browser = await launchBrowser();
  t.after(() => cleanUp(() => browser.close(), () => server.stop()));
  const r = await fetch(`${server.url}/api/admin/meetings/${ROOM}/invites`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ role: 'host' }),
  });
  assert.equal(r.status, 201);
  const { invite } = await r.json();
  const hana = await joinPage(browser, server.url, ROOM, 'Hana', { invite }, { t });
  const ann = await joinPage(browser, server.url, ROOM, 'Ann', {}, { t });
  const bo = await joinPage(browser, server.url, ROOM, 'Bo', {}, { t });
  await tile(hana, 'Bo').waitFor({ timeout: 10000 });
  await hana.page.getByRole('button', { name: 'Participants' }).click();

  // Bo first, by keyboard; then Ann, by the button.
  await bo.page.keyboard.press('Control+Shift+K');
  await until('Hana to be told of Bo\'s hand', async () => (await announced(hana)) === 'Bo raised their hand', 5000, 50);
  const annHand = ann.page.getByRole('button', { name: 'Raise hand' });
  await annHand.click();
  await ann.page.getByRole('button', { name: 'Lower hand' }).waitFor({ timeout: 5000 });
  assert.equal(await ann.page.locator('#raise-hand').getAttribute('aria-pressed'), 'true');
  await tile(hana, 'Ann').getByText('Hand raised').waitFor({ timeout: 5000 });
  assert.equal(await announced(hana), 'Ann raised their hand');
  const list = await listed(hana);
  assert.match(list[1], /^Bo.*hand raised/, `raised hands first, in order: ${list}`);
  assert.match(list[2], /^Ann.*hand raised/, `${list}`);

  // A late joiner sees the hands that are up.
  const cy = await joinPage(browser, server.url, ROOM, 'Cy', {}, { t });
  await tile(cy, 'Ann').getByText('Hand raised').waitFor({ timeout: 5000 });
  assert.equal(await tile(cy, 'Hana').getByText('Hand raised').count(), 0);

  // Participants may not lower others' hands; the host may.
  assert.equal(await ann.page.getByRole('button', { name: 'Lower Bo\'s hand' }).count(), 0);
  await hana.page.getByRole('button', { name: 'Lower Ann\'s hand' }).click();
  await ann.page.getByRole('button', { name: 'Raise hand' }).waitFor({ timeout: 5000 });
  assert.equal(await announced(ann), 'Your hand is lowered');
  await until('Ann\'s hand to go from the other pages', async () => (
    await tile(bo, 'Ann').getByText('Hand raised').count() === 0
    && await tile(cy, 'Ann').getByText('Hand raised').count() === 0
  ), 5000, 50);
  assert.equal(await tile(cy, 'Bo').getByText('Hand raised').count(), 1, 'Bo\'s is still up');

  // A reaction, picked from the menu, on every page.
  await bo.page.getByRole('button', { name: 'Reactions' }).click();
  await bo.page.getByRole('button', { name: 'Applause' }).click();
  for (const p of [ann, hana, cy]) {
    await tile(p, 'Bo').locator('.reaction', { hasText: '👏' }).waitFor({ timeout: 5000 });
  }
  await bo.page.locator('#grid .tile.self .reaction', { hasText: '👏' }).waitFor({ timeout: 5000 });
  assert.equal(await announced(ann), 'Bo reacted: Applause');
  assert.equal(await bo.page.locator('#reactions').isHidden(), true, 'the menu closes');
  // It goes again after a moment.
  await tile(ann, 'Bo').locator('.reaction').waitFor({ state: 'detached', timeout: 8000 });
});
