// TURN over TLS on port 443 beside the meeting's web site, on one address,
// as docs/operating.md lays it out: Debian's nginx with its stream module
// on 443 (ops/nginx/meet-stream.conf), sending the TURN server's name
// (SNI) to coturn's TLS port (ops/coturn/turnserver.conf, 5349) and the
// meeting's name to the site (ops/nginx/meet.conf, moved to 127.0.0.1:8443
// as its comments say). Each file is used as it is, with the test's
// names, addresses and certificates put in.
//
// Names as an operator has them (SNI carries names, not addresses):
// meet.test and turn.test, both on 10.99.0.1 (ops/netns.sh), with
// certificates from a CA made here. Chromium maps the names by its
// --host-resolver-rules; meet, whose probe allocates on the turns: URL,
// gets an /etc/hosts of its own in a private mount namespace.
//
// With all of the pages' UDP dropped but coturn's relayed leg to meet,
// and only the relay allowed (iceTransportPolicy 'relay'), two pages
// loaded from https://meet.test/ meet over turns:turn.test:443: what gets
// through a firewall that lets only HTTPS out. meet's probe gets a relay
// over the same path and reports the TURN certificate's expiry; the site
// sees the browser's address, not the stream proxy's.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync,
} from 'node:fs';
import { get as httpsGet } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cleanUp, freePort, joinPage, launchBrowser, nftRule, receivedByName, runNginx, selectedPath, startServer, until,
} from './harness.mjs';
import {
  MEET_MEDIA_IP, RELAY_PORTS, TURN_IP, startCoturn,
} from './coturn.mjs';

const HOST = '10.99.0.1';
const MEET_NAME = 'meet.test';
const TURN_NAME = 'turn.test';
const TURN_URL = `turns:${TURN_NAME}:443?transport=tcp`;
const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
const ops = new URL('../../ops/', import.meta.url);

/** The sample at `path` (under ops/) with each [from, to] put in; fails if one is missing. */
function sample(path, replacements) {
  let text = readFileSync(new URL(path, ops), 'utf8');
  for (const [from, to] of replacements) {
    assert.ok(text.includes(from), `${path} no longer has ${from}`);
    text = text.split(from).join(to);
  }
  return text;
}

const openssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });

/**
 * A CA, and a certificate from it for `name` valid `days` days; returns
 * the paths and the certificate's notAfter (Unix seconds).
 */
