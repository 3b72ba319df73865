// Shared pieces of the browser tests: start the real server binary, launch
// Debian's Chromium with fake camera and microphone, open meeting pages;
// start a Synapse homeserver (ops/synapse.sh) and talk to it as a plain
// Matrix client; serve the client files without the server, for UI tests.
// Must run inside ops/netns.sh (see there why).

import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

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

/**
 * Throws unless this is real root (not root mapped in a user namespace, as
 * ops/netns.sh makes for other users), saying `why` the test needs it. The
 * tests run as root (ops/test.sh, as CI runs it); elsewhere such a test
 * fails rather than passing by not running.
 */
export function assertRealRoot(why) {
  const realRoot = process.getuid() === 0
    && /^\s*0\s+0\s+4294967295\s*$/.test(readFileSync('/proc/self/uid_map', 'utf8'));
  if (!realRoot) throw new Error(`${why}, and this is not real root: run the tests as root, as CI does`);
}

/**
 * Throws unless a server that was sent SIGTERM (`what`, with its stderr in
 * `log`) shut down cleanly: exit status 0 and no Rust panic, not even one
 * in a thread the process outlived.
 */
export function assertCleanExit(what, { code, signal }, log) {
  const panic = log.indexOf('panicked at');
  if (panic >= 0) {
    const from = log.lastIndexOf('\n', panic) + 1;
    throw new Error(`${what} panicked:\n${log.slice(from, from + 4000)}`);
  }
  if (code !== 0) {
    throw new Error(`${what} exited with ${code ?? signal} instead of 0:\n${log.split('\n').slice(-40).join('\n')}`);
  }
}

/**
 * Starts the server on free ports (or on HTTP `port`, to restart one where
 * its pages look for it); resolves once it prints its address.
 * stop() sends SIGTERM and fails unless it shuts down cleanly
 * (assertCleanExit), also when it had exited on its own before.
 */
export async function startServer(extraEnv = {}, { port = 0 } = {}) {
  const bin = process.env.SFU_BIN;
  if (!bin) throw new Error('SFU_BIN must point at the built sfu binary');
  const child = spawn(bin, ['--listen', `127.0.0.1:${port}`, '--media-port', '0'], {
    // SIGTERM drains: a page a failed test left open holds stop() up this long.
    // Open to anonymous guests unless a test says otherwise: most tests
    // are about meetings, not about who gets in.
    env: {
      ...process.env, MEET_WORKERS: '2', MEET_ANONYMOUS_JOIN: 'true', MEET_DRAIN_TIMEOUT_SECS: '5', RUST_LOG: process.env.RUST_LOG || 'info', ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // 'close': it has exited and all of its stderr is in.
  const exited = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  let log = '';
  child.stderr.on('data', (d) => { log += d; });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${log}`)), 30000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (https?:\/\/[\d.:]+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${log}`)));
  });
  let stopped = null;
  return {
    url,
    pid: child.pid,
    log: () => log,
    /** Resolves with { code, signal } once it has exited (on its own too). */
    exited,
    stop() {
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        assertCleanExit('the server', await exited, log);
      })();
      return stopped;
    },
  };
}

/**
 * Runs every clean-up step, in order, even when one fails; then throws the
 * first failure (with the others' messages). For after hooks, so that one
 * failing step leaves no shared fixture behind.
 */
export async function cleanUp(...steps) {
  const errors = [];
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length > 0) {
    const first = errors[0];
    if (errors.length > 1) first.message += `\n(and ${errors.length - 1} more: ${errors.slice(1).map((e) => e.message).join('; ')})`;
    throw first;
  }
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

/** Chromium with `cameras` fake cameras (the first in colour, the second
 * grey) and three fake microphones and speakers; `args` added. The fake
 * cameras capture `fps` frames a second (Chromium's default: 20). */
export async function launchBrowser({ args = [], cameras = 1, fps = null } = {}) {
  const fake = [cameras > 1 && `device-count=${cameras}`, fps && `fps=${fps}`].filter(Boolean).join(',');
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
      `--use-fake-device-for-media-stream${fake ? `=${fake}` : ''}`,
      '--use-fake-ui-for-media-stream',
      '--autoplay-policy=no-user-gesture-required',
      // Several pages share two cores: keep background pages running.
      '--disable-background-timer-throttling',
      '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
      ...args,
    ],
  });
}

