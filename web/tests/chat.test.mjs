// End to end: meeting chat bridged to Matrix. A real Synapse (ops/synapse.sh)
// on 127.0.0.1, the real server logged in to it as a bot, Chromium pages in
// meetings, and plain Matrix users (alice, bob) on the client-server API.
// Each test uses its own meeting, so its own Matrix room.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  startServer, startSynapse, registerUser, MatrixClient, launchBrowser, joinPage, openPage,
  receivedByName, base64urlJson, until, sleep, cleanUp,
} from './harness.mjs';
import {
  chatOf, chatRoomOf, delayedOf, messageBox, typeChat, waitForChat,
} from './chat.mjs';

const BOT_PASSWORD = 'meetbot-test-password';

let syn;
let server;
let storeDir;
let browser;
let botId;
/** Matrix users on the plain client-server API. */
let alice;
let bob;

before(async () => {
  syn = await startSynapse();
  botId = await registerUser(syn, 'meetbot', BOT_PASSWORD);
  await registerUser(syn, 'alice', 'alice-test-password');
  await registerUser(syn, 'bob', 'bob-test-password');
  alice = await MatrixClient.login(syn.url, 'alice', 'alice-test-password');
  await alice.setDisplayName('Alice');
  bob = await MatrixClient.login(syn.url, 'bob', 'bob-test-password');
  await bob.setDisplayName('Bob');
  storeDir = mkdtempSync(join(tmpdir(), 'meet-matrix-store-'));
  server = await startServer({
    MEET_MATRIX_HOMESERVER: syn.url,
    MEET_MATRIX_USER: 'meetbot',
    MEET_MATRIX_PASSWORD: BOT_PASSWORD,
    MEET_MATRIX_STORE: storeDir,
    // The latency measurement sends 100 messages from one page in well
    // under a minute; the limit itself is tested in sfu/tests/limits.rs.
    MEET_MAX_CHAT_MESSAGES_PER_MINUTE: '1000',
  });
  browser = await launchBrowser();
}, { timeout: 1200000 }); // a first run installs Synapse (pip)

after(() => cleanUp(
  () => browser?.close(),
  () => server?.stop(),
  () => syn?.destroy(),
  () => storeDir && rmSync(storeDir, { recursive: true, force: true }),
));

/** Runs `fn`; if it throws, prints the end of the server's and Synapse's logs first. */
async function withLogs(fn) {
  try {
    return await fn();
  } catch (err) {
    const tail = (text, n) => text.split('\n').slice(-n).join('\n');
    console.log(`# server log (end):\n${tail(server ? server.log() : '', 60)}`);
    console.log(`# synapse log (end):\n${tail(syn ? syn.log() : '', 30)}`);
    throw err;
  }
}

/**
 * For pages opened with this init script, window.__chatFrames records every
 * chat frame the page receives ({ dir: 'in', t, msg }) and every chat
 * message it sends ({ dir: 'out', t, msg }), `t` being Date.now() then.
 */
function recordChatFrames() {
  window.__chatFrames = [];
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (e) => {
        let msg;
        try {
          msg = JSON.parse(e.data);
        } catch {
          return;
        }
        if (typeof msg.type === 'string' && msg.type.startsWith('chat')) window.__chatFrames.push({ dir: 'in', t: Date.now(), msg });
      });
    }

    send(data) {
      try {
        const msg = JSON.parse(data);
        if (msg.type === 'chat') window.__chatFrames.push({ dir: 'out', t: Date.now(), msg });
      } catch {
        // not ours to judge
      }
      super.send(data);
    }
  };
}

/** `name` joins `room`, recording chat frames; the page closes when test `t` ends. */
const join_ = (t, room, name) => joinPage(browser, server.url, room, name, {}, { initScript: recordChatFrames, t });

/**
 * Alice opens meeting `room`'s Matrix room: she signs in to the meeting,
 * which makes its (invite-only) room with her invited as its moderator, and
 * accepts the invitation. Anonymous guests, as the pages here are, never
 * make a room; they get the one the meeting has. Returns the room's id.
 */