function issue(dir, ca, name, days) {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.pem`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, `subjectAltName=DNS:${name}\nextendedKeyUsage=serverAuth\n`);
  openssl('req', '-new', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', key, '-out', csr);
  openssl('x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial',
    '-days', String(days), '-extfile', ext, '-out', cert);
  const end = openssl('x509', '-in', cert, '-noout', '-enddate').toString().trim().replace('notAfter=', '');
  // SHA-256 of the public key, as Chromium's --ignore-certificate-errors-spki-list takes it.
  const spki = createHash('sha256')
    .update(openssl('x509', '-in', cert, '-noout', '-pubkey').toString()
      .split('\n').filter((l) => l && !l.startsWith('-----')).join(''), 'base64')
    .digest('base64');
  return {
    cert, key, notAfter: Math.floor(Date.parse(end) / 1000), spki,
  };
}

/** GET over TLS from `host` with `servername` (SNI), trusting only `ca`. */
function fetchTls(servername, path, ca) {
  return new Promise((resolve, reject) => {
    httpsGet({
      host: HOST, port: 443, servername, path, ca, timeout: 5000, agent: false, headers: { host: servername },
    }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body, peer: res.socket.getPeerCertificate() }));
    }).on('error', reject).on('timeout', function onTimeout() { this.destroy(new Error(`GET ${path} timed out`)); });
  });
}

/** The certificate a TLS handshake on 443 with `servername` (SNI) shows, trusting only `ca`. */
function certificateFor(servername, ca) {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: HOST, port: 443, servername, ca }, () => {
      resolve(s.getPeerCertificate());
      s.destroy();
    });
    s.on('error', reject);
    s.setTimeout(5000, () => s.destroy(new Error(`no TLS handshake for ${servername}`)));
  });
}

/**
 * Debian's nginx with the site and the stream layout: the site's
 * certificate for meet.test, meet at `upstream`, coturn's TLS port at
 * `turnTls`, the site's access log (the address it saw) in `accessLog`.
 */
async function startNginx(dir, site, turnTls, upstream, accessLog) {
  assert.ok(existsSync(STREAM_MODULE), `${STREAM_MODULE} is missing: install libnginx-mod-stream (ops/setup.sh test)`);
  writeFileSync(join(dir, 'meet.conf'), sample('nginx/meet.conf', [
    ['/etc/ssl/certs/meet.example.org.pem', site.cert],
    ['/etc/ssl/private/meet.example.org.key', site.key],
    ['server 127.0.0.1:8080;', `server ${upstream};`],
    ['server_name meet.example.org;', `server_name ${MEET_NAME};`],
    // The site's listen lines for this layout, as its comment says.
    ['    listen 443 ssl http2;\n    listen [::]:443 ssl http2;\n', ''],
    ['#listen 127.0.0.1:8443 ssl http2 proxy_protocol;', 'listen 127.0.0.1:8443 ssl http2 proxy_protocol;'],
    ['#set_real_ip_from 127.0.0.1;', 'set_real_ip_from 127.0.0.1;'],
    ['#real_ip_header proxy_protocol;', 'real_ip_header proxy_protocol;'],
    // The sample's own log lines (meet_private), kept to this directory.
    ['/var/log/nginx/meet.access.log', accessLog],
    ['/var/log/nginx/meet.error.log', join(dir, 'error.log')],
  ]));
  writeFileSync(join(dir, 'meet-stream.conf'), sample('nginx/meet-stream.conf', [
    ['turn.example.org  127.0.0.1:8444;', `${TURN_NAME}  127.0.0.1:8444;`],
    ['proxy_pass 127.0.0.1:5349;', `proxy_pass ${turnTls};`],
  ]));
  // What Debian's /etc/nginx/nginx.conf is with the stream module
  // installed (modules-enabled loads it) and the include the guide adds,
  // kept to this directory. One process, as root: in the user namespace
  // ops/netns.sh makes when not run as root, nginx can neither switch a
  // worker to another user nor hand its temporary files to one.
  writeFileSync(join(dir, 'nginx.conf'), `
load_module ${STREAM_MODULE};
daemon off;
master_process off;
user root root;
pid ${dir}/nginx.pid;
error_log stderr warn;
events { worker_connections 256; }
http {
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${dir}/meet.conf;
}
include ${dir}/meet-stream.conf;
`);
  return runNginx(dir);
}

/**
 * meet, resolving the test's names by an /etc/hosts of its own (a mount
 * namespace of its own: the host's file stays as it is).
 */
async function startMeetWithHosts(dir, env, port) {
  const hosts = join(dir, 'hosts');
  writeFileSync(hosts, `127.0.0.1 localhost\n${HOST} ${MEET_NAME} ${TURN_NAME}\n`);
  const wrapper = join(dir, 'sfu-with-hosts');
  // exec all the way: the server keeps the pid startServer signals.
  writeFileSync(wrapper, `#!/bin/sh
exec unshare --mount --propagation private -- sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' ${hosts} ${process.env.SFU_BIN} "$@"
`);
  chmodSync(wrapper, 0o755);
  const real = process.env.SFU_BIN;
  process.env.SFU_BIN = wrapper;
  try {
    return await startServer(env, { port });
  } finally {
    process.env.SFU_BIN = real;
  }
}

/** The value of `name{label="value"}` in the server's /metrics, or null. */
async function metric(server, name, label, value) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${label}="${value}"}`));
  return line ? Number(line.split(' ').pop()) : null;
}

let dir;
let coturn;
let nginx;
let server;
let browser;
let ca;
let site;
let turnCert;
let secret;
let accessLog;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'meet-turn-443-'));
  // nginx's temporary files; the access log.
  chmodSync(dir, 0o755);
  ca = { key: join(dir, 'ca.key'), cert: join(dir, 'ca.pem') };
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=meet test CA',
    '-keyout', ca.key, '-out', ca.cert);
  // Different lifetimes, so that an expiry tells whose certificate it is.
  site = issue(dir, ca, MEET_NAME, 30);
  turnCert = issue(dir, ca, TURN_NAME, 20);
  secret = randomBytes(32).toString('hex');
  coturn = await startCoturn(await freePort(), secret, { port: 5349, cert: turnCert.cert, key: turnCert.key });
  // nginx first, so that meet's first probe already finds the way.
  const meetPort = await freePort();
  accessLog = join(dir, 'access.log');
  nginx = await startNginx(dir, site, `${TURN_IP}:5349`, `127.0.0.1:${meetPort}`, accessLog);
  server = await startMeetWithHosts(dir, {
    MEET_MEDIA_IPS: `["${MEET_MEDIA_IP}"]`,
    MEET_TURN_URLS: JSON.stringify([TURN_URL]),
    MEET_TURN_SECRET: secret,
    MEET_TURN_CA_FILE: ca.cert,
    // nginx on this host names the client in X-Forwarded-For.
    MEET_TRUSTED_PROXIES: '["127.0.0.1"]',
    // The name users open: the WebSocket is taken under it alone.
    MEET_PUBLIC_URL: `https://${MEET_NAME}/`,
  }, meetPort);
  const caPem = readFileSync(ca.cert);
  let last;
  await until('nginx to serve the site on 443', async () => {
    if (nginx.exited()) throw new Error(`nginx exited:\n${nginx.log()}`);
    try {
      last = await fetchTls(MEET_NAME, '/m/x', caPem);
      return last.status === 200;
    } catch (e) {
      last = e;
      return false;
    }
  }, 15000, 100).catch((e) => {
    throw new Error(`${e.message}; last: ${last?.message ?? last?.status}; nginx: ${nginx.log()}`);
  });
  browser = await launchBrowser({
    args: [
      `--host-resolver-rules=MAP ${MEET_NAME} ${HOST}, MAP ${TURN_NAME} ${HOST}`,
      // The test CA's certificates, as if the CA were in the staff's trust store.
      `--ignore-certificate-errors-spki-list=${site.spki},${turnCert.spki}`,
    ],
  });
});

