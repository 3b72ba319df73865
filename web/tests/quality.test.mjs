// Connection quality and who is speaking, from the pages' own statistics:
// each tile says how well that person comes through (bars, and words for
// screen readers), worse while a quarter of the packets are dropped (an
// nftables rule in the test's network namespace) and good again after;
// someone speaking is framed and listed as speaking.

import { test } from 'node:test';
import {
  cleanUp, joinPage, launchBrowser, nftRule, startServer, until,
} from './harness.mjs';

const quality = (p, name) => p.page.locator('#grid .tile', { hasText: name }).locator('.quality').getAttribute('aria-label');

test('each tile shows its connection quality from real statistics, and who speaks', { timeout: 90000 }, async (t) => {
  const server = await startServer();
  const browser = await launchBrowser();
  t.after(() => cleanUp(() => browser.close(), () => server.stop()));
  const ada = await joinPage(browser, server.url, 'signal', 'Ada', {}, { t });
  const bea = await joinPage(browser, server.url, 'signal', 'Bea', {}, { t });
  await until('Bea to rate Ada\'s connection good', async () => (await quality(bea, 'Ada').catch(() => null)) === 'Connection: good', 15000, 200);
  await until('Bea to rate her own connection', async () => (await quality(bea, 'Bea').catch(() => null)) !== null, 15000, 200);

  // Chromium's fake microphone beeps: Ada speaks now and then.
  await bea.page.getByRole('button', { name: 'Participants' }).click();
  await until('Bea to see Ada speaking', async () => (
    await bea.page.locator('#grid .tile.speaking', { hasText: 'Ada' }).count() === 1
    && (await bea.page.locator('#people-list > li', { hasText: 'Ada' }).textContent()).includes('speaking')
  ), 10000, 50);

  const started = Date.now();
  const heal = nftRule('meetquality', 'input', 'meta', 'l4proto', 'udp',
    'numgen', 'random', 'mod', '100', '<', '25', 'drop');
  t.after(heal);
  let seen;
  await until('Bea to rate Ada\'s connection worse', async () => {
    seen = await quality(bea, 'Ada');
    return seen !== 'Connection: good';
  }, 15000, 200);
  console.log(`# measured: 25 % of packets dropped: "${seen}" ${Date.now() - started} ms later`);
  heal();
  const healed = Date.now();
  await until('Bea to rate Ada\'s connection good again', async () => (await quality(bea, 'Ada')) === 'Connection: good', 15000, 200);
  console.log(`# measured: good again ${Date.now() - healed} ms after the loss stopped`);
  // Ada's page rates Bea's the same way.
  await until('Ada to rate Bea\'s connection', async () => (await quality(ada, 'Bea').catch(() => null)) !== null, 5000, 200);
});
