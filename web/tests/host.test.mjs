// A host moderates a meeting from the page: mutes someone's microphone
// (the server stops forwarding it; locked, the muted person cannot unmute),
// bans someone (their invite link no longer gets them in), locks the
// meeting (a newcomer waits in the lobby and is turned away, the others
// are told), lets a stranger without a link in from the lobby, hands out
// an invite link that lets a guest straight in, and ends the meeting for
// everyone. The host comes in with a host invite link minted through
// the admin API; the others with a participant link.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  cleanUp, joinPage, launchBrowser, openPage, receivedByName, sleep, startServer, until,
} from './harness.mjs';

const ROOM = 'council';

async function mintInvite(server, key, role) {
  const r = await fetch(`${server.url}/api/admin/meetings/${ROOM}/invites`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ role }),
  });
  assert.equal(r.status, 201, await r.clone().text());
  return (await r.json()).invite;
}

/** How many audio packets `p` has received from `name` so far. */
async function audioFrom(p, name) {
  return (await receivedByName(p))[name]?.audioPackets ?? 0;
}

/** Waits for the page to leave the meeting and returns what it says. */
async function leftReason(p) {
  await p.page.locator('#left').waitFor({ state: 'visible', timeout: 10000 });
  return p.page.locator('#left-reason').textContent();
}

