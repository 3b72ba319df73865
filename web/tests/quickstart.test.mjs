// The README's run command, end to end: ops/run.sh with no homeserver
// configured brings up a local Synapse and the chat bot, prints the link
// that opens a first meeting as its host (the server admits no anonymous
// guests), meetings get chat with participants as ghost users, and
// Synapse stops with the server.
// Uses the already built server (MEET_SERVER_BIN) instead of a release
// build, and its own data directory and ports.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  assertCleanExit, freePort, launchBrowser, joinPage, MatrixClient, openPage, until,
} from './harness.mjs';

const repo = new URL('../..', import.meta.url).pathname;

function portOpen(port) {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

test('ops/run.sh brings up a homeserver and meetings have chat', { timeout: 300000 }, async (t) => {
  const data = mkdtempSync(join(tmpdir(), 'meet-quickstart-'));
  t.after(() => rmSync(data, { recursive: true, force: true }));
  const synapsePort = await freePort();
  const run = spawn(join(repo, 'ops/run.sh'), ['--listen', '127.0.0.1:0', '--media-port', '0'], {
    env: {
      ...process.env,
      MEET_SERVER_BIN: process.env.SFU_BIN,
      MEET_DATA_DIR: data,
      MEET_SYNAPSE_PORT: String(synapsePort),
      MEET_WORKERS: '1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  run.stderr.on('data', (d) => { log += d; });
  // 'close': it has exited and all of its stderr (the server's too) is in.
  const exited = new Promise((resolve) => run.once('close', (code, signal) => resolve({ code, signal })));
  const browser = await launchBrowser();
  let outcome;
  try {
    const hostLink = await new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`run.sh did not start the server:\n${log}`)), 180000);
      run.stdout.on('data', (d) => {
        out += d;
        const m = out.match(/open a meeting as its host: (\S+)/);
        if (m) { clearTimeout(timer); resolve(new URL(m[1])); }
      });
      run.once('exit', (code) => reject(new Error(`run.sh exited with ${code}:\n${log}`)));
    });
    assert.match(log, new RegExp(`Matrix homeserver on http://127.0.0.1:${synapsePort}`));
    const url = hostLink.origin;
    const room = decodeURIComponent(hostLink.pathname.replace(/^\/m\//, ''));

    // Closed by default: a stranger with a name only waits in the lobby
    // for a host (and there is none yet).
    const stranger = await openPage(browser, 'Stranger');
    await stranger.page.goto(`${url}/m/${room}?name=Stranger&join=now`);
    await stranger.page.getByText('Waiting for a host to let you in').waitFor({ timeout: 15000 });
    assert.equal(await stranger.page.evaluate(() => window.meet.participantId), null);
    await stranger.context.close();

    // A newcomer adds a Matrix account the way the README says.
    execFileSync(join(repo, 'ops/synapse.sh'), ['register', join(data, 'synapse'), 'nina', 'nina-password']);
    const nina = await MatrixClient.login(`http://127.0.0.1:${synapsePort}`, 'nina', 'nina-password');

    // She opens the meeting's room by signing in to the meeting with
    // Matrix: the room is invite-only, and she is invited as its moderator.
    const res = await fetch(`${url}/api/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ room, openid_token: await nina.requestOpenIdToken() }),
    });
    const token = await res.json();
    assert.equal(res.status, 200, JSON.stringify(token));
    assert.equal(token.host, true);
    const roomId = await nina.joinRoom(token.room_id);

    const quinn = await joinPage(browser, url, room, 'Quinn', { invite: hostLink.searchParams.get('invite') });
    assert.deepEqual(await quinn.page.evaluate(() => window.meet.role()), { role: 'host', guest: true });
    await quinn.page.waitForFunction(() => window.meet.chatRoomId(), null, { timeout: 20000 });
    assert.equal(roomId, await quinn.page.evaluate(() => window.meet.chatRoomId()));
    await quinn.page.getByLabel('Message').fill('hello from the quick start');
    await quinn.page.getByLabel('Message').press('Enter');
    const event = await until('the message in Matrix', async () => {
      const chunk = await nina.messages(roomId);
      return chunk.find((e) => e.type === 'm.room.message' && e.content.body === 'hello from the quick start');
    }, 15000, 250);
    assert.match(event.sender, /^@meet_quinn_[0-9a-f]{16}:localhost$/, 'a ghost user of its own');
    await nina.sendMessage(roomId, 'welcome, Quinn');
    await until('the reply in the meeting', () => quinn.page.evaluate(
      () => window.meet.chatMessages().some((m) => m.body === 'welcome, Quinn'),
    ), 10000);
  } finally {
    await browser.close();
    run.kill('SIGTERM');
    outcome = await exited;
  }
  // run.sh passes SIGTERM on to the server and exits with its status.
  assertCleanExit('ops/run.sh (the server)', outcome, log);
  assert.equal(await portOpen(synapsePort), false, 'Synapse stops with the server');
});
