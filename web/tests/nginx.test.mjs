// The reverse-proxy sample, ops/nginx/meet.conf, as an operator installs
// it: Debian's nginx in front of the server with a self-signed certificate
// made here (openssl), TLS, the WebSocket upgrade on /ws, and two browsers
// meeting through https://. Then the server drains behind the proxy: the
// pages are told, /readyz answers 503 through nginx, a newcomer is turned
// away, and the server exits once the meeting is over. Runs inside
// ops/netns.sh, where ports 80 and 443 are this test's own.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { get as httpGet } from 'node:http';
import {
  cleanUp, joinPage, launchBrowser, openPage, receivedByName, sleep, startServer, until, assertRealRoot,
} from './harness.mjs';
import { HOST, NEEDS_ROOT, fetchTls, startNginx } from './nginx.mjs';

test('two browsers meet through nginx over https; the server drains behind it', {
  timeout: 180000,
}, async (t) => {
  assertRealRoot(NEEDS_ROOT);
  const server = await startServer({ MEET_DRAIN_TIMEOUT_SECS: '120' });
  let nginx;
  let browser;
  t.after(() => cleanUp(() => browser?.close(), () => nginx?.stop(), () => server.stop()));
  nginx = await startNginx(new URL(server.url).host);
  browser = await launchBrowser();
  const { ca } = nginx;

  // Readiness through the proxy, from this host (the sample allows only it).
  const ready = await fetchTls('127.0.0.1', '/readyz', ca);
  assert.equal(ready.status, 200, ready.body);
  assert.equal(JSON.parse(ready.body).ready, true);
  assert.equal((await fetchTls(HOST, '/metrics', ca)).status, 403, 'metrics are not for the world');
  // The admin API is not on the public site, not even from this host;
  // meet itself still serves it on its loopback listener.
  for (const from of [HOST, '127.0.0.1']) {
    assert.equal((await fetchTls(from, '/api/admin/meetings', ca)).status, 404, `admin API through nginx from ${from}`);
    assert.equal((await fetchTls(from, '/api/openapi.json', ca)).status, 404, `OpenAPI document through nginx from ${from}`);
  }
  assert.equal((await fetch(`${server.url}/api/openapi.json`)).status, 200, 'the admin API on meet\'s own listener');
  assert.equal((await fetchTls(HOST, '/healthz/chat', ca)).status, 403, 'chat health is not for the world');
  assert.match((await fetchTls(HOST, '/m/x', ca)).headers['strict-transport-security'] ?? '', /max-age=/);
  // Plain HTTP goes to https.
  const redirect = await new Promise((resolve, reject) => {
    httpGet({ host: HOST, port: 80, path: '/m/x?join=now', agent: false }, (res) => { res.resume(); resolve(res); }).on('error', reject);
  });
  assert.equal(redirect.statusCode, 301);
  assert.equal(redirect.headers.location, `https://${HOST}/m/x?join=now`);

  // The server listens on 127.0.0.1 only: these pages reach it through nginx.
  const base = `https://${HOST}`;
  const options = { t, contextOptions: { ignoreHTTPSErrors: true } };
  const room = 'through-nginx';
  const alice = await joinPage(browser, base, room, 'Alice', {}, options);
  const bob = await joinPage(browser, base, room, 'Bob', {}, options);
  for (const [p, other] of [[alice, 'Bob'], [bob, 'Alice']]) {
    await until(`${p.name} to decode ${other}'s video`, async () => (await receivedByName(p))[other]?.framesDecoded > 0, 30000);
    assert.deepEqual(await p.page.evaluate(() => [location.protocol, window.isSecureContext]), ['https:', true]);
  }

  // SIGTERM: the meeting goes on, both are told, a latecomer still gets
  // in, a new meeting does not.
  process.kill(server.pid, 'SIGTERM');
  for (const p of [alice, bob]) {
    await p.page.locator('#server-notice', { hasText: 'The server is restarting' }).waitFor({ timeout: 10000 });
  }
  const draining = await fetchTls('127.0.0.1', '/readyz', ca);
  assert.equal(draining.status, 503, draining.body);
  assert.deepEqual(JSON.parse(draining.body).failed, ['draining']);
  const carol = await joinPage(browser, base, room, 'Carol', {}, options);
  await until('Carol, late, to decode Alice\'s video', async () => (await receivedByName(carol))['Alice']?.framesDecoded > 0, 30000);
  await carol.page.locator('#server-notice', { hasText: 'The server is restarting' }).waitFor({ timeout: 10000 });
  const { page: dave } = await openPage(browser, 'Dave', options);
  await dave.goto(`${base}/m/${room}-new?name=Dave&join=now`);
  await dave.locator('#left-reason', { hasText: 'shutting down' }).waitFor({ timeout: 10000 });
  const before = (await receivedByName(alice)).Bob.framesDecoded;
  await sleep(1000);
  assert.ok((await receivedByName(alice)).Bob.framesDecoded > before, 'the meeting stalled while draining');

  // The last ones leave: the server exits on its own, cleanly.
  await alice.context.close();
  await bob.context.close();
  await carol.context.close();
  await Promise.race([
    server.exited,
    sleep(15000).then(() => { throw new Error('the server did not exit after the meeting emptied'); }),
  ]);

  // The access log has the pages and the WebSockets (logged when they
  // close), but no query string: neither the names in the links nor an
  // invite.
  const access = nginx.accessLog();
  assert.match(access, /"GET \/m\/through-nginx HTTP\/[\d.]+" 200 /);
  assert.match(access, /"GET \/ws HTTP\/[\d.]+" 101 /);
  assert.match(access, /"GET \/m\/x HTTP\/1\.1" 301 /, 'the plain-HTTP site logs alike');
  assert.doesNotMatch(access, /[?]|name=|invite=|Carol|Alice/);
});
