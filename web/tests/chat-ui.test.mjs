// The chat panel and the Matrix sign-in of the meeting page, against a
// mocked server: the page files are served by a small static server and
// the signalling WebSocket is answered by the test (page.routeWebSocket).
// Needs neither the real server nor a homeserver; chat.test.mjs covers the
// real thing end to end.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, openPage, startStaticServer, until, cleanUp } from './harness.mjs';

const ALICE_TOKEN = { access_token: 'openid-alice', token_type: 'Bearer', matrix_server_name: 'localhost', expires_in: 3600 };
const CHAT = { room_id: '!room:localhost', room_alias: '#meet-ui:localhost', delayed: false };

let browser;
let web;
/** The same pages, trusting Element Desktop (`vector://vector`) too. */
let desktop;
/** Bodies POSTed to /api/token. */
const tokenRequests = [];

before(async () => {
  const routes = {
    '/api/token': async (req, body) => {
      const request = JSON.parse(body);
      tokenRequests.push(request);
      if (request.openid_token && request.openid_token.access_token === ALICE_TOKEN.access_token) {
        return { json: { token: `meeting-token-for-${request.room}`, user_id: '@alice:localhost', name: 'Alice', host: false } };
      }
      return { status: 403, json: { error: 'not_room_member', message: 'You are not a member of this meeting\'s room.' } };
    },
    '/parent': async (req, body, url) => ({ html: parentPage(url.searchParams.get('mode'), url.searchParams.get('widget')) }),
    '/desktop': async (req, body, url) => ({ html: desktopPage(url.searchParams.get('widget')) }),
  };
  web = await startStaticServer(routes);
  desktop = await startStaticServer(routes, { widgetOrigins: ['vector://vector'] });
  browser = await launchBrowser();
});

after(() => cleanUp(() => browser?.close(), () => web?.close(), () => desktop?.close()));

/**
 * Answers the page's WebSocket like the server would: `joined` (with
 * `chat` and `identity` as given) and `chat_history` after `join`.
 * Returns { sent: [client messages], push(msg), close(code, reason) }.
 */
async function mockServer(context, { chat = CHAT, identity = null, history = [], refuseTokens = false } = {}) {
  const m = { sent: [], ws: null };
  await context.routeWebSocket(/\/ws$/, (ws) => {
    m.ws = ws;
    ws.onMessage((data) => {
      const msg = JSON.parse(String(data));
      m.sent.push(msg);
      if (msg.type === 'join' && msg.token && refuseTokens) {
        ws.send(JSON.stringify({ type: 'error', code: 'invalid_token', message: 'The access token has expired.' }));
      } else if (msg.type === 'join') {
        ws.send(JSON.stringify({
          type: 'joined', v: 1, room: msg.room, participant_id: 'p-self', participants: [], chat, identity,
        }));
        if (chat) ws.send(JSON.stringify({ type: 'chat_history', events: history }));
      }
    });
  });
  m.push = (msg) => m.ws.send(JSON.stringify(msg));
  m.close = (code, reason) => m.ws.close({ code, reason });
  m.chatSent = () => m.sent.filter((x) => x.type === 'chat');
  return m;
}

/** Opens `path` with a mocked server; the page closes when test `t` ends. */
async function openMeeting(t, label, path, mockOptions) {
  const { page, context } = await openPage(browser, label, { t });
  const server = await mockServer(context, mockOptions);
  await page.goto(`${web.url}${path}`);
  return { page, context, server };
}

async function joined(page) {
  await page.waitForFunction(() => window.meet && window.meet.participantId, null, { timeout: 10000 });
}

const messages = (page) => page.evaluate(() => window.meet.chatMessages());

const msg = (id, name, body, extra = {}) => ({
  kind: 'message', id, sender: `@${name.toLowerCase()}:localhost`, name, body, ts: 1700000000000, reply_to: null, pending: false, ...extra,
});