async function openRoom(room) {
  const res = await fetch(`${server.url}/api/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ room, openid_token: await alice.requestOpenIdToken() }),
  });
  const json = await res.json();
  assert.equal(res.status, 200, JSON.stringify(json));
  await alice.joinRoom(json.room_id);
  return json.room_id;
}

/** True once `p` decodes video and receives audio from every name in `names`. */
async function receivesFrom(p, names) {
  const got = await receivedByName(p);
  return names.every((n) => got[n] && got[n].framesDecoded > 0 && got[n].audioPackets > 0);
}

/** The bot's m.room.message bodies in `roomId`, oldest first. */
async function botBodies(roomId) {
  const chunk = await alice.messages(roomId, { limit: 100 });
  return chunk.reverse()
    .filter((e) => e.type === 'm.room.message' && e.sender === botId)
    .map((e) => ({ id: e.event_id, body: e.content && e.content.body }));
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function summary(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return `median ${percentile(sorted, 50)} ms, p95 ${percentile(sorted, 95)} ms, max ${sorted[sorted.length - 1]} ms`;
}

test('Matrix → meeting: messages, replies, edits, reactions and redactions reach every page', { timeout: 120000 }, (t) => withLogs(async () => {
  const roomId = await openRoom('chat-from-matrix');
  const pat = await join_(t, 'chat-from-matrix', 'Pat');
  const quinn = await join_(t, 'chat-from-matrix', 'Quinn');
  const pages = [pat, quinn];
  assert.match(roomId, /^!/);
  assert.equal(await chatRoomOf(pat), roomId);
  assert.equal(await chatRoomOf(quinn), roomId, 'one meeting, one room');
  assert.equal(await delayedOf(pat), false);
  await alice.invite(roomId, bob.userId);
  await bob.joinRoom(roomId);

  const sentAt = Date.now();
  const hello = await alice.sendMessage(roomId, 'hello from Matrix');
  for (const p of pages) {
    await waitForChat(p, 'Alice\'s message', (ms) => ms.some((m) => m.id === hello));
  }
  console.log(`# measured: a Matrix message showed in both pages ${Date.now() - sentAt} ms after it was sent`);
  const doomed = await alice.sendMessage(roomId, 'this one will be deleted');
  const reply = await alice.sendMessage(roomId, 'a reply', { replyTo: hello });
  await alice.editMessage(roomId, hello, 'hello from Matrix, edited');
  await alice.react(roomId, hello, '👍');
  await bob.react(roomId, hello, '👍');
  const party = await bob.react(roomId, hello, '🎉');
  await alice.redact(roomId, doomed);
  await bob.redact(roomId, party);
  const markup = '<img src=x onerror="window.__xss = 1"> & <b>not bold</b>';
  const html = await alice.sendMessage(roomId, markup);

  for (const p of pages) {
    const ms = await waitForChat(p, 'every Matrix event applied', (list) => {
      const by = Object.fromEntries(list.map((m) => [m.id, m]));
      return by[html] && by[doomed]?.deleted && by[hello]?.edited
        && by[hello].reactions['👍'] === 2 && !by[hello].reactions['🎉'] && by[reply];
    }, 10000);
    const by = Object.fromEntries(ms.map((m) => [m.id, m]));
    assert.deepEqual(by[hello], {
      id: hello,
      name: 'Alice',
      sender: '@alice:localhost',
      body: 'hello from Matrix, edited',
      pending: false,
      edited: true,
      deleted: false,
      replyTo: null,
      reactions: { '👍': 2 },
    });
    assert.equal(by[doomed].deleted, true);
    assert.deepEqual(by[doomed].reactions, {});
    assert.equal(by[reply].replyTo, hello);
    assert.equal(by[reply].body, 'a reply');
    assert.equal(by[reply].name, 'Alice');
    assert.equal(by[html].body, markup);
    // In the order they were sent.
    const order = ms.map((m) => m.id);
    assert.ok(order.indexOf(hello) < order.indexOf(doomed) && order.indexOf(doomed) < order.indexOf(reply)
      && order.indexOf(reply) < order.indexOf(html), `order: ${order}`);
    // Edits, reactions and redactions are no messages of their own.
    assert.equal(ms.filter((m) => m.sender === '@alice:localhost').length, 4);
  }

  // What people see in one of them.
  const log = pat.page.getByRole('log');
  const item = log.locator(`[data-id="${hello}"]`);
  assert.equal(await item.locator('.chat-name').getAttribute('title'), '@alice:localhost');
  assert.match(await item.innerText(), /\(edited\)/);
  const thumbs = item.locator('.chat-reactions li', { hasText: '👍' });
  assert.match(await thumbs.innerText(), /👍\s*2/);
  assert.match(await thumbs.getAttribute('title'), /Alice/);
  assert.match(await thumbs.getAttribute('title'), /Bob/);
  assert.match(await log.locator(`[data-id="${doomed}"]`).innerText(), /Message deleted/);
  assert.match(await log.locator(`[data-id="${reply}"] .chat-quote`).innerText(), /hello from Matrix, edited/);
  assert.equal(await log.locator('img, b').count(), 0, 'a message was rendered as markup');
  assert.equal(await pat.page.evaluate(() => window.__xss), undefined);

}));

