// Swedish and English: the two catalogues hold the same strings with the
// same {placeholders}, every key the page uses is in both, and a browser
// gets the page in its language (sv-SE Swedish, en-GB English), with a
// switch that changes it at once and is remembered.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import en from '../static/lang-en.js';
import sv from '../static/lang-sv.js';
import { pickLanguage } from '../static/i18n.js';
import {
  cleanUp, joinPage, launchBrowser, openPage, startServer,
} from './harness.mjs';

const web = join(dirname(fileURLToPath(import.meta.url)), '..');
const placeholders = (s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

test('both catalogues have every string, with the same placeholders', () => {
  // English shows the server's own (English) error messages; Swedish
  // translates them by code.
  const keys = (c) => Object.keys(c).filter((k) => !k.startsWith('error.')).sort();
  assert.deepEqual(keys(sv), keys(en));
  for (const [key, text] of Object.entries(en)) {
    assert.ok(text.trim(), `en ${key} is empty`);
    assert.ok(sv[key].trim(), `sv ${key} is empty`);
    assert.deepEqual(placeholders(sv[key]), placeholders(text), `placeholders of ${key}`);
  }
  // Every error code Swedish translates is one the protocol has.
  const doc = readFileSync(join(web, '..', 'docs', 'signalling.md'), 'utf8');
  for (const key of Object.keys(sv).filter((k) => k.startsWith('error.'))) {
    assert.match(doc, new RegExp(`\`${key.slice(6)}\``), `${key} is no error code of docs/signalling.md`);
  }
});

test('every key the page uses is in both catalogues', () => {
  const used = new Set();
  const html = readFileSync(join(web, 'meeting.html'), 'utf8');
  for (const m of html.matchAll(/data-i18n(?:-label|-placeholder)?="([^"]+)"/g)) used.add(m[1]);
  const keyShaped = /['`]((?:page|language|prejoin|identity|meeting|controls|host|chat|left)\.[A-Za-z]+)['`]/g;
  for (const file of readdirSync(join(web, 'static')).filter((f) => f.endsWith('.js') && !f.startsWith('lang-'))) {
    for (const m of readFileSync(join(web, 'static', file), 'utf8').matchAll(keyShaped)) used.add(m[1]);
  }
  assert.ok(used.size > 60, `only ${used.size} keys found in use`);
  const missing = [...used].filter((k) => !(k in en) || !(k in sv));
  assert.deepEqual(missing, [], 'keys used but missing from a catalogue');
});

test('the language: a remembered choice, else the browser\'s first we have, else English', () => {
  assert.equal(pickLanguage(['sv-SE', 'en-US'], null), 'sv');
  assert.equal(pickLanguage(['de-DE', 'en-GB'], null), 'en');
  assert.equal(pickLanguage(['fi-FI'], null), 'en');
  assert.equal(pickLanguage(['sv-SE'], 'en'), 'en');
  assert.equal(pickLanguage([], 'xx'), 'en');
});

test('sv-SE gets Swedish, en-GB English, and the switch changes it at once', { timeout: 90000 }, async (t) => {
  const server = await startServer();
  const browser = await launchBrowser();
  t.after(() => cleanUp(() => browser.close(), () => server.stop()));

  const { page: english } = await openPage(browser, 'en-GB', { t, contextOptions: { locale: 'en-GB' } });
  await english.goto(`${server.url}/m/sprak`);
  await english.getByRole('button', { name: 'Join meeting' }).waitFor({ timeout: 10000 });
  assert.equal(await english.evaluate(() => document.documentElement.lang), 'en');

  const { page } = await openPage(browser, 'sv-SE', { t, contextOptions: { locale: 'sv-SE' } });
  await page.goto(`${server.url}/m/sprak`);
  await page.getByRole('button', { name: 'Gå med i mötet' }).waitFor({ timeout: 10000 });
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'sv');
  assert.equal(await page.locator('#prejoin-heading').textContent(), 'Gå med i sprak');
  assert.equal(await page.title(), 'sprak – Möte');
  assert.ok(await page.getByLabel('Ditt namn').isVisible());

  // The switch: English at once, kept across a reload.
  await page.getByRole('combobox', { name: 'Språk' }).selectOption('en');
  await page.getByRole('button', { name: 'Join meeting' }).waitFor({ timeout: 5000 });
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'en');
  await page.reload();
  await page.getByRole('button', { name: 'Join meeting' }).waitFor({ timeout: 10000 });

  // In a meeting in Swedish: the controls, and a switch redraws them.
  const p = await joinPage(browser, server.url, 'sprak', 'Sara', {}, { t, contextOptions: { locale: 'sv-SE' } });
  await p.page.getByRole('button', { name: 'Lämna' }).waitFor({ timeout: 5000 });
  assert.equal(await p.page.locator('#toggle-mic').textContent(), 'Stäng av mikrofonen');
  await p.page.getByRole('combobox', { name: 'Språk' }).selectOption('en');
  assert.equal(await p.page.locator('#toggle-mic').textContent(), 'Mute microphone');
  assert.equal(await p.page.getByRole('button', { name: 'Leave' }).count(), 1);
});
