// Accessibility (WCAG 2.1 A and AA), as axe-core (npm) checks it: no
// violation at all, of any impact, on the pre-join screen, in a meeting
// with the chat open (as a host, whose controls are the most), and for a
// guest waiting in the lobby; each in English and in Swedish. And the main
// controls work from the keyboard alone, with Teams' shortcuts and a list
// of them; joins and leaves are announced, the participant list follows
// them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import en from '../static/lang-en.js';
import sv from '../static/lang-sv.js';
import {
  cleanUp, joinPage, launchBrowser, openPage, startServer, until,
} from './harness.mjs';

const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
// axe is injected into the page, which its own CSP would refuse.
const contextOptions = { bypassCSP: true };
const catalogues = { 'en-GB': en, 'sv-SE': sv };

/** The WCAG 2.1 A/AA violations on the page now, whatever their impact. */
async function violations(page, what) {
  await page.addScriptTag({ path: axePath });
  const result = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
  }));
  console.log(`# measured: axe on ${what}: ${result.passes.length} rules passed, `
    + `${result.violations.length} violated`
    + `${result.violations.map((v) => `; ${v.id} (${v.impact}, ${v.nodes.length})`).join('')}`);
  return result.violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

for (const locale of ['en-GB', 'sv-SE']) {
  const say = (key, params = {}) => catalogues[locale][key].replace(/\{(\w+)\}/g, (_, k) => params[k]);
  test(`axe finds nothing on the pre-join screen, in a meeting with chat, in the lobby (${locale})`, { timeout: 120000 }, async (t) => {
    const key = randomBytes(32).toString('hex');
    const server = await startServer({ MEET_ANONYMOUS_JOIN: 'false', MEET_ADMIN_KEY: key });
    const browser = await launchBrowser();
    t.after(() => cleanUp(() => browser.close(), () => server.stop()));
    const r = await fetch(`${server.url}/api/admin/meetings/a11y/invites`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ role: 'host' }),
    });
    const { invite } = await r.json();
    const options = { t, contextOptions: { ...contextOptions, locale } };

    const { page } = await openPage(browser, `prejoin ${locale}`, options);
    await page.goto(`${server.url}/m/a11y`);
    await page.getByRole('button', { name: say('prejoin.join') }).waitFor({ timeout: 10000 });
    assert.deepEqual(await violations(page, `the pre-join screen (${locale})`), []);

    const host = await joinPage(browser, server.url, 'a11y', 'Hana', { invite }, options);
    // A guest knocks: the host's lobby list shows, and the guest waits.
    const { page: guest } = await openPage(browser, 'guest', options);
    await guest.goto(`${server.url}/m/a11y?name=Gus&join=now`);
    await guest.getByText(say('meeting.waitingToBeLetIn').replace(/…$/, '')).waitFor({ timeout: 10000 });
    assert.deepEqual(await violations(guest, `a guest waiting in the lobby (${locale})`), []);
    const admit = host.page.getByRole('button', { name: say('host.admitLabel', { name: 'Gus' }) });
    await admit.waitFor({ timeout: 10000 });
    // This test server has no chat: the panel says so, open.
    await host.page.evaluate(() => { document.getElementById('chat').hidden = false; });
    assert.deepEqual(await violations(host.page, `a host's meeting with the lobby and chat open (${locale})`), []);
    // Gus let in: his tile with the host's buttons on it.
    await admit.click();
    await host.page.getByRole('button', { name: say('host.banLabel', { name: 'Gus' }) }).waitFor({ timeout: 10000 });
    await host.page.locator('#toggle-people').click();
    await host.page.locator('#people-list', { hasText: 'Gus' }).waitFor({ timeout: 5000 });
    assert.deepEqual(await violations(host.page, `a host's meeting with a guest's tile (${locale})`), []);
    assert.deepEqual(await violations(guest, `the guest's meeting (${locale})`), []);

    // The last host is asked before leaving, and may stay.
    let asked = null;
    host.page.once('dialog', (d) => { asked = d.message(); d.dismiss(); });
    await host.page.locator('#leave').click();
    await until('the host to be asked', () => asked !== null, 5000);
    assert.equal(asked, say('meeting.lastHostLeave'));
    assert.ok(await host.page.evaluate(() => !!window.meet.participantId), 'the host left after all');
  });
}

