// Swedish and English: the two catalogues hold the same strings with the
// same {placeholders}, every key the page uses is in both, and a browser
// gets the page in its language (sv-SE Swedish, en-GB English), with a
// switch that changes it at once and is remembered; and once a page has
// loaded, nothing on it is left in the other language.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import en from '../static/lang-en.js';
import sv from '../static/lang-sv.js';
import { pickLanguage } from '../static/i18n.js';
import {
  cleanUp, joinPage, launchBrowser, openPage, startServer, until,
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

/**
 * What `page` shows (visible text, aria-label, placeholder, title) in the
 * other language: the words of catalogue `other` that catalogue `mine`
 * says differently. Whole texts are compared with every string and
 * template; longer strings are also looked for inside texts (a tile's
 * "Ada (guest)"). Elements marked with a lang of their own (the language
 * switch's options) are left out.
 */
function foreignText(page, mine, other) {
  const own = new Set(Object.values(mine).map((s) => s.trim()));
  const strings = [...new Set(Object.entries(other)
    .filter(([k, s]) => !k.startsWith('error.') && s.trim() !== (mine[k] ?? '').trim() && !own.has(s.trim()))
    .map(([, s]) => s.trim()))];
  return page.evaluate((strings) => {
    const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const patterns = strings.map((s) => {
      const literal = s.replace(/\{\w+\}/g, '');
      if (literal === s) return { s, exact: (x) => x === s, inside: s.length >= 5 ? (x) => x.includes(s) : () => false };
      // A template: its words must be there, the placeholders anything.
      if ((literal.match(/\p{L}/gu) || []).length < 3) return null;
      const re = new RegExp(`^${s.split(/\{\w+\}/).map(escape).join('.+?')}$`, 'u');
      return { s, exact: (x) => re.test(x), inside: () => false };
    }).filter(Boolean);
    const lang = document.documentElement.lang;
    const shown = (el) => el && el.checkVisibility() && el.closest('[lang]')?.lang === lang;
    const where = (el) => `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.className && typeof el.className === 'string' ? `.${el.className.split(' ')[0]}` : ''}`;
    const found = [];
    const look = (text, el, what) => {
      const x = text.trim();
      if (!x) return;
      const hit = patterns.find((p) => p.exact(x) || p.inside(x));
      if (hit) found.push(`${what} of ${where(el)}: ${JSON.stringify(x)} (${JSON.stringify(hit.s)})`);
    };
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (shown(n.parentElement)) look(n.data, n.parentElement, 'text');
    }
    for (const el of document.body.querySelectorAll('[aria-label], [placeholder], [title]')) {
      if (!shown(el)) continue;
      for (const attr of ['aria-label', 'placeholder', 'title']) {
        if (el.hasAttribute(attr)) look(el.getAttribute(attr), el, attr);
      }
    }
    look(document.title, document.documentElement, 'the title');
    return found;
  }, strings);
}

test('nothing on screen is left in the other language after load, in either language', { timeout: 120000 }, async (t) => {
  const key = randomBytes(32).toString('hex');
  const server = await startServer({ MEET_ADMIN_KEY: key });
  const browser = await launchBrowser();
  t.after(() => cleanUp(() => browser.close(), () => server.stop()));
  const catalogue = { 'en-GB': [en, sv], 'sv-SE': [sv, en] };
  for (const locale of ['en-GB', 'sv-SE']) {
    const [mine, other] = catalogue[locale];
    const contextOptions = { locale };
    const room = `words-${locale}`;
    const { page } = await openPage(browser, `prejoin ${locale}`, { t, contextOptions, firstVisit: true });
    await page.goto(`${server.url}/m/${room}`);
    await page.getByRole('button', { name: mine['prejoin.join'] }).waitFor({ timeout: 10000 });
    await page.waitForFunction(() => !document.getElementById('join-button').disabled, null, { timeout: 10000 });
    assert.deepEqual(await foreignText(page, mine, other), [], `the pre-join screen (${locale})`);

    // A host's meeting with two others: the most controls a page shows.
    const r = await fetch(`${server.url}/api/admin/meetings/${room}/invites`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ role: 'host' }),
    });
    const { invite } = await r.json();
    const host = await joinPage(browser, server.url, room, 'Hana', { invite }, { t, contextOptions });
    const guest = await joinPage(browser, server.url, room, 'Gus', {}, { t, contextOptions });
    await joinPage(browser, server.url, room, 'Ines', {}, { t, contextOptions });
    for (const p of [host, guest]) {
      await until(`${p.name} to see three`, async () => (await p.page.locator('#people-count').textContent()) === '3', 10000);
      await p.page.locator('#toggle-people').click();
      await p.page.locator('#people-list > li').nth(2).waitFor({ timeout: 5000 });
      assert.deepEqual(await foreignText(p.page, mine, other), [], `${p.name}'s meeting (${locale})`);
    }
    await host.page.locator('#show-reactions').click();
    assert.deepEqual(await foreignText(host.page, mine, other), [], `the reactions (${locale})`);
  }
});
