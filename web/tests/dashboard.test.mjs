// The Grafana dashboard (ops/grafana/) and the alerting rules
// (ops/prometheus/rules/) against a real meeting: four Chromium pages meet
// through the real server, which speaks HTTPS itself (a certificate made
// here) with its metrics on a listener of their own, chat on a real
// Synapse, TURN (Debian's coturn, over UDP and over TLS) and ICE over TCP
// offered. Debian's Prometheus scrapes it every second under a job name
// that is not `meet`, with the rules loaded, and:
// - every panel's query must return data, as Grafana would ask it (no
//   Grafana server can be installed here), for the job and instance the
//   dashboard's variables offer;
// - every rule must evaluate without error, and every series a rule names
//   must exist on the running server: a rule on a metric the server does
//   not export (or not before some event) would never fire.
// Also: the committed JSON is the generator's output, and it names no
// job, instance or datasource of its own.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  startServer, startPrometheus, startSynapse, registerUser, launchBrowser, joinPage, receivedByName, until, cleanUp,
  freePort,
} from './harness.mjs';
import { TURN_IP, startCoturn } from './coturn.mjs';
import { expectedSeries, selectorText, selectors } from './promql.mjs';

const opsDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'ops');
const grafanaDir = join(opsDir, 'grafana');
const rulesDir = join(opsDir, 'prometheus', 'rules');
const committed = readFileSync(join(grafanaDir, 'dashboards', 'meet.json'), 'utf8');
const BOT_PASSWORD = 'bot-test-password';
// Not `meet`: nothing may depend on what the operator calls the job.
const JOB = 'video';

/**
 * Series a rule names that may be absent from this test's server, each
 * with the reason it cannot exist here. None: the configuration above
 * gives the server every feature a rule is about. Keep it that way; an
 * entry that is not absent fails the test.
 */
const MAY_BE_ABSENT = new Map([]);

let syn;
let storeDir;
let tlsDir;
let server;
let metricsHost;
let prometheus;
let browser;
let coturn;

before(async () => {
  syn = await startSynapse();
  await registerUser(syn, 'meetbot', BOT_PASSWORD);
  storeDir = mkdtempSync(join(tmpdir(), 'meet-matrix-store-'));
  const secret = randomBytes(32).toString('hex');
  // One self-signed certificate, a day long, for meet's HTTPS and
  // coturn's TLS: both are what meet_certificate_expiry_timestamp_seconds
  // reports, and both are under MeetCertificateExpiring's 14 days.
  tlsDir = mkdtempSync(join(tmpdir(), 'meet-dashboard-tls-'));
  const cert = join(tlsDir, 'cert.pem');
  const key = join(tlsDir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
    '-subj', '/CN=meet test', '-addext', `subjectAltName=IP:127.0.0.1,IP:${TURN_IP}`,
    '-keyout', key, '-out', cert], { stdio: 'ignore' });
  const turnPort = await freePort();
  const turnTlsPort = await freePort();
  coturn = await startCoturn(turnPort, secret, { port: turnTlsPort, cert, key });
  metricsHost = `127.0.0.1:${await freePort()}`;
  server = await startServer({
    MEET_TLS_CERTIFICATE: cert,
    MEET_TLS_PRIVATE_KEY: key,
    MEET_METRICS_LISTEN: metricsHost,
    MEET_MATRIX_HOMESERVER: syn.url,
    MEET_MATRIX_USER: 'meetbot',
    MEET_MATRIX_PASSWORD: BOT_PASSWORD,
    MEET_MATRIX_STORE: storeDir,
    MEET_TURN_URLS: JSON.stringify([
      `turn:${TURN_IP}:${turnPort}?transport=udp`,
      `turns:${TURN_IP}:${turnTlsPort}?transport=tcp`,
    ]),
    MEET_TURN_SECRET: secret,
    MEET_ICE_TCP_PORT: '0',
  });
  assert.match(server.url, /^https:/);
  prometheus = await startPrometheus(metricsHost, { job: JOB, rules: [join(rulesDir, '*.yml')] });
  browser = await launchBrowser();
}, { timeout: 1200000 }); // a first run installs Synapse (pip)

after(() => cleanUp(
  () => browser?.close(),
  () => prometheus?.stop(),
  () => server?.stop(),
  () => coturn?.stop(),
  () => syn?.destroy(),
  () => storeDir && rmSync(storeDir, { recursive: true, force: true }),
  () => tlsDir && rmSync(tlsDir, { recursive: true, force: true }),
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

test('the dashboard takes job, instance and datasource from its variables', () => {
  const dashboard = JSON.parse(committed);
  const variables = dashboard.templating.list.map((v) => v.name);
  assert.deepEqual(variables, ['datasource', 'job', 'instance']);
  const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels || [])]);
  const refs = [
    ...panels.filter((p) => p.datasource).map((p) => [p.title, p.datasource]),
    ...panels.flatMap((p) => (p.targets || []).map((t) => [p.title, t.datasource])),
    ...dashboard.templating.list.filter((v) => v.type === 'query').map((v) => [`variable ${v.name}`, v.datasource]),
  ];
  for (const [what, ref] of refs) assert.deepEqual(ref, { type: 'prometheus', uid: '${datasource}' }, what);
  for (const { title, legend, expr } of panelQueries(dashboard)) {
    const found = selectors(expr);
    assert.ok(found.length > 0, `${title} (${legend}): no series in ${expr}`);
    for (const s of found) {
      const m = Object.fromEntries(s.matchers.map((x) => [x.label, `${x.op}${x.value}`]));
      assert.equal(m.job, '=~$job', `${title} (${legend}): ${selectorText(s)}`);
      assert.equal(m.instance, '=~$instance', `${title} (${legend}): ${selectorText(s)}`);
    }
  }
  // The provisioned datasource must not take over an existing Grafana's default.
  const provisioned = readFileSync(join(grafanaDir, 'provisioning', 'datasources', 'meet.yml'), 'utf8');
  assert.match(provisioned, /^\s*isDefault: false$/m);
  assert.match(provisioned, /^\s*uid: meet-prometheus$/m);
  assert.equal(dashboard.templating.list[0].current.value, 'meet-prometheus');
});