test('a host mutes and locks a microphone, bans, locks the meeting, runs the lobby, invites and ends it', async (t) => {
  const key = randomBytes(32).toString('hex');
  const server = await startServer({ MEET_ANONYMOUS_JOIN: 'false', MEET_ADMIN_KEY: key });
  const browser = await launchBrowser();
  t.after(() => cleanUp(() => browser.close(), () => server.stop()));
  const hostInvite = await mintInvite(server, key, 'host');
  const guestInvite = await mintInvite(server, key, 'participant');
  const banInvite = await mintInvite(server, key, 'participant');

  const host = await joinPage(browser, server.url, ROOM, 'Hana', { invite: hostInvite }, { t });
  host.page.on('dialog', (d) => d.accept());
  const ann = await joinPage(browser, server.url, ROOM, 'Ann', { invite: guestInvite }, { t });
  const bo = await joinPage(browser, server.url, ROOM, 'Bo', { invite: banInvite }, { t });
  await until('the host hears Ann', async () => (await audioFrom(host, 'Ann')) > 50, 30000);
  assert.equal(await ann.page.locator('#lock-meeting').isVisible(), false, 'host controls for a participant');

  // Mute and keep muted: Ann's page turns her microphone off and cannot
  // turn it on; the server forwards none of it, whatever her browser sends.
  const annTile = host.page.locator('.tile', { hasText: 'Ann' });
  await annTile.getByRole('button', { name: 'Keep muted: mute Ann until a host allows unmuting' }).click();
  await ann.page.getByText('A host muted your microphone and keeps it muted.').waitFor({ timeout: 10000 });
  assert.equal(await ann.page.locator('#toggle-mic').isDisabled(), true, 'the unmute button is disabled');
  assert.equal(await ann.page.locator('#toggle-mic').textContent(), 'Unmute microphone');
  await ann.page.evaluate(() => {
    // A client that ignores the mute: the server must still hold it back.
    window.meet.state.localStream.getAudioTracks().forEach((track) => { track.enabled = true; });
    window.meet.state.signalling.send({ type: 'mute', mid: window.meet.state.published.find((p) => p.track.kind === 'audio').transceiver.mid, muted: false });
  });
  await sleep(1000);
  const held = await audioFrom(host, 'Ann');
  await sleep(2000);
  const after = await audioFrom(host, 'Ann');
  assert.ok(after - held <= 2, `${after - held} audio packets of a muted microphone reached the host`);
  await bo.page.locator('.tile', { hasText: 'Ann' }).locator('.mic-muted').waitFor({ state: 'visible', timeout: 5000 });

  // The host allows unmuting; Ann unmutes and is heard again.
  await annTile.getByRole('button', { name: 'Keep muted: mute Ann until a host allows unmuting' }).click();
  await until('Ann may unmute', async () => !(await ann.page.locator('#toggle-mic').isDisabled()), 5000);
  await ann.page.locator('#toggle-mic').click();
  const resumed = await audioFrom(host, 'Ann');
  await until('the host hears Ann again', async () => (await audioFrom(host, 'Ann')) > resumed + 50, 10000);

  // Ban Bo: out, and the same link does not get him back in.
  await host.page.locator('.tile', { hasText: 'Bo' }).getByRole('button', { name: 'Ban Bo: remove them and keep them out' }).click();
  assert.match(await leftReason(bo), /removed/i);
  const boAgain = await openPage(browser, 'Bo again', { t });
  await boAgain.page.goto(`${server.url}/m/${ROOM}?name=Bo&join=now&invite=${banInvite}`);
  assert.match(await leftReason(boAgain), /does not let you back in/);

  // Lock: everyone is told; a newcomer, even with a valid link, waits in
  // the lobby, and the host turns them away.
  await host.page.getByRole('button', { name: 'Lock meeting' }).click();
  await ann.page.locator('#meeting-locked').waitFor({ state: 'visible', timeout: 5000 });
  const cy = await openPage(browser, 'Cy', { t });
  await cy.page.goto(`${server.url}/m/${ROOM}?name=Cy&join=now&invite=${guestInvite}`);
  await cy.page.getByText('Waiting for a host to let you in').waitFor({ timeout: 10000 });
  await host.page.getByRole('button', { name: 'Deny Cy' }).click();
  assert.match(await leftReason(cy), /did not let you in/);

  // Unlocked: a stranger without any link knocks, and the host lets her in.
  await host.page.getByRole('button', { name: 'Unlock meeting' }).click();
  const dee = await openPage(browser, 'Dee', { t });
  await dee.page.goto(`${server.url}/m/${ROOM}?name=Dee&join=now`);
  await dee.page.getByText('Waiting for a host to let you in').waitFor({ timeout: 10000 });
  assert.equal(await host.page.locator('#lobby-count').textContent(), '1');
  await host.page.getByRole('button', { name: 'Admit Dee' }).click();
  await until('the host sees Dee', async () => ((await receivedByName(host)).Dee?.framesDecoded ?? 0) > 10, 20000);
  assert.equal(await host.page.locator('#lobby').isVisible(), false, 'the lobby is empty again');
  const deeTile = host.page.locator('.tile', { hasText: 'Dee' });
  assert.match(await deeTile.textContent(), /guest/);

  // An invite link the host makes in the meeting: Eve comes straight in
  // with it, past the lobby, as a guest.
  assert.equal(await ann.page.locator('#invite-link').isVisible(), false, 'an invite button for a participant');
  await host.page.getByRole('button', { name: 'Invite link' }).click();
  const field = host.page.locator('#invite-url');
  await until('the host has a link', async () => (await field.inputValue()).includes('invite='), 5000);
  const link = new URL(await field.inputValue());
  assert.equal(`${link.origin}${link.pathname}`, `${server.url}/m/${ROOM}`);
  link.searchParams.set('name', 'Eve');
  link.searchParams.set('join', 'now');
  const eve = await openPage(browser, 'Eve', { t });
  await eve.page.goto(link.href);
  await until('the host sees Eve', async () => ((await receivedByName(host)).Eve?.framesDecoded ?? 0) > 10, 20000);
  assert.equal(await host.page.locator('#lobby').isVisible(), false, 'Eve waited in the lobby');
  assert.match(await host.page.locator('.tile', { hasText: 'Eve' }).textContent(), /guest/);

  // End for everyone.
  await host.page.getByRole('button', { name: 'End for all' }).click();
  assert.match(await leftReason(ann), /ended/);
  assert.match(await leftReason({ page: dee.page }), /ended/);
  assert.match(await leftReason(host), /ended/);
});
