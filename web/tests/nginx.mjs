// The reverse-proxy sample, ops/nginx/meet.conf, run as an operator
// installs it (Debian's nginx, a self-signed certificate made here), in
// front of one server or of several sharing meetings. For tests inside
// ops/netns.sh, where ports 80 and 443 are the test's own.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runNginx, until } from './harness.mjs';

const sample = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'ops', 'nginx', 'meet.conf');
// meet0's address in ops/netns.sh: what browsers reach nginx on.
export const HOST = '10.99.0.1';

// nginx switches its workers to another user, which a user namespace (a
// run as non-root, see ops/netns.sh) does not allow.
export const NEEDS_ROOT = 'needs real root: nginx cannot switch users inside a user namespace';

/** GET over TLS, trusting only `ca`; resolves with { status, headers, body }. */
export function fetchTls(host, path, ca) {
  return new Promise((resolve, reject) => {
    httpsGet({ host, port: 443, path, ca, timeout: 5000, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    }).on('error', reject).on('timeout', function onTimeout() { this.destroy(new Error(`GET ${path} timed out`)); });
  });
}

/** The sample's example upstreams of single servers, for several. */
const NODE_EXAMPLE = '#upstream meet-a { server 10.0.0.1:8080; }\n#upstream meet-b { server 10.0.0.2:8080; }\n';

/**
 * Debian's nginx with the sample site: a fresh certificate for HOST and
 * 127.0.0.1, and `upstream` where the sample says 127.0.0.1:8080: one
 * server's host:port, or several servers' as { nodeId: 'host:port' },
 * each also in its own upstream as the sample says for several.
 */
export async function startNginx(upstream) {
  const dir = mkdtempSync(join(tmpdir(), 'meet-nginx-'));
  // nginx's workers (user nobody) create their temporary files in here.
  chmodSync(dir, 0o755);
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
    '-subj', '/CN=meet test', '-addext', `subjectAltName=IP:${HOST},IP:127.0.0.1`,
    '-keyout', key, '-out', cert], { stdio: 'ignore' });
  const nodes = typeof upstream === 'string' ? null : Object.entries(upstream);
  const servers = nodes ? nodes.map(([, addr]) => `server ${addr};`).join('\n    ') : `server ${upstream};`;
  let site = readFileSync(sample, 'utf8');
  const changes = [
    ['/etc/ssl/certs/meet.example.org.pem', cert],
    ['/etc/ssl/private/meet.example.org.key', key],
    ['server 127.0.0.1:8080;', servers],
    ['/var/log/nginx/meet.access.log', join(dir, 'access.log')],
    ['/var/log/nginx/meet.error.log', join(dir, 'error.log')],
  ];
  if (nodes) {
    changes.push([NODE_EXAMPLE, nodes.map(([id, addr]) => `upstream meet-${id} { server ${addr}; }\n`).join('')]);
  }
  for (const [from, to] of changes) {
    assert.ok(site.includes(from), `the sample no longer has ${from}`);
    site = site.replaceAll(from, to);
  }
  writeFileSync(join(dir, 'meet.conf'), site);
  // The main configuration Debian's /etc/nginx/nginx.conf would be, kept
  // to this directory.
  writeFileSync(join(dir, 'nginx.conf'), `
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${dir}/meet.conf;
}
`);
  const nginx = runNginx(dir);
  const ca = readFileSync(cert);
  await until('nginx to answer', async () => {
    if (nginx.exited()) throw new Error(`nginx exited:\n${nginx.log()}`);
    try {
      return (await fetchTls('127.0.0.1', '/healthz', ca)).status === 200;
    } catch {
      return false;
    }
  }, 15000, 100);
  return {
    ca,
    log: nginx.log,
    accessLog: () => readFileSync(join(dir, 'access.log'), 'utf8'),
    async stop() {
      await nginx.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
