// A meeting whose policy (set through the admin API) admits guests only
// once a host is in: a guest with an invite link who comes early is told
// that she waits for a host, and is in the meeting, seeing and seen, as
// soon as the host arrives, without anyone admitting her.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  cleanUp, joinPage, launchBrowser, openPage, receivedByName, startServer, until,
} from './harness.mjs';

const ROOM = 'board';

test('a guest waits for the host where the meeting\'s policy says so', async (t) => {
  const key = randomBytes(32).toString('hex');
  const server = await startServer({
    MEET_ANONYMOUS_JOIN: 'false', MEET_ADMIN_KEY: key, MEET_POLICY_STORE: '',
  });
  const browser = await launchBrowser();
  t.after(() => cleanUp(() => browser.close(), () => server.stop()));
  const admin = (method, path, body) => fetch(`${server.url}/api/admin/meetings/${ROOM}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const policy = await admin('PUT', '/policy', { guests_before_host: false });
  assert.equal(policy.status, 200, await policy.clone().text());
  assert.equal((await policy.json()).effective.guests_before_host, false);
  const invite = async (role) => (await (await admin('POST', '/invites', { role })).json()).invite;
  const guestInvite = await invite('participant');
  const hostInvite = await invite('host');

  const gus = await openPage(browser, 'Gus', { t });
  await gus.page.goto(`${server.url}/m/${ROOM}?name=Gus&join=now&invite=${guestInvite}`);
  await gus.page.getByText('Waiting for a host to start the meeting').waitFor({ timeout: 10000 });

  const started = Date.now();
  const hana = await joinPage(browser, server.url, ROOM, 'Hana', { invite: hostInvite }, { t });
  await gus.page.waitForFunction(() => window.meet && window.meet.participantId, null, { timeout: 10000 });
  const p = { ...gus, name: 'Gus' };
  await until('Gus and Hana see each other', async () => (
    ((await receivedByName(p)).Hana?.framesDecoded ?? 0) > 10
    && ((await receivedByName(hana)).Gus?.framesDecoded ?? 0) > 10
  ), 20000);
  console.log(`# measured: a guest who waited for the host decoded the host's video ${Date.now() - started} ms after the host opened the page`);
  assert.equal(await hana.page.locator('#lobby').isVisible(), false, 'nobody had to be admitted');
});