test('meeting → Matrix: a message typed in the meeting reaches Matrix as "Name: text"', { timeout: 90000 }, (t) => withLogs(async () => {
  const roomId = await openRoom('chat-to-matrix');
  const carol = await join_(t, 'chat-to-matrix', 'Carol');
  const dave = await join_(t, 'chat-to-matrix', 'Dave');
  assert.equal(await chatRoomOf(carol), roomId);

  // Nothing to send: nothing sent.
  const box = await messageBox(carol);
  await box.press('Enter');
  await box.fill('   ');
  await box.press('Enter');
  await sleep(300);
  assert.deepEqual(await carol.page.evaluate(() => window.__chatFrames.filter((f) => f.dir === 'out')), []);

  const text = `hello from the meeting ${Date.now()}`;
  const typedAt = Date.now();
  await typeChat(carol, text);
  assert.equal(await box.inputValue(), '', 'the input was not cleared');
  const event = await alice.waitForMessage(roomId, (e) => e.sender === botId && e.content.body === `Carol: ${text}`, 15000);
  console.log(`# measured: a typed message reached Matrix (seen by another client's /sync) ${Date.now() - typedAt} ms after Enter`);

  for (const p of [carol, dave]) {
    const ms = await waitForChat(p, 'Carol\'s message, delivered', (list) => list.some((m) => m.id === event.event_id && !m.pending), 10000);
    const mine = ms.filter((m) => m.body === text);
    assert.equal(mine.length, 1, `${p.name} shows the message ${mine.length} times`);
    assert.equal(mine[0].name, 'Carol');
    assert.equal(mine[0].pending, false);
  }
  // Dave saw it pending (under a local id) first, then delivered under the
  // Matrix event id.
  const frames = (await dave.page.evaluate(() => window.__chatFrames)).filter((f) => f.dir === 'in').map((f) => f.msg);
  const events = frames.flatMap((m) => (m.type === 'chat_event' ? [m.event] : m.type === 'chat_history' ? m.events : []));
  const first = events.findIndex((e) => e.kind === 'message' && e.body === text);
  assert.ok(first >= 0, 'Dave never got the message');
  assert.equal(events[first].pending, true, 'the message came without being pending first');
  assert.notEqual(events[first].id, event.event_id);
  const delivered = events.findIndex((e) => e.kind === 'delivered' && e.local_id === events[first].id);
  assert.ok(delivered > first, 'no delivered event for the pending message');
  assert.equal(events[delivered].id, event.event_id);

  // And the Matrix side got it once.
  await sleep(1000);
  const bodies = (await botBodies(roomId)).map((b) => b.body).filter((b) => b === `Carol: ${text}`);
  assert.equal(bodies.length, 1);

}));

