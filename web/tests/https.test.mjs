// HTTPS from the server itself, no proxy in front: a certificate in the
// configuration (tls_certificate, tls_private_key), and two browsers
// meeting over https:// and wss://. Every response tells the browser to
// keep to HTTPS (HSTS), the start line says https, plain HTTP gets no
// page, and the server stops cleanly.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cleanUp, joinPage, launchBrowser, receivedByName, startServer, until,
} from './harness.mjs';

/** GET over TLS, trusting only `ca`; resolves with { status, headers }. */
function fetchTls(url, ca) {
  return new Promise((resolve, reject) => {
    httpsGet(url, { ca, timeout: 5000, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers }));
    }).on('error', reject).on('timeout', function onTimeout() { this.destroy(new Error(`GET ${url} timed out`)); });
  });
}

test('the server speaks HTTPS itself with a configured certificate; two browsers meet over it', { timeout: 120000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meet-tls-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
    '-subj', '/CN=meet test', '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', key, '-out', cert], { stdio: 'ignore' });
  const server = await startServer({ MEET_TLS_CERTIFICATE: cert, MEET_TLS_PRIVATE_KEY: key });
  let browser;
  t.after(() => cleanUp(() => browser?.close(), () => server.stop(), () => rmSync(dir, { recursive: true, force: true })));
  assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const ca = readFileSync(cert);

  // A browser is told to keep to HTTPS; the certificate is the configured one.
  const page = await fetchTls(`${server.url}/m/x`, ca);
  assert.equal(page.status, 200);
  assert.equal(page.headers['strict-transport-security'], 'max-age=31536000');
  assert.match(page.headers['content-security-policy'] ?? '', /default-src 'self'/);
  // Plain HTTP on the TLS port gets no page.
  const plain = await new Promise((resolve) => {
    httpGet(server.url.replace('https:', 'http:') + '/m/x', { agent: false, timeout: 5000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    }).on('error', () => resolve('refused')).on('timeout', function onTimeout() { this.destroy(); });
  });
  assert.notEqual(plain, 200, 'a page over plain HTTP');

  browser = await launchBrowser();
  const options = { t, contextOptions: { ignoreHTTPSErrors: true } };
  const alice = await joinPage(browser, server.url, 'over-tls', 'Alice', {}, options);
  const bob = await joinPage(browser, server.url, 'over-tls', 'Bob', {}, options);
  for (const [p, other] of [[alice, 'Bob'], [bob, 'Alice']]) {
    await until(`${p.name} to decode ${other}'s video`, async () => (await receivedByName(p))[other]?.framesDecoded > 0, 30000);
    assert.deepEqual(await p.page.evaluate(() => [location.protocol, window.isSecureContext]), ['https:', true]);
  }
  await alice.context.close();
  await bob.context.close();
});