/** A value as Grafana puts it in a regex matcher: regex-escaped, in a PromQL string. */
const regexValue = (v) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\\\$&');

/** As Grafana would send it, with its variables replaced by concrete values. */
function concrete(expr) {
  return expr.replaceAll('$__rate_interval', '10s').replaceAll('$__interval', '1s')
    .replaceAll('$job', regexValue(JOB)).replaceAll('$instance', regexValue(metricsHost));
}

test('every panel of the dashboard shows data during a four-person meeting', async (t) => {
  const room = 'dashboard-standup';
  const names = ['Alice', 'Bob', 'Carol', 'Dave'];
  const pages = [];
  // The certificate is self-signed.
  const options = { t, contextOptions: { ignoreHTTPSErrors: true } };
  for (const name of names) pages.push(await joinPage(browser, server.url, room, name, {}, options));
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
    && await prometheus.query('min(meet_turn_reachable{url=~"turn:.*"})') === 1
  ), 30000, 500);
  // Rates over 10 s need 10 s of samples since the last change.
  await new Promise((r) => setTimeout(r, 12000));

  // The variables' choices, as Grafana asks for label_values(): this
  // test's job, and its server in it.
  const dashboard = JSON.parse(committed);
  for (const v of dashboard.templating.list.filter((x) => x.type === 'query')) {
    const m = /^label_values\((.*), (\w+)\)$/.exec(v.query);
    assert.ok(m, `variable ${v.name}: ${v.query}`);
    const match = m[1].replaceAll('$job', regexValue(JOB));
    const r = await prometheus.api(`/api/v1/label/${m[2]}/values?match[]=${encodeURIComponent(match)}`);
    assert.deepEqual(r.data, [{ job: JOB, instance: metricsHost }[v.name]], `variable ${v.name}: ${v.query}`);
  }
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

/** The alerting rules' expressions, as Prometheus loaded them. */
async function loadedRules() {
  const text = readdirSync(rulesDir).filter((f) => f.endsWith('.yml'))
    .map((f) => readFileSync(join(rulesDir, f), 'utf8')).join('\n');
  const inFiles = text.match(/^\s*- (alert|record):/gm).length;
  // Evaluated once at least, every one of them.
  return until(`Prometheus to load and evaluate the ${inFiles} rules`, async () => {
    const r = await prometheus.api('/api/v1/rules');
    const rules = r.data.groups.flatMap((g) => g.rules);
    return rules.length === inFiles && rules.every((x) => !x.lastEvaluation.startsWith('0001-')) && rules;
  }, 30000, 500);
}

test('every alerting rule evaluates, and every series it names exists on the server', async () => {
  const rules = await loadedRules();
  for (const r of rules) assert.equal(r.health, 'ok', `${r.name}: ${r.lastError}\n${r.query}`);
  const wanted = rules.flatMap((r) => {
    const found = selectors(r.query);
    assert.ok(found.length > 0, `${r.name}: no series in ${r.query}`);
    return found.flatMap(expectedSeries).map((s) => ({ rule: r.name, series: selectorText(s) }));
  });
  // The server's figures, the rules' own records (instance:meet_server:known)
  // and Prometheus's `up`: all are in Prometheus, under this test's job.
  const absent = async () => {
    const out = [];
    for (const w of wanted) {
      const n = await prometheus.query(`count(${w.series})`);
      if (!(n > 0)) out.push(w);
    }
    return out;
  };
  // Probes (TURN every 15 s) and chat's first sync may still be on their way.
  let missing = await absent();
  const deadline = Date.now() + 20000;
  while (missing.some((w) => !MAY_BE_ABSENT.has(w.series)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 1000));
    missing = await absent();
  }
  const names = [...new Set(wanted.map((w) => w.series))];
  console.log(`# measured: ${rules.length} rules name ${names.length} series; absent: ${missing.map((w) => w.series).join(', ') || 'none'}`);
  const endpoints = await prometheus.api(`/api/v1/label/endpoint/values?match[]=meet_certificate_expiry_timestamp_seconds`);
  console.log(`# measured: certificate expiry reported for: ${(endpoints.data || []).join(', ') || 'none'}`);
  const unexplained = missing.filter((w) => !MAY_BE_ABSENT.has(w.series));
  assert.deepEqual(unexplained.map((w) => `${w.rule}: ${w.series}`), [],
    'rules name series the server does not export (or not before some event: pre-initialise them)');
  const present = [...MAY_BE_ABSENT.keys()].filter((s) => !missing.some((w) => w.series === s));
  assert.deepEqual(present, [], 'in MAY_BE_ABSENT, yet present: take them out');
});

test('MeetCertificateExpiring sees the day-long certificate of the built-in HTTPS listener', async () => {
  // `for` keeps it pending (10 minutes) rather than firing, here.
  await until('MeetCertificateExpiring to be pending for endpoint="https"', async () => (
    await prometheus.query(`ALERTS{alertname="MeetCertificateExpiring",endpoint="https",job="${JOB}"}`) === 1
  ), 20000, 500);
});