test('a late joiner gets the chat since the meeting started', { timeout: 90000 }, (t) => withLogs(async () => {
  const roomId = await openRoom('chat-history');
  const erin = await join_(t, 'chat-history', 'Erin');
  assert.equal(await chatRoomOf(erin), roomId);
  const first = await alice.sendMessage(roomId, 'before Frank came');
  // The meeting shows messages in the order it gets them: let this one
  // arrive before Erin types hers.
  await waitForChat(erin, 'alice\'s first message', (ms) => ms.some((m) => m.id === first));
  await typeChat(erin, 'also before Frank');
  await alice.waitForMessage(roomId, (e) => e.sender === botId && e.content.body === 'Erin: also before Frank', 15000);
  await alice.editMessage(roomId, first, 'before Frank came (edited)');
  await alice.react(roomId, first, '✅');
  const answer = await alice.sendMessage(roomId, 'an answer', { replyTo: first });
  const erinSees = await waitForChat(erin, 'everything so far', (ms) => {
    const by = Object.fromEntries(ms.map((m) => [m.id, m]));
    return by[answer] && by[first]?.edited && by[first].reactions['✅'] === 1
      && ms.some((m) => m.body === 'also before Frank' && !m.pending);
  }, 10000);

  const frank = await join_(t, 'chat-history', 'Frank');
  // The same chat, in the same order, in the same state.
  const frankSees = await waitForChat(frank, 'the history', (ms) => ms.length >= erinSees.length, 10000);
  assert.deepEqual(frankSees, erinSees);
  assert.ok(frankSees.findIndex((m) => m.id === first) < frankSees.findIndex((m) => m.body === 'also before Frank'));
  assert.equal(frankSees.find((m) => m.id === answer).replyTo, first);
  // It came as chat_history: every message Frank shows, the edit and the
  // reaction were in it (a history that came empty, with the messages
  // arriving some other way, would not do).
  const history = (await frank.page.evaluate(() => window.__chatFrames)).find((f) => f.msg.type === 'chat_history');
  assert.ok(history, 'no chat_history');
  const events = history.msg.events;
  const ids = new Set(events.flatMap((e) => (e.kind === 'message' || e.kind === 'delivered' ? [e.id] : [])));
  for (const m of frankSees) assert.ok(ids.has(m.id), `"${m.body}" (${m.id}) was not in the chat_history`);
  assert.ok(events.some((e) => e.kind === 'edit' && e.id === first), 'the edit was not in the chat_history');
  assert.ok(events.some((e) => e.kind === 'reaction' && e.target === first && e.key === '✅'), 'the reaction was not in the chat_history');
}));

test('homeserver outage: chat waits and says so, media keeps flowing, nothing is lost or doubled', { timeout: 240000 }, (t) => withLogs(async () => {
  const roomId = await openRoom('chat-outage');
  const carol = await join_(t, 'chat-outage', 'Carol');
  const hal = await join_(t, 'chat-outage', 'Hal');
  assert.equal(await chatRoomOf(carol), roomId);
  await until('Carol and Hal to receive each other', async () => (
    await receivesFrom(carol, ['Hal']) && await receivesFrom(hal, ['Carol'])
  ), 30000);
  await typeChat(carol, 'before the outage');
  await alice.waitForMessage(roomId, (e) => e.sender === botId && e.content.body === 'Carol: before the outage', 15000);

  // The other tests share this homeserver: it runs again after this test,
  // also when the test fails while it is down.
  t.after(() => syn.ensureRunning());
  await syn.stop(); // SIGKILL: a crash, not a goodbye
  const down = Date.now();
  const texts = Array.from({ length: 20 }, (_, i) => `m${i}`);
  for (const text of texts) await typeChat(carol, text);
  for (const p of [carol, hal]) {
    await until(`${p.name} to say chat is delayed`, () => delayedOf(p), 30000, 100);
    await p.page.getByRole('status').filter({ hasText: 'Chat is delayed' }).waitFor({ state: 'visible', timeout: 3000 });
    // The meeting still has the messages, in order, waiting.
    const ms = await waitForChat(p, 'the 20 waiting messages', (list) => texts.every((t) => list.some((m) => m.body === t)), 10000);
    const waiting = ms.filter((m) => /^m\d+$/.test(m.body));
    assert.deepEqual(waiting.map((m) => m.body), texts);
    assert.ok(waiting.every((m) => m.pending), `${p.name} shows a message as delivered while the homeserver is down`);
  }
  console.log(`# measured: pages said chat is delayed ${Date.now() - down} ms after the homeserver died (20 messages typed meanwhile)`);

  // Media does not care.
  const before = await receivedByName(hal);
  const beforeCarol = await receivedByName(carol);
  await sleep(2000);
  const later = await receivedByName(hal);
  const laterCarol = await receivedByName(carol);
  assert.ok(later.Carol.framesDecoded > before.Carol.framesDecoded, 'Hal\'s video from Carol stalled during the outage');
  assert.ok(laterCarol.Hal.framesDecoded > beforeCarol.Hal.framesDecoded, 'Carol\'s video from Hal stalled during the outage');
  assert.ok(later.Carol.audioPackets > before.Carol.audioPackets, 'Hal\'s audio from Carol stalled during the outage');

  await syn.start();
  const up = Date.now();
  const expected = texts.map((t) => `Carol: ${t}`);
  const outageBodies = async () => (await botBodies(roomId).catch(() => [])).filter((b) => /^Carol: m\d+$/.test(b.body));
  await until('alice to see all 20 messages', async () => (await outageBodies()).length >= 20, 30000, 500);
  console.log(`# measured: 20 messages typed during the outage were in Matrix ${Date.now() - up} ms after the homeserver was back (down ${up - down} ms)`);
  for (const p of [carol, hal]) await until(`${p.name} to say chat is no longer delayed`, async () => !(await delayedOf(p)), 30000, 100);
  await sleep(3000); // time for any doubled delivery to show
  const got = await outageBodies();
  assert.deepEqual(got.map((b) => b.body), expected, 'each message exactly once, in order');

  // The pages re-keyed them to the Matrix event ids.
  for (const p of [carol, hal]) {
    await waitForChat(p, 'the 20 messages delivered', (list) => {
      const ms = list.filter((m) => /^m\d+$/.test(m.body));
      return ms.length === 20 && ms.every((m) => !m.pending);
    }, 10000);
    const ms = (await chatOf(p)).filter((m) => /^m\d+$/.test(m.body));
    assert.deepEqual(ms.map((m) => m.id), got.map((b) => b.id));
    assert.ok(!(await p.page.getByRole('status').filter({ hasText: 'Chat is delayed' }).isVisible()));
  }
}));

