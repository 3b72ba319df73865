// A browser whose firewall drops every UDP datagram reaches meet without
// any TURN server: over ICE-TCP, to the passive TCP candidates meet
// advertises on its own TCP port (`ice_tcp_port`). An nftables rule in
// this test's network namespace drops all UDP; two pages still decode each
// other's video, and their selected candidate pairs are TCP. A third page,
// with UDP let through again, picks UDP.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cleanUp, joinPage, launchBrowser, nftRule, receivedByName, startServer, until,
} from './harness.mjs';

/** The protocol and type of both candidates of the subscriber connection's selected pair. */
function selectedPair(p) {
  return p.page.evaluate(async () => {
    const stats = await window.meet.state.subscriber.getStats();
    let pairId = null;
    stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
    const pair = pairId && stats.get(pairId);
    if (!pair) return null;
    const local = stats.get(pair.localCandidateId);
    const remote = stats.get(pair.remoteCandidateId);
    return {
      local: `${local.protocol} ${local.candidateType}`,
      remote: `${remote.protocol} ${remote.candidateType} ${remote.tcpType || ''}`.trim(),
    };
  });
}

test('with all UDP dropped, pages meet over ICE-TCP without a TURN server', async (t) => {
  const server = await startServer({ MEET_ICE_TCP_PORT: '0', MEET_MEDIA_IPS: '["10.99.0.1"]' });
  const browser = await launchBrowser();
  const unblockUdp = nftRule('meetnoudp', 'output', 'meta', 'l4proto', 'udp', 'drop');
  t.after(() => cleanUp(unblockUdp, () => browser.close(), () => server.stop()));

  const started = Date.now();
  const ann = await joinPage(browser, server.url, 'firewalled', 'Ann', {}, { t });
  const bo = await joinPage(browser, server.url, 'firewalled', 'Bo', {}, { t });
  await until('Ann and Bo decode each other\'s video', async () => {
    const [a, b] = await Promise.all([receivedByName(ann), receivedByName(bo)]);
    return a.Bo?.framesDecoded > 30 && b.Ann?.framesDecoded > 30;
  }, 30000);
  console.log(`# measured: two pages with all UDP dropped decoded each other's video ${Date.now() - started} ms after the first opened`);
  for (const p of [ann, bo]) {
    const pair = await selectedPair(p);
    console.log(`# measured: ${p.name}'s selected pair: local ${pair?.local}, remote ${pair?.remote}`);
    // The browser's side is its active TCP candidate, which it may list
    // as peer-reflexive once our answer names its ephemeral port.
    assert.match(pair?.local ?? '', /^tcp /, JSON.stringify(pair));
    assert.equal(pair.remote, 'tcp host passive');
  }
  // Where UDP gets through, a browser still picks it: TCP is the fallback.
  unblockUdp();
  const cid = await joinPage(browser, server.url, 'firewalled', 'Cid', {}, { t });
  await until('Cid decodes Ann', async () => (await receivedByName(cid)).Ann?.framesDecoded > 10, 30000);
  const pair = await selectedPair(cid);
  assert.match(pair?.remote ?? '', /^udp host/, JSON.stringify(pair));

  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  const open = [...metrics.matchAll(/^meet_ice_tcp_connections\{worker="\d+"\} (\d+)/gm)]
    .reduce((sum, m) => sum + Number(m[1]), 0);
  assert.ok(open >= 2, `ICE-TCP connections in /metrics: ${open}`);
});