after(() => cleanUp(
  () => browser?.close(),
  () => nginx?.stop(),
  () => server?.stop(),
  () => coturn?.stop(),
  () => dir && rmSync(dir, { recursive: true, force: true }),
));

test('port 443 serves the site to its name and coturn to the TURN name', async () => {
  const caPem = readFileSync(ca.cert);
  const page = await fetchTls(MEET_NAME, '/m/x', caPem);
  assert.equal(page.status, 200);
  assert.equal(page.peer.subject.CN, MEET_NAME);
  // The TURN name gets coturn's certificate, the site's name the site's.
  assert.equal((await certificateFor(TURN_NAME, caPem)).subject.CN, TURN_NAME);
  assert.equal((await certificateFor(MEET_NAME, caPem)).subject.CN, MEET_NAME);
  // meet's probe: a relay allocated and freed over turns:turn.test:443,
  // the certificate checked against turn_ca_file.
  await until('meet to reach TURN over 443', async () => await metric(server, 'meet_turn_reachable', 'url', TURN_URL) === 1, 20000);
  assert.equal(await metric(server, 'meet_certificate_expiry_timestamp_seconds', 'endpoint', TURN_URL), turnCert.notAfter,
    'the expiry is that of coturn\'s certificate, not the site\'s');
  // The site sees its clients' own addresses (PROXY protocol), not the
  // stream proxy's 127.0.0.1: the sample's health endpoints, allowed to
  // this host's loopback only, are refused to 10.99.0.1.
  assert.equal((await fetchTls(MEET_NAME, '/healthz', caPem)).status, 403);
  // meet_private lines start with the client's address.
  const seen = readFileSync(accessLog, 'utf8').trim().split('\n').map((l) => l.split(' ')[0]);
  assert.ok(seen.length > 0 && seen.every((a) => a === HOST), `the site saw ${[...new Set(seen)]}`);
});

test('pages loaded through 443 meet relayed only over turns: on the same 443', async (t) => {
  // All UDP dropped but coturn's relayed leg to meet: only TCP gets out.
  const relay = `${RELAY_PORTS[0]}-${RELAY_PORTS[1]}`;
  const unblock = nftRule('meetnoudp443', 'output', 'udp', 'sport', '!=', relay, 'udp', 'dport', '!=', relay, 'drop');
  t.after(unblock);
  const relayOnly = () => {
    const Native = window.RTCPeerConnection;
    window.RTCPeerConnection = class extends Native {
      constructor(config = {}) { super({ ...config, iceTransportPolicy: 'relay' }); }
    };
  };
  const base = `https://${MEET_NAME}`;
  const a = await joinPage(browser, base, 'over-443', 'Eva', {}, { initScript: relayOnly, t });
  const b = await joinPage(browser, base, 'over-443', 'Fei', {}, { initScript: relayOnly, t });
  assert.deepEqual((await a.page.evaluate(() => window.meet.state.iceServers)).map((s) => s.urls), [[TURN_URL]]);
  await until('Eva and Fei decode each other\'s video', async () => {
    const [ga, gb] = await Promise.all([receivedByName(a), receivedByName(b)]);
    return ga.Fei?.framesDecoded > 30 && gb.Eva?.framesDecoded > 30;
  }, 30000);
  for (const p of [a, b]) {
    assert.deepEqual(await p.page.evaluate(() => [location.origin, window.isSecureContext]), [base, true]);
    const path = await selectedPath(p);
    assert.equal(path?.type, 'relay', `${p.name}'s path: ${JSON.stringify(path)}`);
    assert.equal(path.relayProtocol, 'tls', `${p.name}'s path: ${JSON.stringify(path)}`);
    assert.equal(path.url, TURN_URL, `${p.name}'s path: ${JSON.stringify(path)}`);
  }
});