test('the main controls work from the keyboard alone; joins and leaves are announced', { timeout: 90000 }, async (t) => {
  const server = await startServer();
  const browser = await launchBrowser();
  t.after(() => cleanUp(() => browser.close(), () => server.stop()));
  const { page } = await openPage(browser, 'keyboard', { t, firstVisit: true });
  await page.goto(`${server.url}/m/keys`);
  await page.locator('#join-button').waitFor({ timeout: 10000 });

  // Tab to a control by its accessible name, as a keyboard user would.
  const tabTo = async (name) => {
    for (let i = 0; i < 40; i += 1) {
      await page.keyboard.press('Tab');
      const focused = await page.evaluate(() => {
        const el = document.activeElement;
        return el && (el.getAttribute('aria-label') || el.textContent || '').trim();
      });
      if (focused === name) return;
    }
    throw new Error(`no control named ${name} within 40 tabs`);
  };
  await tabTo('Turn on camera and microphone');
  await page.keyboard.press('Enter');
  await until('the preview to start', () => page.evaluate(() => window.meet.state.localStream.getTracks().length === 2), 10000);
  await page.locator('#name').focus();
  await page.keyboard.type('Kim');
  await tabTo('Join meeting');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => window.meet.participantId, null, { timeout: 15000 });
  // The focus is visible: the browser's ring, not hidden by our styles.
  await tabTo('Mute microphone');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, 'none', 'no visible focus');
  await page.keyboard.press('Enter');
  assert.equal(await page.locator('#toggle-mic').getAttribute('aria-pressed'), 'true');
  await tabTo('Stop camera');
  await page.keyboard.press('Space');
  assert.equal(await page.locator('#toggle-cam').getAttribute('aria-pressed'), 'true');

  // Shortcuts, as in Teams, and "?" for their list.
  await page.keyboard.press('Control+Shift+M');
  assert.equal(await page.locator('#toggle-mic').getAttribute('aria-pressed'), 'false', 'Ctrl+Shift+M');
  await page.keyboard.press('Control+Shift+O');
  assert.equal(await page.locator('#toggle-cam').getAttribute('aria-pressed'), 'false', 'Ctrl+Shift+O');
  await page.keyboard.press('Shift+?');
  await page.getByRole('dialog', { name: 'Keyboard shortcuts' }).waitFor({ timeout: 2000 });
  await page.keyboard.press('Escape');
  await page.getByRole('dialog').waitFor({ state: 'hidden', timeout: 2000 });

  // Someone comes: a screen reader hears it, and the list shows them.
  const other = await joinPage(browser, server.url, 'keys', 'Lou', {}, { t });
  await page.locator('#announcer', { hasText: 'Lou joined' }).waitFor({ timeout: 10000 });
  await page.keyboard.press('Control+Shift+P');
  const people = page.getByRole('complementary', { name: 'Participants' });
  await people.getByText('Lou').waitFor({ timeout: 5000 });
  assert.equal(await page.locator('#people-count').textContent(), '2');
  await other.context.close();
  await page.locator('#announcer', { hasText: 'Lou left' }).waitFor({ timeout: 10000 });
  assert.equal(await page.locator('#people-count').textContent(), '1');

  // The meeting's link, copied (or shown where the page may not copy).
  await tabTo('Copy meeting link');
  await page.keyboard.press('Enter');
  await page.locator('#status', { hasText: /Meeting link( copied|: .*\/m\/keys)/ }).waitFor({ timeout: 5000 });

  await tabTo('Leave');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'You left the meeting' }).waitFor({ timeout: 5000 });
});
