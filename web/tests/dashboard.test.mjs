// The Grafana dashboard (ops/grafana/) against a real meeting: four
// Chromium pages meet through the real server with chat on a real Synapse,
// a TURN server (Debian's coturn) and ICE over TCP offered, Debian's
// Prometheus scrapes it every second, and every panel's query
// must return data, as Grafana would ask it (no Grafana server can be
// installed here). Also: the committed JSON is the generator's output.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  startServer, startPrometheus, startSynapse, registerUser, launchBrowser, joinPage, receivedByName, until, cleanUp,
  freePort,
} from './harness.mjs';
import { TURN_IP, startCoturn } from './coturn.mjs';

const grafanaDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'ops', 'grafana');
const committed = readFileSync(join(grafanaDir, 'dashboards', 'meet.json'), 'utf8');
const BOT_PASSWORD = 'bot-test-password';

let syn;
let storeDir;
let server;
let prometheus;
let browser;
let coturn;

before(async () => {
  syn = await startSynapse();
  await registerUser(syn, 'meetbot', BOT_PASSWORD);
  storeDir = mkdtempSync(join(tmpdir(), 'meet-matrix-store-'));
  const secret = randomBytes(32).toString('hex');
  const turnPort = await freePort();
  coturn = await startCoturn(turnPort, secret);
  server = await startServer({
    MEET_MATRIX_HOMESERVER: syn.url,
    MEET_MATRIX_USER: 'meetbot',
    MEET_MATRIX_PASSWORD: BOT_PASSWORD,
    MEET_MATRIX_STORE: storeDir,
    MEET_TURN_URLS: JSON.stringify([`turn:${TURN_IP}:${turnPort}?transport=udp`]),
    MEET_TURN_SECRET: secret,
    MEET_ICE_TCP_PORT: '0',
  });
  prometheus = await startPrometheus(new URL(server.url).host);
  browser = await launchBrowser();
}, { timeout: 1200000 }); // a first run installs Synapse (pip)

after(() => cleanUp(
  () => browser?.close(),
  () => prometheus?.stop(),
  () => server?.stop(),
  () => coturn?.stop(),
  () => syn?.destroy(),
  () => storeDir && rmSync(storeDir, { recursive: true, force: true }),
));

test('the committed dashboard is what ops/grafana/dashboard.mjs generates', () => {
  const generated = execFileSync(process.execPath, [join(grafanaDir, 'dashboard.mjs')], { encoding: 'utf8' });
  assert.equal(committed, generated, 'run `npm run build` in ops/grafana and commit dashboards/meet.json');
});

/** Every query of every panel (rows' nested panels too), with its panel's title. */
function panelQueries(dashboard) {
  const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels || [])]);
  return panels.flatMap((p) => (p.targets || []).map((t) => ({ title: p.title, legend: t.legendFormat, expr: t.expr })));
}

/** As Grafana would send it, with its variables replaced by concrete values. */
function concrete(expr) {
  return expr.replaceAll('$__rate_interval', '10s').replaceAll('$__interval', '1s');
}

test('every panel of the dashboard shows data during a four-person meeting', async (t) => {
  const room = 'dashboard-standup';
  const names = ['Alice', 'Bob', 'Carol', 'Dave'];
  const pages = [];
  for (const name of names) pages.push(await joinPage(browser, server.url, room, name, {}, { t }));
  for (const p of pages) {
    const others = names.filter((n) => n !== p.name);
    await until(`${p.name} to decode video from ${others}`, async () => {
      const got = await receivedByName(p);
      return others.every((n) => got[n] && got[n].framesDecoded > 0);
    }, 60000, 250);
  }
  // What the failure panels are about: a client that sends nonsense
  // gets an error reply (counted by code).
  await pages[0].page.evaluate((url) => new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/ws`);
    ws.onopen = () => ws.send('not json');
    ws.onmessage = () => { ws.close(); resolve(); };
    ws.onerror = reject;
  }), server.url);
  // Receiver reports come about once a second per stream, rates need
  // two scrapes of each counter: wait until the slowest figures are in.
  await until('Prometheus to have round trips, joins to media and a signalling error', async () => (
    await prometheus.query('sum(meet_media_rtt_seconds_count)') > 0
    && await prometheus.query('sum(meet_join_to_media_seconds_count)') >= 4
    && await prometheus.query('sum(meet_participants)') === 4
    && await prometheus.query('sum(meet_signalling_errors_total)') > 0
    && await prometheus.query('meet_chat_homeserver_reachable') === 1
    && await prometheus.query('min(meet_turn_reachable)') === 1
  ), 30000, 500);
  // Rates over 10 s need 10 s of samples since the last change.
  await new Promise((r) => setTimeout(r, 12000));

  const dashboard = JSON.parse(committed);
  const queries = panelQueries(dashboard);
  assert.ok(queries.length >= 40, `only ${queries.length} queries`);
  const empty = [];
  for (const { title, legend, expr } of queries) {
    const r = await prometheus.queryRange(concrete(expr), 20);
    assert.equal(r.status, 'success', `${title} (${legend}): ${r.error}\n${expr}`);
    const latest = r.data.result
      .map((s) => ({ labels: s.metric, value: Number(s.values.at(-1)[1]) }))
      .filter((s) => !Number.isNaN(s.value));
    if (latest.length === 0) empty.push(`${title} (${legend}): ${expr}`);
    const shown = latest.map((s) => {
      const l = Object.values(s.labels).join(' ');
      return `${l ? `${l}=` : ''}${+s.value.toPrecision(3)}`;
    }).join(', ');
    console.log(`# measured: ${title} / ${legend}: ${shown || 'no data'}`);
  }
  assert.deepEqual(empty, [], 'panels without data');
});
