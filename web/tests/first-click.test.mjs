// A click on "Join meeting" at the first moment the button can be clicked
// joins. Three people open a meeting one after another, type their names
// and click Join as soon as Playwright finds the button clickable
// (visible, enabled, not moving). The page's scripts are held back half a
// second, as on a slow link, so that the button shows long before they
// run: a click before they can handle it used to be lost (the form went
// out as a plain GET and the page came back on the pre-join screen while
// the others met).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cleanUp, launchBrowser, openPage, sleep, startServer, until,
} from './harness.mjs';

const SCRIPT_DELAY_MS = 500;

test('a click on Join at the first moment it can be clicked joins', { timeout: 120000 }, async (t) => {
  const server = await startServer();
  const browser = await launchBrowser();
  t.after(() => cleanUp(() => browser.close(), () => server.stop()));
  const room = 'first-click';
  const pages = [];
  for (const name of ['Ada', 'Bo', 'Cy']) {
    const { page, log } = await openPage(browser, name, { t, firstVisit: true });
    await page.route('**/static/*.js', async (route) => {
      await sleep(SCRIPT_DELAY_MS);
      await route.continue();
    });
    await page.goto(`${server.url}/m/${room}`, { waitUntil: 'commit' });
    await page.locator('#join-button').waitFor({ state: 'visible', timeout: 10000 });
    const shown = Date.now();
    await page.locator('#name').fill(name);
    await page.locator('#join-button').click();
    const clicked = Date.now() - shown;
    try {
      await page.waitForFunction(() => window.meet?.participantId, null, { timeout: 15000 });
    } catch (e) {
      const seen = await page.evaluate(() => ({
        url: location.href,
        screen: [...document.querySelectorAll('main')].find((m) => !m.hidden)?.id,
      })).catch((err) => ({ unreadable: err.message }));
      throw new Error(`${name} clicked Join ${clicked} ms after it showed and had not joined 15 s later: `
        + `${JSON.stringify(seen)}; console: ${JSON.stringify(log)} (${e.message})`);
    }
    assert.equal(new URL(page.url()).pathname + new URL(page.url()).search, `/m/${room}`, 'the page was reloaded');
    console.log(`# measured: ${name} clicked Join ${clicked} ms after it showed (scripts held back ${SCRIPT_DELAY_MS} ms) and joined`);
    pages.push(page);
  }
  for (const page of pages) {
    await until('everyone to see all three', async () => (await page.locator('#people-count').textContent()) === '3', 10000);
  }
});
