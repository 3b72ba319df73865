// Chat where servers share meetings, with browsers: three servers behind
// the nginx sample, each with the chat bridge (a real Synapse, a real
// redis-server), and three pages in a meeting whose room is a Matrix
// room. The meeting's server is killed mid-meeting: every page is back on
// another server with the meeting's chat as it was, and what is written
// after reaches every page and the room; no message is lost or doubled.
// Runs inside ops/netns.sh.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cleanUp, MatrixClient, registerUser, startSynapse,
} from './harness.mjs';
import { IDS, killTheOwner, meetingBehindNginx } from './cluster.mjs';
import { chatRoomOf, typeChat, waitForChat } from './chat.mjs';

const BOT_PASSWORD = 'meetbot-test-password';

/** The texts of a page's chat messages, in order; whether all were sent. */
const sentTexts = (ms) => ms.map((m) => m.body);
const allSent = (ms) => ms.every((m) => !m.pending);

test('with chat, the meeting\'s server is killed: every page is back with the meeting\'s chat, nothing lost or doubled', {
  timeout: 1200000, // a first run installs Synapse (pip)
}, async (t) => {
  const syn = await startSynapse();
  const stores = Object.fromEntries(IDS.map((id) => [id, mkdtempSync(join(tmpdir(), `meet-chat-${id}-`))]));
  t.after(() => cleanUp(
    () => syn.destroy(),
    ...IDS.map((id) => () => rmSync(stores[id], { recursive: true, force: true })),
  ));
  const botId = await registerUser(syn, 'meetbot', BOT_PASSWORD);
  await registerUser(syn, 'alice', 'alice-test-password');
  const alice = await MatrixClient.login(syn.url, 'alice', 'alice-test-password');
  // The meeting's room is Alice's, bound by configuration: the pages are
  // anonymous guests, who never make a room.
  const roomId = await alice.createRoom({ preset: 'private_chat', name: 'Board' });
  await alice.invite(roomId, botId);
  const { servers, pages, owner } = await meetingBehindNginx(t, (id) => ({
    MEET_MATRIX_HOMESERVER: syn.url,
    MEET_MATRIX_USER: 'meetbot',
    MEET_MATRIX_PASSWORD: BOT_PASSWORD,
    MEET_MATRIX_STORE: stores[id],
    MEET_MATRIX_ROOMS: `{ "board" = "${roomId}" }`,
  }));
  for (const p of pages) assert.equal(await chatRoomOf(p), roomId);

  // One at a time, so that the room has them in this order too.
  const said = ['from Alice', 'from Bob', 'from Matrix'];
  const write = [() => typeChat(pages[0], said[0]), () => typeChat(pages[1], said[1]), () => alice.sendMessage(roomId, said[2])];
  for (const [i, w] of write.entries()) {
    await w();
    for (const p of pages) {
      await waitForChat(p, `${i + 1} messages, sent`, (ms) => ms.length === i + 1 && allSent(ms), 15000);
    }
  }

  const {
    next, seated, decoding, killed,
  } = await killTheOwner(servers, pages, owner);
  for (const p of pages) {
    const ms = await waitForChat(p, 'the meeting\'s chat as it was', (list) => list.length === 3, 10000);
    assert.deepEqual(sentTexts(ms), said, `${p.name}'s chat after the move`);
    assert.ok(allSent(ms), `${p.name}: ${JSON.stringify(ms)}`);
  }
  const chatBack = performance.now() - killed;
  console.log(`# measured: killed ${owner}: pages joined on ${next} after ${Math.round(seated)} ms, decoding after ${Math.round(decoding)} ms, chat history shown after ${Math.round(chatBack)} ms`);

  await typeChat(pages[2], 'after the move');
  for (const p of pages) {
    await waitForChat(p, 'the new message, sent', (ms) => sentTexts(ms).length === 4 && allSent(ms), 15000);
    assert.deepEqual(sentTexts(await p.page.evaluate(() => window.meet.chatMessages())), [...said, 'after the move']);
  }
  // In the room, each of the meeting's messages once.
  const texts = (await alice.messages(roomId, { limit: 100 }))
    .map((e) => e.content?.['meet.author']?.text)
    .filter(Boolean)
    .sort();
  assert.deepEqual(texts, ['after the move', 'from Alice', 'from Bob']);
});