test('OpenID: a Matrix room member joins as themselves; others cannot', { timeout: 120000 }, (t) => withLogs(async () => {
  const room = 'chat-openid';
  const roomId = await openRoom(room);
  const ivy = await join_(t, room, 'Ivy');
  assert.equal(await chatRoomOf(ivy), roomId);
  // The server names people from its own view of the room: wait until it
  // has seen alice join (her message comes after her join in the timeline).
  const hi = await alice.sendMessage(roomId, 'hi, I am about to join');
  await waitForChat(ivy, 'alice\'s message', (ms) => ms.some((m) => m.id === hi && m.name === 'Alice'), 10000);

  // The API itself.
  const post = async (body) => {
    const res = await fetch(`${server.url}/api/token`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    return { status: res.status, json: await res.json().catch(() => null) };
  };
  const aliceToken = await alice.requestOpenIdToken();
  const ok = await post({ room, openid_token: aliceToken });
  assert.equal(ok.status, 200, JSON.stringify(ok.json));
  assert.equal(ok.json.user_id, '@alice:localhost');
  assert.equal(ok.json.name, 'Alice');
  assert.equal(typeof ok.json.token, 'string');
  assert.equal(typeof ok.json.host, 'boolean');
  const bad = await post({ room, openid_token: { ...aliceToken, access_token: 'not-a-token' } });
  assert.ok(bad.status >= 400, `status ${bad.status}`);
  assert.equal(bad.json.error, 'invalid_openid_token');
  assert.equal(typeof bad.json.message, 'string');
  const malformed = await post({ room });
  assert.ok(malformed.status >= 400);
  assert.equal(malformed.json.error, 'bad_request');
  const bobToken = await bob.requestOpenIdToken();
  const outsider = await post({ room, openid_token: bobToken });
  assert.ok(outsider.status >= 400);
  assert.equal(outsider.json.error, 'not_room_member');

  // The page: #openid= carries a fresh token.
  const { page, context } = await openPage(browser, 'alice (OpenID)', { t });
  const joinedAt = Date.now();
  await page.goto(`${server.url}/m/${room}?join=now#openid=${base64urlJson(await alice.requestOpenIdToken())}`);
  await page.waitForFunction(() => window.meet && window.meet.participantId, null, { timeout: 15000 });
  console.log(`# measured: OpenID sign-in and join took ${Date.now() - joinedAt} ms from opening the page`);
  const identity = await page.evaluate(() => window.meet.identity());
  assert.equal(identity.user_id, '@alice:localhost');
  assert.equal(typeof identity.host, 'boolean');
  await page.locator('#meeting').getByText('Signed in as @alice:localhost').waitFor({ timeout: 3000 });
  assert.equal(await page.getByLabel('Your name').inputValue(), 'Alice');
  await until('Ivy to see Alice', () => ivy.page.evaluate(
    () => [...window.meet.state.participants.values()].some((p) => p.name === 'Alice'),
  ), 5000);

  // Out of the Matrix room, out of the meeting.
  await alice.leaveRoom(roomId);
  await page.getByRole('heading', { name: 'You left the meeting' }).waitFor({ timeout: 15000 });
  assert.notEqual((await page.locator('#left-reason').innerText()).trim(), '');
  await until('Ivy to see Alice go', () => ivy.page.evaluate(
    () => ![...window.meet.state.participants.values()].some((p) => p.name === 'Alice'),
  ), 10000);
  await context.close();

  // bob is in no such room: the page says why and he joins as a guest.
  const second = await openPage(browser, 'bob (OpenID)', { t });
  // With a name and join=now in the link, a failed sign-in still waits for
  // the user to choose to join as a guest.
  await second.page.goto(`${server.url}/m/${room}?name=Bob&join=now#openid=${base64urlJson(await bob.requestOpenIdToken())}`);
  await second.page.getByRole('alert').filter({ hasText: 'Could not sign in with Matrix' }).waitFor({ timeout: 15000 });
  // Filling in the device lists is the page's last step before it decides
  // about join=now; a join would have opened the signalling socket at once.
  await second.page.waitForFunction(() => document.querySelectorAll('#camera option').length > 0, null, { timeout: 10000 });
  assert.ok(await second.page.locator('#prejoin').isVisible());
  assert.equal(await second.page.evaluate(() => window.meet.state.signalling === null && !window.meet.state.joining), true,
    'the page started to join after the failed sign-in');
  assert.equal(await second.page.evaluate(() => window.meet.participantId), null);
  await second.page.getByLabel('Your name').fill('Bob the guest');
  await second.page.getByRole('button', { name: 'Join meeting' }).click();
  await second.page.waitForFunction(() => window.meet.participantId, null, { timeout: 15000 });
  assert.equal(await second.page.evaluate(() => window.meet.identity()), null);
}));

test('a host from the Matrix room removes a guest with the tile\'s Remove button; power levels make and unmake hosts mid-meeting', { timeout: 120000 }, (t) => withLogs(async () => {
  // Alice's own room, bound to the meeting by configuration: she created
  // it, so she may kick there, so she is a host in the meeting.
  const roomId = await alice.createRoom({ preset: 'public_chat', name: 'Town hall' });
  const store = mkdtempSync(join(tmpdir(), 'meet-matrix-store-'));
  const hall = await startServer({
    MEET_MATRIX_HOMESERVER: syn.url,
    MEET_MATRIX_USER: 'meetbot',
    MEET_MATRIX_PASSWORD: BOT_PASSWORD,
    MEET_MATRIX_STORE: store,
    MEET_MATRIX_ROOMS: `{ "town-hall" = "${roomId}" }`,
  });
  let guest;
  let host;
  let member;
  try {
    guest = await joinPage(browser, hall.url, 'town-hall', 'Gus');
    assert.equal(await chatRoomOf(guest), roomId);
    host = await openPage(browser, 'alice (host)');
    const { page } = host;
    await page.goto(`${hall.url}/m/town-hall?join=now#openid=${base64urlJson(await alice.requestOpenIdToken())}`);
    await page.waitForFunction(() => window.meet && window.meet.participantId, null, { timeout: 15000 });
    assert.equal((await page.evaluate(() => window.meet.identity())).host, true);
    // A guest has no Remove button, not even on a tile it has: the host's.
    const hostId = await page.evaluate(() => window.meet.participantId);
    await guest.page.locator(`[data-participant-id="${hostId}"]`).waitFor({ timeout: 10000 });
    assert.equal(await guest.page.getByRole('button', { name: /^Remove / }).count(), 0);

    // Bob, invited to the room, comes in as a participant; the power
    // levels Alice gives him make him a host while he is in, and taking
    // them away unmakes him, his page's controls following.
    await alice.invite(roomId, bob.userId);
    member = await openPage(browser, 'bob (made host)');
    const bobPage = member.page;
    await bobPage.goto(`${hall.url}/m/town-hall?join=now#openid=${base64urlJson(await bob.requestOpenIdToken())}`);
    await bobPage.waitForFunction(() => window.meet && window.meet.participantId, null, { timeout: 15000 });
    const bobId = await bobPage.evaluate(() => window.meet.participantId);
    await bobPage.locator(`[data-participant-id="${hostId}"]`).waitFor({ timeout: 10000 });
    assert.equal(await bobPage.getByRole('button', { name: /^Remove / }).count(), 0);
    await alice.setPower(roomId, bob.userId, 50);
    await bobPage.getByRole('button', { name: 'Remove Gus from the meeting' }).waitFor({ timeout: 10000 });
    await bobPage.locator('#meeting').getByText('Signed in as @bob:localhost (host)').waitFor({ timeout: 3000 });
    assert.ok(await bobPage.getByRole('button', { name: 'Lock meeting' }).isVisible());
    await until('Alice to see Bob as a host', () => page.evaluate(
      (id) => window.meet.state.participants.get(id)?.role === 'host', bobId,
    ), 5000);
    await alice.setPower(roomId, bob.userId, 0);
    await bobPage.locator('#meeting').getByText('Signed in as @bob:localhost', { exact: true }).waitFor({ timeout: 10000 });
    assert.equal(await bobPage.getByRole('button', { name: /^Remove / }).count(), 0);
    assert.equal(await bobPage.getByRole('button', { name: 'Lock meeting' }).isVisible(), false);
    await member.context.close();
    member = null;

    await page.getByRole('button', { name: 'Remove Gus from the meeting' }).click({ timeout: 10000 });
    await guest.page.getByRole('heading', { name: 'You left the meeting' }).waitFor({ timeout: 10000 });
    assert.match(await guest.page.locator('#left-reason').innerText(), /host removed you/);
    await until('the host to see Gus go', () => page.evaluate(
      () => window.meet.state.participants.size === 0,
    ), 10000);
  } finally {
    await cleanUp(
      () => member?.context.close(),
      () => host?.context.close(),
      () => guest?.context.close(),
      () => hall.stop(),
      () => rmSync(store, { recursive: true, force: true }),
    );
  }
}));

test('chat latency, both ways (measurement)', { timeout: 300000 }, (t) => withLogs(async () => {
  const roomId = await openRoom('chat-latency');
  const lat = await join_(t, 'chat-latency', 'Lat');
  assert.equal(await chatRoomOf(lat), roomId);

  // alice's /sync long-poll: when each bot message reaches a Matrix client.
  const arrivals = new Map();
  const waiters = new Map();
  const stopSync = await alice.syncLoop(roomId, (e, at) => {
    if (e.type !== 'm.room.message' || e.sender !== botId) return;
    arrivals.set(e.content.body, at);
    waiters.get(e.content.body)?.();
  });
  const arrival = (body, timeoutMs = 15000) => {
    if (arrivals.has(body)) return Promise.resolve(arrivals.get(body));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`"${body}" did not reach Matrix in ${timeoutMs} ms`)), timeoutMs);
      waiters.set(body, () => { clearTimeout(timer); resolve(arrivals.get(body)); });
    });
  };
  /** When the page's WebSocket got the chat_event message with `body`. */
  const pageArrival = async (body) => {
    await lat.page.waitForFunction((b) => window.__chatFrames.some((f) => f.msg.type === 'chat_event'
      && f.msg.event.kind === 'message' && f.msg.event.body === b), body, { timeout: 15000, polling: 10 });
    return lat.page.evaluate((b) => window.__chatFrames.find((f) => f.msg.type === 'chat_event'
      && f.msg.event.kind === 'message' && f.msg.event.body === b).t, body);
  };

  try {
    const rounds = 100;
    const out = [];
    for (let i = -3; i < rounds; i += 1) { // three to warm up
      const body = `out ${i}`;
      const sentAt = await lat.page.evaluate((b) => {
        const t = Date.now();
        if (!window.meet.sendChat(b)) throw new Error('not sent');
        return t;
      }, body);
      const at = await arrival(`Lat: ${body}`);
      if (i >= 0) out.push(at - sentAt);
    }
    console.log(`# measured: chat meeting → Matrix (page sends, other client's /sync sees it), ${rounds} messages: ${summary(out)}`);

    const inbound = [];
    for (let i = -3; i < rounds; i += 1) {
      const body = `in ${i}`;
      const sentAt = Date.now();
      await alice.sendMessage(roomId, body);
      const at = await pageArrival(body);
      if (i >= 0) inbound.push(at - sentAt);
    }
    console.log(`# measured: chat Matrix → meeting (client sends, page's WebSocket gets it), ${rounds} messages: ${summary(inbound)}`);
  } finally {
    await stopSync();
  }
}));