test('chat history and live events render in order, as text', async (t) => {
  const history = [
    msg('$a', 'Alice', 'hello'),
    msg('local-1', 'Carol', 'from the meeting', { sender: '@meetbot:localhost', pending: true }),
    msg('$b', 'Bob', '> <@alice:localhost> hello\n\nhi Alice', { reply_to: '$a' }),
    { kind: 'reaction', id: '$r1', target: '$a', key: '👍', name: 'Bob' },
    { kind: 'reaction', id: '$r2', target: '$a', key: '👍', name: 'Carol' },
    { kind: 'reaction', id: '$r3', target: '$a', key: '🎉', name: 'Bob' },
    // Unknown targets are ignored.
    { kind: 'edit', id: '$nope', body: 'x' },
    { kind: 'reaction', id: '$r4', target: '$nope', key: '👎', name: 'Bob' },
    { kind: 'redact', id: '$nope' },
    { kind: 'delivered', local_id: 'local-99', id: '$zz' },
  ];
  const { page, server } = await openMeeting(t, 'Pat', '/m/ui-chat?name=Pat&join=now', { history });
  await joined(page);
  assert.equal(await page.evaluate(() => window.meet.chatRoomId()), '!room:localhost');
  await until('the history to show', async () => (await messages(page)).length === 3, 5000);

  server.push({ type: 'chat_event', event: { kind: 'delivered', local_id: 'local-1', id: '$c' } });
  server.push({ type: 'chat_event', event: { kind: 'edit', id: '$a', body: 'hello, edited' } });
  server.push({ type: 'chat_event', event: { kind: 'redact', id: '$r3' } });
  server.push({ type: 'chat_event', event: msg('$d', 'Alice', 'doomed') });
  server.push({ type: 'chat_event', event: { kind: 'reaction', id: '$r5', target: '$d', key: '👀', name: 'Bob' } });
  server.push({ type: 'chat_event', event: { kind: 'redact', id: '$d' } });
  server.push({ type: 'chat_event', event: msg('$e', 'Mallory', '<img src=x onerror="window.__xss=1"><b>bold</b>', { sender: '@mallory:localhost' }) });
  // A duplicate id changes nothing.
  server.push({ type: 'chat_event', event: msg('$e', 'Mallory', 'again') });

  const expected = [
    { id: '$a', name: 'Alice', sender: '@alice:localhost', body: 'hello, edited', pending: false, edited: true, deleted: false, replyTo: null, reactions: { '👍': 2 } },
    { id: '$c', name: 'Carol', sender: '@meetbot:localhost', body: 'from the meeting', pending: false, edited: false, deleted: false, replyTo: null, reactions: {} },
    { id: '$b', name: 'Bob', sender: '@bob:localhost', body: 'hi Alice', pending: false, edited: false, deleted: false, replyTo: '$a', reactions: {} },
    { id: '$d', name: 'Alice', sender: '@alice:localhost', body: '', pending: false, edited: false, deleted: true, replyTo: null, reactions: {} },
    { id: '$e', name: 'Mallory', sender: '@mallory:localhost', body: '<img src=x onerror="window.__xss=1"><b>bold</b>', pending: false, edited: false, deleted: false, replyTo: null, reactions: {} },
  ];
  await until('the live events to apply', async () => (await messages(page)).length === 5 && (await messages(page))[3].deleted, 5000);
  assert.deepEqual(await messages(page), expected);

  // What people see.
  const log = page.getByRole('log');
  const a = log.locator('[data-id="$a"]');
  assert.equal(await a.locator('.chat-name').getAttribute('title'), '@alice:localhost');
  assert.match(await a.innerText(), /hello, edited \(edited\)/);
  const thumbs = a.locator('.chat-reactions li', { hasText: '👍' });
  assert.equal((await thumbs.innerText()).trim(), '👍 2');
  assert.equal(await thumbs.getAttribute('title'), 'Bob, Carol');
  assert.equal(await a.locator('.chat-reactions li', { hasText: '🎉' }).count(), 0);
  assert.match(await log.locator('[data-id="$b"] .chat-quote').innerText(), /Alice: hello, edited/);
  assert.match(await log.locator('[data-id="$d"]').innerText(), /Message deleted/);
  assert.equal(await log.locator('img, b').count(), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.equal(await log.getAttribute('aria-live'), 'polite');
});

test('pending messages are dimmed with a hint until delivered', async (t) => {
  const { page, server } = await openMeeting(t, 'Pat', '/m/ui-pending?name=Pat&join=now');
  await joined(page);
  server.push({ type: 'chat_event', event: msg('local-7', 'Carol', 'on its way', { pending: true }) });
  const item = page.getByRole('log').locator('[data-id="local-7"]');
  await item.waitFor({ timeout: 5000 });
  assert.ok(await item.evaluate((e) => e.classList.contains('pending')));
  assert.match(await item.innerText(), /sending…/);
  server.push({ type: 'chat_event', event: { kind: 'delivered', local_id: 'local-7', id: '$x' } });
  const delivered = page.getByRole('log').locator('[data-id="$x"]');
  await delivered.waitFor({ timeout: 5000 });
  assert.ok(!(await delivered.evaluate((e) => e.classList.contains('pending'))));
  assert.doesNotMatch(await delivered.innerText(), /sending…/);
});

test('Enter sends the trimmed text; an empty input sends nothing', async (t) => {
  const { page, server } = await openMeeting(t, 'Pat', '/m/ui-send?name=Pat&join=now');
  await joined(page);
  const box = page.getByRole('textbox', { name: 'Message', exact: true });
  assert.equal(await page.getByLabel('Message', { exact: true }).count(), 1);
  await box.press('Enter');
  await box.fill('   ');
  await box.press('Enter');
  await box.fill('  hello there  ');
  await box.press('Enter');
  // One socket keeps the order: anything the empty tries sent came first.
  await until('the chat message to be sent', () => server.chatSent().length >= 1, 3000);
  assert.deepEqual(server.chatSent(), [{ type: 'chat', text: 'hello there' }]);
  assert.equal(await box.inputValue(), '');
  // Send with the box empty sends nothing either; with text it sends.
  await page.getByRole('button', { name: 'Send' }).click();
  await box.fill('second');
  await page.getByRole('button', { name: 'Send' }).click();
  await until('the second message', () => server.chatSent().some((m) => m.text === 'second'), 3000);
  assert.deepEqual(server.chatSent(), [{ type: 'chat', text: 'hello there' }, { type: 'chat', text: 'second' }]);
});

test('chat_status: the page says when chat is delayed', async (t) => {
  const { page, context, server } = await openMeeting(t, 'Pat', '/m/ui-delayed?name=Pat&join=now');
  await joined(page);
  const notice = page.getByRole('status').filter({ hasText: 'Chat is delayed' });
  assert.equal(await page.evaluate(() => window.meet.chatDelayed()), false);
  assert.equal(await notice.count(), 0);
  server.push({ type: 'chat_status', delayed: true });
  await notice.waitFor({ state: 'visible', timeout: 3000 });
  assert.equal(await page.evaluate(() => window.meet.chatDelayed()), true);
  server.push({ type: 'chat_status', delayed: false });
  await notice.waitFor({ state: 'detached', timeout: 3000 });
  assert.equal(await page.evaluate(() => window.meet.chatDelayed()), false);
  await context.close();

  // Delayed from the start.
  const second = await openMeeting(t, 'Pat', '/m/ui-delayed2?name=Pat&join=now', { chat: { ...CHAT, delayed: true } });
  await joined(second.page);
  await second.page.getByRole('status').filter({ hasText: 'Chat is delayed' }).waitFor({ state: 'visible', timeout: 3000 });
});

test('the Chat button toggles the panel and counts unread messages', async (t) => {
  const { page, context, server } = await openMeeting(t, 'Pat', '/m/ui-unread?name=Pat&join=now');
  await joined(page);
  const button = page.getByRole('button', { name: 'Chat' });
  const box = page.getByRole('textbox', { name: 'Message', exact: true });
  assert.equal(await button.getAttribute('aria-expanded'), 'true');
  assert.ok(await box.isVisible());
  await button.click();
  assert.equal(await button.getAttribute('aria-expanded'), 'false');
  assert.ok(!(await box.isVisible()));
  server.push({ type: 'chat_event', event: msg('$1', 'Alice', 'one') });
  server.push({ type: 'chat_event', event: msg('$2', 'Alice', 'two') });
  await until('the unread count', async () => (await page.locator('#chat-unread').innerText()).startsWith('2'), 3000);
  assert.match(await button.innerText(), /Chat\s*2/);
  await button.click();
  assert.ok(await box.isVisible());
  assert.ok(!(await page.locator('#chat-unread').isVisible()));
  await context.close();

  // Narrow screens start with the panel closed.
  const narrow = await openMeeting(t, 'Pat', '/m/ui-narrow?name=Pat&join=now');
  await narrow.page.setViewportSize({ width: 480, height: 800 });
  await narrow.page.reload();
  await joined(narrow.page);
  const nbutton = narrow.page.getByRole('button', { name: 'Chat' });
  assert.equal(await nbutton.getAttribute('aria-expanded'), 'false');
  await nbutton.click();
  assert.ok(await narrow.page.getByRole('textbox', { name: 'Message', exact: true }).isVisible());
});

test('a meeting without chat shows no chat', async (t) => {
  const { page } = await openMeeting(t, 'Pat', '/m/ui-nochat?name=Pat&join=now', { chat: null });
  await joined(page);
  assert.equal(await page.getByRole('button', { name: 'Chat' }).count(), 0);
  assert.ok(!(await page.locator('#chat').isVisible()));
  assert.equal(await page.evaluate(() => window.meet.chatRoomId()), null);
  assert.deepEqual(await page.evaluate(() => window.meet.chatMessages()), []);
});

test('removed from the Matrix room: the page says so and offers to rejoin', async (t) => {
  const { page, server } = await openMeeting(t, 'Pat', '/m/ui-removed?name=Pat&join=now');
  await joined(page);
  server.push({ type: 'error', code: 'removed', message: 'You were banned from the meeting\'s room.' });
  server.close(1000, 'removed');
  await page.getByRole('heading', { name: 'You left the meeting' }).waitFor({ timeout: 3000 });
  assert.match(await page.locator('#left-reason').innerText(), /banned from the meeting's room/);
  assert.ok(await page.getByRole('button', { name: 'Rejoin' }).isVisible());
});

test('#openid=: signs in through /api/token and joins with the meeting token', async (t) => {
  const frag = Buffer.from(JSON.stringify(ALICE_TOKEN)).toString('base64url');
  const { page, server } = await openMeeting(t, 'Alice', `/m/ui-openid?join=now#openid=${frag}`,
    { identity: { user_id: '@alice:localhost', host: false } });
  await joined(page);
  const join = server.sent.find((m) => m.type === 'join');
  assert.deepEqual(join, { type: 'join', v: 1, room: 'ui-openid', name: 'Alice', token: 'meeting-token-for-ui-openid' });
  const request = tokenRequests.find((r) => r.room === 'ui-openid');
  assert.deepEqual(request, { room: 'ui-openid', openid_token: ALICE_TOKEN });
  assert.equal(new URL(page.url()).hash, '', 'the token stayed in the address bar');
  await page.locator('#meeting').getByText('Signed in as @alice:localhost').waitFor({ timeout: 3000 });
  assert.deepEqual(await page.evaluate(() => window.meet.identity()), { user_id: '@alice:localhost', host: false });
});

test('#openid= refused: the reason shows and a guest can still join', async (t) => {
  const frag = Buffer.from(JSON.stringify({ ...ALICE_TOKEN, access_token: 'openid-bob' })).toString('base64url');
  const { page, server } = await openMeeting(t, 'Bob', `/m/ui-openid-refused?join=now#openid=${frag}`);
  await page.getByRole('alert').filter({ hasText: 'not a member of this meeting\'s room' }).waitFor({ timeout: 5000 });
  assert.ok(await page.locator('#prejoin').isVisible());
  await page.getByLabel('Your name').fill('Bob');
  await page.getByRole('button', { name: 'Join meeting' }).click();
  await joined(page);
  assert.deepEqual(server.sent.find((m) => m.type === 'join'), { type: 'join', v: 1, room: 'ui-openid-refused', name: 'Bob' });
  assert.equal(await page.evaluate(() => window.meet.identity()), null);
});

test('a meeting token the server refuses: back to the start, where a guest can join', async (t) => {
  const frag = Buffer.from(JSON.stringify(ALICE_TOKEN)).toString('base64url');
  const { page, server } = await openMeeting(t, 'Alice', `/m/ui-token-refused?join=now#openid=${frag}`, { refuseTokens: true });
  await page.getByRole('alert').filter({ hasText: 'The access token has expired' }).waitFor({ timeout: 5000 });
  assert.ok(await page.locator('#prejoin').isVisible());
  assert.equal(server.sent.filter((m) => m.type === 'join').length, 1);
  await page.getByLabel('Your name').fill('Alice as a guest');
  await page.getByRole('button', { name: 'Join meeting' }).click();
  await joined(page);
  assert.deepEqual(server.sent.filter((m) => m.type === 'join').at(-1), { type: 'join', v: 1, room: 'ui-token-refused', name: 'Alice as a guest' });
});

/**
 * A stand-in for Element: embeds the widget and plays the client side of
 * the widget API. `mode`: "allowed" answers get_openid at once, "request"
 * says it asks the user and sends openid_credentials later, "blocked"
 * refuses.
 */
function parentPage(mode, widgetUrl) {
  return `<!doctype html><title>Element stand-in</title>
<iframe src="${widgetUrl.replace(/"/g, '&quot;')}" allow="camera; microphone" style="width:1000px;height:700px"></iframe>
<script>
const TOKEN = ${JSON.stringify(ALICE_TOKEN)};
const frame = document.querySelector('iframe');
const widgetOrigin = new URL(frame.src).origin;
window.received = [];
const waiting = new Map();
let n = 0;
function toWidget(action, data) {
  const requestId = 'client-' + (++n);
  frame.contentWindow.postMessage({ api: 'toWidget', widgetId: 'w1', requestId, action, data }, widgetOrigin);
  return new Promise((resolve) => waiting.set(requestId, resolve));
}
window.addEventListener('message', (ev) => {
  if (ev.origin !== widgetOrigin || ev.source !== frame.contentWindow) return;
  const msg = ev.data;
  window.received.push(msg);
  const reply = (response) => frame.contentWindow.postMessage({ ...msg, response }, widgetOrigin);
  if (msg.api === 'toWidget' && msg.response) { waiting.get(msg.requestId)?.(msg.response); return; }
  if (msg.api !== 'fromWidget') return;
  if (msg.action !== 'get_openid') { reply({}); return; }
  if (${JSON.stringify(mode)} === 'allowed') reply({ state: 'allowed', ...TOKEN });
  else if (${JSON.stringify(mode)} === 'blocked') reply({ state: 'blocked' });
  else {
    reply({ state: 'request' });
    setTimeout(async () => {
      window.credentialsAck = await toWidget('openid_credentials', { state: 'allowed', original_request_id: msg.requestId, ...TOKEN });
    }, 300);
  }
});
frame.addEventListener('load', async () => {
  window.versions = await toWidget('supported_api_versions', {});
  window.capabilities = await toWidget('capabilities', {});
  window.notified = await toWidget('notify_capabilities', { requested: [], approved: [] });
});
</script>`;
}

async function openWidget(t, mode, room, parent = web.origin('localhost')) {
  // The stand-in for Element runs on another origin than the meeting: the
  // one the meeting page trusts (as the server's `widget_origins`) unless
  // the test says otherwise.
  const widget = `${web.url}/m/${room}?widgetId=w1&parentUrl=${encodeURIComponent(`${parent}/parent`)}`
    + '&userId=%40alice%3Alocalhost&displayName=Alice%20M&roomId=%21r%3Alocalhost';
  const { page, context } = await openPage(browser, `widget-${mode}`, { t });
  const server = await mockServer(context, { identity: mode === 'blocked' ? null : { user_id: '@alice:localhost', host: false } });
  await page.goto(`${parent}/parent?mode=${mode}&widget=${encodeURIComponent(widget)}`);
  const frame = page.frameLocator('iframe');
  return { page, context, server, frame };
}

for (const mode of ['allowed', 'request']) {
  test(`Element widget (${mode}): asks Element for OpenID and joins signed in`, async (t) => {
    const room = `ui-widget-${mode}`;
    const { page, server, frame } = await openWidget(t, mode, room);
    await frame.getByText('Signed in as @alice:localhost').waitFor({ timeout: 10000 });
    assert.equal(await frame.getByLabel('Your name').inputValue(), 'Alice');
    assert.deepEqual(await page.evaluate(() => window.capabilities), { capabilities: [] });
    assert.deepEqual(await page.evaluate(() => window.notified), {});
    assert.ok((await page.evaluate(() => window.versions)).supported_versions.length > 0);
    const ask = (await page.evaluate(() => window.received)).find((m) => m.action === 'get_openid');
    assert.equal(ask.api, 'fromWidget');
    assert.equal(ask.widgetId, 'w1');
    assert.deepEqual(ask.data, {});
    if (mode === 'request') {
      await until('the widget to acknowledge openid_credentials', () => page.evaluate(() => window.credentialsAck), 3000);
      assert.deepEqual(await page.evaluate(() => window.credentialsAck), {});
    }
    assert.deepEqual(tokenRequests.find((r) => r.room === room), { room, openid_token: ALICE_TOKEN });
    await frame.getByRole('button', { name: 'Join meeting' }).click();
    await until('the join', () => server.sent.find((m) => m.type === 'join'), 5000);
    assert.deepEqual(server.sent.find((m) => m.type === 'join'), { type: 'join', v: 1, room, name: 'Alice', token: `meeting-token-for-${room}` });
    await frame.locator('#meeting').getByText('Signed in as @alice:localhost').waitFor({ timeout: 5000 });
  });
}

test('Element widget (blocked): says why and lets the user join as a guest', async (t) => {
  const room = 'ui-widget-blocked';
  const { server, frame } = await openWidget(t, 'blocked', room);
  await frame.getByRole('alert').filter({ hasText: 'Could not sign in with Matrix' }).waitFor({ timeout: 10000 });
  assert.equal(await frame.getByLabel('Your name').inputValue(), 'Alice M');
  await frame.getByRole('button', { name: 'Join meeting' }).click();
  await until('the join', () => server.sent.find((m) => m.type === 'join'), 5000);
  assert.deepEqual(server.sent.find((m) => m.type === 'join'), { type: 'join', v: 1, room, name: 'Alice M' });
});

test('a parent page that is no configured Matrix client gets no widget API', async (t) => {
  const room = 'ui-widget-untrusted';
  // Same host, same page, but a parent origin the meeting does not trust.
  const { page, server, frame } = await openWidget(t, 'allowed', room, web.origin('127.0.0.1'));
  await frame.getByRole('button', { name: 'Join meeting' }).waitFor({ timeout: 10000 });
  // Time for a widget to have asked for OpenID, had it been one.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const received = await page.evaluate(() => window.received || []);
  assert.equal(received.filter((m) => m.api === 'fromWidget').length, 0, JSON.stringify(received));
  assert.equal(tokenRequests.filter((r) => r.room === room).length, 0);
  assert.equal(await frame.getByText('Signed in as').count(), 0);
  await frame.getByLabel('Your name').fill('Alice');
  await frame.getByRole('button', { name: 'Join meeting' }).click();
  await until('the join', () => server.sent.find((m) => m.type === 'join'), 5000);
  assert.equal(server.sent.find((m) => m.type === 'join').token, undefined);
});

/**
 * A stand-in for Element Desktop, whose pages are at vector://vector, an
 * origin no test server can have: the meeting is in a frame of this page
 * (same origin), whose postMessage is wrapped to hear what the widget
 * sends its parent and to whom, and which answers as Element Desktop's
 * messages arrive: MessageEvents of origin vector://vector from the
 * parent window. It grants OpenID at once.
 */
function desktopPage(widgetUrl) {
  return `<!doctype html><title>Element Desktop stand-in</title>
<iframe src="${widgetUrl.replace(/"/g, '&quot;')}" allow="camera; microphone" style="width:1000px;height:700px"></iframe>
<script>
const ELEMENT = 'vector://vector';
const TOKEN = ${JSON.stringify(ALICE_TOKEN)};
const frame = document.querySelector('iframe');
/** What the widget posted to its parent: { msg, targetOrigin }. */
window.sent = [];
const waiting = new Map();
let n = 0;
// Asynchronously, as postMessage delivers.
function deliver(data) {
  setTimeout(() => frame.contentWindow.dispatchEvent(new MessageEvent('message', { data, origin: ELEMENT, source: window })), 0);
}
function toWidget(action, data) {
  const requestId = 'desktop-' + (++n);
  deliver({ api: 'toWidget', widgetId: 'w1', requestId, action, data });
  return new Promise((resolve) => waiting.set(requestId, resolve));
}
window.postMessage = (msg, targetOrigin) => {
  window.sent.push({ msg, targetOrigin });
  // Element Desktop gets only what is addressed to its origin.
  if (targetOrigin !== ELEMENT) return;
  if (msg.api === 'toWidget' && msg.response) { waiting.get(msg.requestId)?.(msg.response); return; }
  if (msg.api !== 'fromWidget') return;
  deliver({ ...msg, response: msg.action === 'get_openid' ? { state: 'allowed', ...TOKEN } : {} });
};
frame.addEventListener('load', async () => {
  window.capabilities = await toWidget('capabilities', {});
});
</script>`;
}

async function openDesktopWidget(t, server, room) {
  const widget = `${server.url}/m/${room}?widgetId=w1&parentUrl=${encodeURIComponent('vector://vector/webapp/')}`
    + '&userId=%40alice%3Alocalhost&displayName=Alice%20M&roomId=%21r%3Alocalhost';
  const { page, context } = await openPage(browser, `desktop-${room}`, { t });
  const mocked = await mockServer(context, { identity: { user_id: '@alice:localhost', host: false } });
  await page.goto(`${server.url}/desktop?widget=${encodeURIComponent(widget)}`);
  return { page, server: mocked, frame: page.frameLocator('iframe') };
}

test('the widget takes its parent origin from parentUrl, Element Desktop\'s included', async (t) => {
  const { page } = await openPage(browser, 'origin-of', { t });
  await page.goto(`${web.url}/m/ui-origin-of`);
  const origins = await page.evaluate(async () => {
    const { originOf } = await import('/static/widget.js');
    return [
      'vector://vector/webapp/', 'vector://vector', 'https://app.element.io/#/room/!r:hs',
      'http://127.0.0.1:8080/x', 'file:///home/a', 'javascript:alert(1)', 'not a url',
    ].map(originOf);
  });
  assert.deepEqual(origins, [
    'vector://vector', 'vector://vector', 'https://app.element.io', 'http://127.0.0.1:8080', null, null, null,
  ]);
});

test('Element Desktop (vector://vector), a configured widget origin: asks it for OpenID and signs in', async (t) => {
  const room = 'ui-widget-desktop';
  const { page, server, frame } = await openDesktopWidget(t, desktop, room);
  await frame.getByText('Signed in as @alice:localhost').waitFor({ timeout: 10000 });
  assert.deepEqual(await page.evaluate(() => window.capabilities), { capabilities: [] });
  const sent = await page.evaluate(() => window.sent);
  const ask = sent.find((s) => s.msg.action === 'get_openid');
  assert.ok(ask, JSON.stringify(sent));
  assert.deepEqual([ask.msg.api, ask.msg.widgetId], ['fromWidget', 'w1']);
  // Everything went to Element Desktop's origin, nothing to anyone else.
  assert.deepEqual([...new Set(sent.map((s) => s.targetOrigin))], ['vector://vector']);
  assert.deepEqual(tokenRequests.find((r) => r.room === room), { room, openid_token: ALICE_TOKEN });
  await frame.getByRole('button', { name: 'Join meeting' }).click();
  await until('the join', () => server.sent.find((m) => m.type === 'join'), 5000);
  assert.equal(server.sent.find((m) => m.type === 'join').token, `meeting-token-for-${room}`);
});

test('Element Desktop where vector://vector is no configured widget origin: no widget API', async (t) => {
  const room = 'ui-widget-desktop-untrusted';
  const { page, server, frame } = await openDesktopWidget(t, web, room);
  await frame.getByRole('button', { name: 'Join meeting' }).waitFor({ timeout: 10000 });
  // Time for a widget to have answered `capabilities` and asked for
  // OpenID, had it taken vector://vector for its parent.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.deepEqual(await page.evaluate(() => window.sent), []);
  assert.equal(await page.evaluate(() => window.capabilities), undefined);
  assert.equal(tokenRequests.filter((r) => r.room === room).length, 0);
  assert.equal(await frame.getByText('Signed in as').count(), 0);
  await frame.getByLabel('Your name').fill('Alice');
  await frame.getByRole('button', { name: 'Join meeting' }).click();
  await until('the join', () => server.sent.find((m) => m.type === 'join'), 5000);
  assert.equal(server.sent.find((m) => m.type === 'join').token, undefined);
});
