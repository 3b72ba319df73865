// Shared pieces of the browser tests: start the real server binary, launch
// Debian's Chromium with fake camera and microphone, open meeting pages.
// Must run inside ops/netns.sh (see there why).

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes. */
export async function until(what, fn, timeoutMs, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Starts the server on free ports; resolves once it prints its address. */
export async function startServer(extraEnv = {}) {
  const bin = process.env.SFU_BIN;
  if (!bin) throw new Error('SFU_BIN must point at the built sfu binary');
  const child = spawn(bin, ['--listen', '127.0.0.1:0', '--media-port', '0'], {
    env: { ...process.env, MEET_WORKERS: '2', RUST_LOG: process.env.RUST_LOG || 'info', ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (d) => { log += d; });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${log}`)), 30000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[\d.:]+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${log}`)));
  });
  return {
    url,
    pid: child.pid,
    log: () => log,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

/** CPU seconds (user+system) and resident memory (KiB) of a process. */
export function processUsage(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(status.match(/VmRSS:\s+(\d+)/)[1]);
  return { cpuSeconds: ticks / 100, rssKiB };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      '--autoplay-policy=no-user-gesture-required',
      // Several pages share two cores: keep background pages running.
      '--disable-background-timer-throttling',
      '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
    ],
  });
}

/** Opens a page that joins `room` at once as `name`; `extra` adds URL parameters. */
export async function joinPage(browser, serverUrl, room, name, extra = {}) {
  const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
  const page = await context.newPage();
  page.on('pageerror', (e) => console.log(`[${name}] page error: ${e.message}`));
  const query = new URLSearchParams({ name, join: 'now', ...extra });
  await page.goto(`${serverUrl}/m/${encodeURIComponent(room)}?${query}`);
  await page.waitForFunction(() => window.meet && window.meet.participantId, null, { timeout: 15000 });
  const id = await page.evaluate(() => window.meet.participantId);
  return { page, context, name, id };
}

/** What `p` receives from each other participant, keyed by name. */
export async function receivedByName(p) {
  const stats = await p.page.evaluate(() => window.meet.receiveStats());
  return Object.fromEntries(Object.values(stats).map((s) => [s.name, s]));
}

/** A free TCP port on 127.0.0.1 (for programs that cannot bind port 0 and say which). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts Debian's Prometheus, scraping `target` (host:port) every second,
 * with its data in a fresh temporary directory.
 */
export async function startPrometheus(target) {
  const dir = mkdtempSync(join(tmpdir(), 'meet-prometheus-'));
  writeFileSync(join(dir, 'prometheus.yml'), [
    'global:',
    '  scrape_interval: 1s',
    'scrape_configs:',
    '  - job_name: meet',
    '    static_configs:',
    `      - targets: ['${target}']`,
    '',
  ].join('\n'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.env.PROMETHEUS || '/usr/bin/prometheus', [
    `--config.file=${join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d) => { log += d; });
  let exited = false;
  child.on('exit', () => { exited = true; });
  await until('Prometheus to be ready', async () => {
    if (exited) throw new Error(`prometheus exited:\n${log}`);
    try {
      return (await fetch(`${url}/-/ready`)).ok;
    } catch {
      return false;
    }
  }, 30000, 200);
  return {
    url,
    /** The value of an instant PromQL query returning one sample, or null. */
    async query(promql) {
      const r = await (await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`)).json();
      const sample = r.data && r.data.result[0];
      return sample ? Number(sample.value[1]) : null;
    },
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
