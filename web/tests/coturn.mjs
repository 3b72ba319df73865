// Debian's coturn for the tests, configured by ops/coturn/turnserver.conf
// itself with the test's addresses, ports and secret put in: on
// 10.99.0.2 (the client side of ops/netns.sh), relaying to meet's media
// on 10.99.0.1 only. TLS as the sample has it when a certificate is given,
// else none.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from './harness.mjs';

export const TURN_IP = '10.99.0.2';
export const MEET_MEDIA_IP = '10.99.0.1';
// coturn's relayed side: below the kernel's ephemeral ports, so that an
// nftables rule can tell coturn's datagrams to meet from everyone else's.
export const RELAY_PORTS = [20000, 20099];

/**
 * The sample configuration with this test's values; fails on a key the
 * sample lacks. `tls` ({ port, cert, key }): TLS on that port with that
 * certificate, as the sample's 443; none: no TLS.
 */
function turnConfig(dir, port, secret, tls) {
  const sample = readFileSync(new URL('../../ops/coturn/turnserver.conf', import.meta.url), 'utf8');
  const set = {
    'listening-ip': TURN_IP,
    'listening-port': String(port),
    'static-auth-secret': secret,
    'allowed-peer-ip': MEET_MEDIA_IP,
    'min-port': String(RELAY_PORTS[0]),
    'max-port': String(RELAY_PORTS[1]),
    realm: 'meet.test',
    'log-file': 'stdout',
    ...(tls && { 'tls-listening-port': String(tls.port), cert: tls.cert, pkey: tls.key }),
  };
  const tlsKeys = new Set(['tls-listening-port', 'cert', 'pkey', 'no-tlsv1', 'no-tlsv1_1']);
  const seen = new Set();
  const lines = sample.split('\n').filter((l) => tls || !tlsKeys.has(l.split('=')[0])).map((l) => {
    const key = l.split('=')[0];
    if (!(key in set)) return l;
    seen.add(key);
    return `${key}=${set[key]}`;
  });
  for (const key of Object.keys(set)) assert.ok(seen.has(key), `ops/coturn/turnserver.conf has no ${key}`);
  if (!tls) lines.push('no-tls');
  lines.push('no-dtls', `relay-ip=${TURN_IP}`, `pidfile=${join(dir, 'turnserver.pid')}`,
    `userdb=${join(dir, 'turndb')}`);
  const path = join(dir, 'turnserver.conf');
  writeFileSync(path, lines.join('\n'));
  return path;
}

function tcpOpen(host, port) {
  return new Promise((resolve) => {
    const s = connect({ host, port }, () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

export async function startCoturn(port, secret, tls = null) {
  const dir = mkdtempSync(join(tmpdir(), 'meet-coturn-'));
  const child = spawn('turnserver', ['-c', turnConfig(dir, port, secret, tls)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => child.once('close', resolve));
  await until('coturn listens', async () => {
    if (child.exitCode !== null) throw new Error(`coturn exited ${child.exitCode}:\n${log}`);
    return await tcpOpen(TURN_IP, port) && (!tls || await tcpOpen(TURN_IP, tls.port));
  }, 15000);
  return {
    log: () => log,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