/**
 * A new browser context (camera and microphone allowed) with one page that
 * logs its errors; `initScript` (a function) runs in the page before its
 * own scripts; `contextOptions` go to Playwright's newContext. With `t` (a
 * test's context), the context is closed when that test ends, whether it
 * passed or not, so that a failed test leaves no page behind to load the
 * next ones. The page is a returning visitor of every meeting it opens
 * (join=now starts its camera and microphone at once), unless `firstVisit`.
 */
export async function openPage(browser, label, {
  initScript, t, contextOptions, firstVisit = false,
} = {}) {
  const context = await browser.newContext({ permissions: ['camera', 'microphone'], ...contextOptions });
  t?.after(() => context.close());
  if (!firstVisit) {
    await context.addInitScript(() => {
      const m = location.pathname.match(/^\/m\/([^/]+)/);
      if (m) localStorage.setItem('meet.joined', JSON.stringify([decodeURIComponent(m[1])]));
    });
  }
  if (initScript) await context.addInitScript(initScript);
  const page = await context.newPage();
  page.on('pageerror', (e) => console.log(`[${label}] page error: ${e.message}`));
  // The page's last warnings and errors, for a failure to say what it saw.
  const log = [];
  page.on('console', (m) => {
    if (m.type() === 'warning' || m.type() === 'error') log.push(m.text());
    if (log.length > 10) log.shift();
  });
  return { page, context, log };
}

/**
 * Opens a page that joins `room` at once as `name`; `extra` adds URL
 * parameters; `options` (initScript, t, contextOptions, firstVisit) as for
 * openPage.
 */
export async function joinPage(browser, serverUrl, room, name, extra = {}, options = {}) {
  const { page, context, log } = await openPage(browser, name, options);
  const query = new URLSearchParams({ name, join: 'now', ...extra });
  await page.goto(`${serverUrl}/m/${encodeURIComponent(room)}?${query}`);
  try {
    await page.waitForFunction(() => window.meet && window.meet.participantId, null, { timeout: 15000 });
  } catch (e) {
    // Say where the page stood, so that a failure can be told from a slow join.
    const seen = await page.evaluate(() => ({
      screen: [...document.querySelectorAll('main')].find((m) => !m.hidden)?.id,
      status: document.getElementById('status')?.textContent,
      left: document.getElementById('left-reason')?.textContent,
    })).catch((err) => ({ unreadable: err.message }));
    throw new Error(`${name} had not joined after 15 s: ${JSON.stringify(seen)}; `
      + `console: ${JSON.stringify(log)} (${e.message})`);
  }
  const id = await page.evaluate(() => window.meet.participantId);
  return { page, context, name, id };
}

/** The sum over all labels of the server's counter `name` (its own
 * `/metrics`, as Prometheus would scrape it). */
export async function counterSum(serverUrl, name) {
  const metrics = await (await fetch(`${serverUrl}/metrics`)).text();
  return metrics.split('\n')
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

/** What `p` receives from each other participant, keyed by name. */
export async function receivedByName(p) {
  const stats = await p.page.evaluate(() => window.meet.receiveStats());
  return Object.fromEntries(Object.values(stats).map((s) => [s.name, s]));
}


/**
 * The local candidate of the subscriber connection's selected pair (its
 * type, relay protocol and TURN URL) and the remote address it reaches.
 */
export function selectedPath(p) {
  return p.page.evaluate(async () => {
    const stats = await window.meet.state.subscriber.getStats();
    let pairId = null;
    stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
    const pair = pairId && stats.get(pairId);
    const local = pair && stats.get(pair.localCandidateId);
    const remote = pair && stats.get(pair.remoteCandidateId);
    return local ? {
      type: local.candidateType, relayProtocol: local.relayProtocol || null, url: local.url || null, remoteAddress: remote?.address,
    } : null;
  });
}

/**
 * Debian's nginx run on `dir/nginx.conf` (prefix `dir`) in the
 * foreground, its error log kept; `stop()` ends it gracefully.
 */
export function runNginx(dir) {
  const child = spawn(process.env.NGINX || '/usr/sbin/nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', 'stderr'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (d) => { log += d; });
  let exited = false;
  const gone = new Promise((resolve) => child.once('exit', () => { exited = true; resolve(); }));
  return {
    log: () => log,
    exited: () => exited,
    async stop() {
      if (!exited) {
        child.kill('SIGQUIT'); // graceful
        await gone;
      }
    },
  };
}
/** A free TCP port on 127.0.0.1 (for programs that cannot bind port 0 and say which). */
export function freePort() {
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
 * Starts Debian's Prometheus, scraping `target` (host:port) every second
 * as scrape job `job`, evaluating the rule files `rules` (paths or globs)
 * every second, with its data in a fresh temporary directory.
 */
export async function startPrometheus(target, { job = 'meet', rules = [] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'meet-prometheus-'));
  writeFileSync(join(dir, 'prometheus.yml'), [
    'global:',
    '  scrape_interval: 1s',
    '  evaluation_interval: 1s',
    ...(rules.length > 0 ? ['rule_files:', ...rules.map((r) => `  - ${JSON.stringify(r)}`)] : []),
    'scrape_configs:',
    `  - job_name: ${JSON.stringify(job)}`,
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
    /** The API's answer to a GET of `path` (`/api/v1/rules`, ...). */
    async api(path) {
      return (await fetch(`${url}${path}`)).json();
    },
    /** The API's answer to a range query over the last `seconds`, a point a second. */
    async queryRange(promql, seconds) {
      const end = Date.now() / 1000;
      const params = new URLSearchParams({ query: promql, start: String(end - seconds), end: String(end), step: '1' });
      return (await fetch(`${url}/api/v1/query_range?${params}`)).json();
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

// ---------- Synapse (ops/synapse.sh) ----------

const synapseScript = process.env.SYNAPSE_SH || join(repoRoot, 'ops', 'synapse.sh');

/** Runs ops/synapse.sh with `args`; rejects with its output if it fails. */
function synapseSh(args, timeoutMs) {
  return new Promise((resolve, reject) => {
    execFile(synapseScript, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`ops/synapse.sh ${args[0]} failed (${err.code ?? err.signal}):\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
function portOpen(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Starts a Synapse homeserver (server_name "localhost") on a free port of
 * 127.0.0.1, its configuration and data in a fresh temporary directory:
 * `ops/synapse.sh install` (a no-op once installed), `init DIR PORT`, then `run DIR` in the foreground (its own
 * process group), then `wait PORT`. Returns { url, port, dir, serverName,
 * log(), stop(signal = 'SIGKILL'), start(), ensureRunning(), destroy() }:
 * stop() kills it (an outage), start() runs it again on the same
 * directory, destroy() stops it for good and removes the directory.
 */
export async function startSynapse({ readyTimeoutS = 120 } = {}) {
  // Installs Synapse into its virtualenv the first time (pip; minutes).
  await synapseSh(['install'], 900000);
  const dir = mkdtempSync(join(tmpdir(), 'meet-synapse-'));
  const port = await freePort();
  await synapseSh(['init', dir, String(port)], 120000);
  let child = null;
  let exited = null;
  let log = '';
  const keep = (d) => {
    log += d;
    if (log.length > 256 * 1024) log = log.slice(-128 * 1024);
  };
  const running = () => child && child.exitCode === null && child.signalCode === null;

  const launch = async () => {
    const c = spawn(synapseScript, ['run', dir], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    c.stdout.on('data', keep);
    c.stderr.on('data', keep);
    exited = new Promise((resolve) => c.once('exit', (code, signal) => resolve(code ?? signal)));
    const ready = synapseSh(['wait', String(port), String(readyTimeoutS)], (readyTimeoutS + 15) * 1000);
    ready.catch(() => {}); // when it loses the race below
    const early = exited.then((how) => { throw new Error(`Synapse exited (${how}) before it was ready:\n${log.slice(-8000)}`); });
    early.catch(() => {});
    await Promise.race([ready, early]);
  };

  const stop = async (signal = 'SIGKILL') => {
    if (!running()) return;
    const c = child;
    try {
      process.kill(-c.pid, signal);
    } catch {
      c.kill(signal);
    }
    const hard = setTimeout(() => { try { process.kill(-c.pid, 'SIGKILL'); } catch { /* gone */ } }, 15000);
    await exited;
    clearTimeout(hard);
    await until('Synapse\'s port to close', async () => !(await portOpen(port)), 15000, 100);
  };

  await launch();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    dir,
    serverName: 'localhost',
    /** Its output, then the end of its log file (warnings and errors). */
    log: () => {
      let file = '';
      try {
        file = readFileSync(join(dir, 'homeserver.log'), 'utf8').slice(-16000);
      } catch {
        // no log file yet
      }
      return `${log}${file}`;
    },
    stop,
    async start() {
      if (running()) throw new Error('Synapse is already running');
      await launch();
    },
    /** Runs it again if it is not running, and waits until it answers: for
     * the clean-up of a test that stopped it, however far that test got. */
    async ensureRunning() {
      if (running()) await synapseSh(['wait', String(port), String(readyTimeoutS)], (readyTimeoutS + 15) * 1000);
      else await launch();
    },
    async destroy() {
      await stop('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Registers a user on `syn` (ops/synapse.sh register); returns the user id. */
export async function registerUser(syn, user, password, { admin = false } = {}) {
  await synapseSh(['register', syn.dir, user, password, ...(admin ? ['--admin'] : [])], 60000);
  return `@${user}:${syn.serverName}`;
}

/** A failed Matrix request: `status` and `errcode` as the homeserver said. */
export class MatrixError extends Error {
  constructor(method, path, status, body) {
    super(`${method} ${path}: ${status} ${body && body.errcode ? `${body.errcode} ${body.error}` : JSON.stringify(body)}`);
    this.status = status;
    this.errcode = body && body.errcode;
    this.body = body;
  }
}

let txnCounter = 0;

/** A tiny Matrix client-server API client over fetch: just what the tests need. */
export class MatrixClient {
  constructor(baseUrl, accessToken, userId) {
    this.baseUrl = baseUrl;
    this.accessToken = accessToken;
    this.userId = userId;
    /** Where waitForEvent's sync stream is. */
    this.since = null;
  }

  /** Logs in with a password (m.login.password). */
  static async login(baseUrl, user, password) {
    const anon = new MatrixClient(baseUrl, null, null);
    const r = await anon.request('POST', '/_matrix/client/v3/login', {
      type: 'm.login.password',
      identifier: { type: 'm.id.user', user },
      password,
      initial_device_display_name: 'meet tests',
    });
    return new MatrixClient(baseUrl, r.access_token, r.user_id);
  }

  async request(method, path, body, { timeoutMs = 30000 } = {}) {
    const headers = {};
    if (this.accessToken) headers.authorization = `Bearer ${this.accessToken}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const json = await res.json().catch(() => null);
    if (!res.ok) throw new MatrixError(method, path, res.status, json);
    return json;
  }

  static txnId() {
    txnCounter += 1;
    return `meet-test-${process.pid}-${Date.now()}-${txnCounter}`;
  }

  async setDisplayName(name) {
    await this.request('PUT', `/_matrix/client/v3/profile/${encodeURIComponent(this.userId)}/displayname`, { displayname: name });
  }

  /** Creates a room; returns its id. */
  async createRoom(options = {}) {
    return (await this.request('POST', '/_matrix/client/v3/createRoom', options)).room_id;
  }

  /** Joins a room by id or alias; returns its id. */
  async joinRoom(idOrAlias) {
    return (await this.request('POST', `/_matrix/client/v3/join/${encodeURIComponent(idOrAlias)}`, {})).room_id;
  }

  async invite(roomId, userId) {
    await this.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/invite`, { user_id: userId });
  }

  async kick(roomId, userId) {
    await this.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/kick`, { user_id: userId });
  }

  /** Gives `userId` power `level` in the room (as its admin may). */
  async setPower(roomId, userId, level) {
    const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.power_levels/`;
    const levels = await this.request('GET', path);
    levels.users = { ...levels.users, [userId]: level };
    await this.request('PUT', path, levels);
  }

  async leaveRoom(roomId) {
    await this.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/leave`, {});
  }

  /** Sends a room event with a fresh transaction id; returns its event id. */
  async sendEvent(roomId, type, content, txnId = MatrixClient.txnId()) {
    const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/${encodeURIComponent(type)}/${encodeURIComponent(txnId)}`;
    return (await this.request('PUT', path, content)).event_id;
  }

  /** An m.text message, optionally a reply (no fallback in the body); returns its event id. */
  async sendMessage(roomId, body, { replyTo, txnId } = {}) {
    const content = { msgtype: 'm.text', body };
    if (replyTo) content['m.relates_to'] = { 'm.in_reply_to': { event_id: replyTo } };
    return this.sendEvent(roomId, 'm.room.message', content, txnId);
  }

  /** An edit (m.replace) of `targetId` to `body`; returns its event id. */
  async editMessage(roomId, targetId, body) {
    return this.sendEvent(roomId, 'm.room.message', {
      msgtype: 'm.text',
      body: `* ${body}`,
      'm.new_content': { msgtype: 'm.text', body },
      'm.relates_to': { rel_type: 'm.replace', event_id: targetId },
    });
  }

  /** A reaction (m.annotation) to `targetId`; returns its event id. */
  async react(roomId, targetId, key) {
    return this.sendEvent(roomId, 'm.reaction', {
      'm.relates_to': { rel_type: 'm.annotation', event_id: targetId, key },
    });
  }

  /** Redacts an event; returns the redaction's event id. */
  async redact(roomId, eventId, reason) {
    const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/redact/${encodeURIComponent(eventId)}/${encodeURIComponent(MatrixClient.txnId())}`;
    return (await this.request('PUT', path, reason ? { reason } : {})).event_id;
  }

  /** The room's latest events, newest first (GET /messages?dir=b). */
  async messages(roomId, { limit = 100 } = {}) {
    const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=${limit}`;
    return (await this.request('GET', path)).chunk;
  }

  /** One /sync; `timeoutMs` is the long-poll wait. */
  async sync({ since = null, timeoutMs = 0 } = {}) {
    const filter = JSON.stringify({
      presence: { types: [] },
      account_data: { types: [] },
      room: { timeline: { limit: 100 }, state: { lazy_load_members: true }, ephemeral: { types: [] } },
    });
    const q = new URLSearchParams({ timeout: String(timeoutMs), filter });
    if (since) q.set('since', since);
    return this.request('GET', `/_matrix/client/v3/sync?${q}`, undefined, { timeoutMs: timeoutMs + 30000 });
  }

  /**
   * The first event of `roomId` for which `predicate(event)` holds: looks at
   * the latest 100 events, then follows /sync (long-polling) until
   * `timeoutMs` passes.
   */
  async waitForEvent(roomId, predicate, timeoutMs = 10000) {
    const deadline = Date.now() + timeoutMs;
    // The sync position first, so that nothing falls between the two looks.
    if (!this.since) this.since = (await this.sync()).next_batch;
    const past = (await this.messages(roomId)).find(predicate);
    if (past) return past;
    while (Date.now() < deadline) {
      const wait = Math.max(0, Math.min(5000, deadline - Date.now()));
      const r = await this.sync({ since: this.since, timeoutMs: wait });
      this.since = r.next_batch;
      const events = r.rooms?.join?.[roomId]?.timeline?.events || [];
      const hit = events.find(predicate);
      if (hit) return hit;
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for a matching event in ${roomId}`);
  }

  /** The first m.room.message of `roomId` for which `predicate(event)` holds. */
  async waitForMessage(roomId, predicate, timeoutMs = 10000) {
    return this.waitForEvent(roomId, (e) => e.type === 'm.room.message' && predicate(e), timeoutMs);
  }

  /**
   * Follows /sync in the background from now on, calling `onEvent(event,
   * receivedAtMs)` for each new timeline event of `roomId`. Resolves to a
   * function that stops the loop (and resolves once it has stopped).
   */
  async syncLoop(roomId, onEvent) {
    let since = (await this.sync()).next_batch;
    let stopped = false;
    const loop = (async () => {
      while (!stopped) {
        let r;
        try {
          r = await this.sync({ since, timeoutMs: 2000 });
        } catch (err) {
          if (!stopped) console.log(`# sync loop: ${err.message}`);
          await sleep(200);
          continue;
        }
        const at = Date.now();
        since = r.next_batch;
        for (const e of r.rooms?.join?.[roomId]?.timeline?.events || []) onEvent(e, at);
      }
    })();
    return async () => {
      stopped = true;
      await loop;
    };
  }

  /** An OpenID token for this user (what a widget gets from its client). */
  async requestOpenIdToken() {
    return this.request('POST', `/_matrix/client/v3/user/${encodeURIComponent(this.userId)}/openid/request_token`, {});
  }
}

/** base64url (no padding) of a value's JSON, as the page reads in #openid=. */
export function base64urlJson(value) {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

// ---------- the client files without the server ----------

const staticTypes = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };

/**
 * Serves the meeting page (/m/<room>) and /static/<file> from web/ on a free
 * port of 127.0.0.1, like the server does, plus whatever `routes` add:
 * { '/path': async (req, body) => ({ status, json } | { status, html }) }.
 * For UI tests that mock the WebSocket (page.routeWebSocket). Returns
 * { url, origin(host), close() }; `host` may be "localhost" for a second
 * origin, which the page trusts as a widget's parent (the server's
 * `widget_origins`), with `widgetOrigins` beside it.
 */
export async function startStaticServer(routes = {}, { widgetOrigins = [] } = {}) {
  const server = createHttpServer(async (req, res) => {
    const url = new URL(req.url, 'http://localhost');
    try {
      if (req.method === 'GET' && url.pathname.startsWith('/m/')) {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' });
        // As the server does with `widget_origins`: this server's second
        // origin (where tests put their stand-in for Element) is trusted.
        const page = readFileSync(join(repoRoot, 'web', 'meeting.html'), 'utf8').replace(
          '<meta name="meet-widget-origins" content="">',
          `<meta name="meet-widget-origins" content="${[`http://localhost:${server.address().port}`, ...widgetOrigins].join(' ')}">`,
        );
        res.end(page);
        return;
      }
      if (req.method === 'GET' && url.pathname.startsWith('/static/')) {
        const name = basename(url.pathname);
        const type = staticTypes[name.slice(name.lastIndexOf('.'))];
        if (type) {
          res.writeHead(200, { 'content-type': type, 'cache-control': 'no-cache' });
          res.end(readFileSync(join(repoRoot, 'web', 'static', name)));
          return;
        }
      }
      const route = routes[url.pathname];
      if (route) {
        let body = '';
        for await (const chunk of req) body += chunk;
        const out = await route(req, body, url);
        if (out.html !== undefined) {
          res.writeHead(out.status || 200, { 'content-type': 'text/html; charset=utf-8' });
          res.end(out.html);
        } else {
          res.writeHead(out.status || 200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(out.json ?? {}));
        }
        return;
      }
    } catch (err) {
      res.writeHead(500);
      res.end(String(err));
      return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    origin: (host = '127.0.0.1') => `http://${host}:${port}`,
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(resolve); }),
  };
}

/**
 * Adds an nftables table `table` to this test's network namespace, with
 * one chain on `hook` ('input' or 'output') holding one rule (its words,
 * e.g. 'meta', 'l4proto', 'udp', 'drop'): how tests drop or lose packets,
 * as this kernel has no netem. Returns what removes it again, harmless
 * once it is gone.
 */
export function nftRule(table, hook, ...rule) {
  const nft = (...args) => execFileSync('nft', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  nft('add', 'table', 'inet', table);
  nft('add', 'chain', 'inet', table, hook, `{ type filter hook ${hook} priority 0; }`);
  nft('add', 'rule', 'inet', table, hook, ...rule);
  return () => {
    try {
      nft('delete', 'table', 'inet', table);
    } catch {
      // removed already
    }
  };
}
