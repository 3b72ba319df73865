// Generates the meet dashboard (dashboards/meet.json) with Grafana's
// Foundation SDK: `npm run build` here, after `npm ci`. The JSON is
// committed; web/tests/dashboard.test.mjs checks that it is this script's
// output and runs every panel's query against a real Prometheus scraping a
// real meeting. Metrics: docs/metrics.md.

import { createRequire } from 'node:module';

// The SDK is CommonJS; its re-exports are invisible to ESM named imports.
const require = createRequire(import.meta.url);
const dashboard = require('@grafana/grafana-foundation-sdk/dashboard');
const prometheus = require('@grafana/grafana-foundation-sdk/prometheus');
const stat = require('@grafana/grafana-foundation-sdk/stat');
const timeseries = require('@grafana/grafana-foundation-sdk/timeseries');

// Every query goes through the datasource variable: it picks the
// provisioned datasource (uid meet-prometheus) where there is one, else
// Grafana's default Prometheus, so the dashboard also works on a Grafana
// that already has a Prometheus scraping meet.
const ds = { type: 'prometheus', uid: '${datasource}' };
// Which meet servers: the scrape job (whatever it is called) and the
// instances in it. Prometheus-side names are never assumed.
const sel = 'job=~"$job",instance=~"$instance"';
const rate = (expr, range = '$__rate_interval') => `rate(${expr}[${range}])`;
const quantile = (q, metric, range) =>
  `histogram_quantile(${q}, sum by (le) (${rate(`${metric}_bucket{${sel}}`, range)}))`;

/** A query: PromQL and the legend of its series. */
const q = (expr, legend) => new prometheus.DataqueryBuilder().datasource(ds).expr(expr).legendFormat(legend);

function statPanel(title, description, query, unit = 'none') {
  return new stat.PanelBuilder()
    .title(title).description(description).datasource(ds).unit(unit)
    .height(4).span(4)
    .withTarget(query);
}

function graph(title, description, unit, ...queries) {
  let p = new timeseries.PanelBuilder()
    .title(title).description(description).datasource(ds).unit(unit)
    .height(8).span(8).min(0);
  for (const query of queries) p = p.withTarget(query);
  return p;
}

const b = new dashboard.DashboardBuilder('meet')
  .uid('meet-overview')
  .description('Meetings now, their quality, the load and what fails. Built by ops/grafana/dashboard.mjs.')
  .tags(['meet'])
  .refresh('30s')
  .time({ from: 'now-1h', to: 'now' })
  .timezone('browser')
  .withVariable(new dashboard.DatasourceVariableBuilder('datasource').label('Prometheus').type('prometheus')
    .current({ text: 'Prometheus (meet)', value: 'meet-prometheus' }))
  // Jobs and instances that export meet's metrics (meet_joins_total
  // always exists), not every target of the Prometheus.
  .withVariable(new dashboard.QueryVariableBuilder('job').label('Job')
    .description('The Prometheus scrape job of the meet servers.')
    .datasource(ds)
    .query('label_values(meet_joins_total, job)').definition('label_values(meet_joins_total, job)')
    .refresh(dashboard.VariableRefresh.OnTimeRangeChanged).sort(dashboard.VariableSort.AlphabeticalAsc))
  .withVariable(new dashboard.QueryVariableBuilder('instance').label('Instance')
    .description('The meet servers of that job: one, several or all (summed).')
    .datasource(ds)
    .query('label_values(meet_joins_total{job=~"$job"}, instance)').definition('label_values(meet_joins_total{job=~"$job"}, instance)')
    .multi(true).includeAll(true).allValue('.*')
    .current({ text: 'All', value: '$__all' })
    .refresh(dashboard.VariableRefresh.OnTimeRangeChanged).sort(dashboard.VariableSort.AlphabeticalAsc))

  .withRow(new dashboard.RowBuilder('How many meetings and people now'))
  .withPanel(statPanel('Meetings', 'Meetings with at least one participant.',
    q(`sum(meet_rooms{${sel}})`, 'meetings')))
  .withPanel(statPanel('Participants', 'Participants in meetings.',
    q(`sum(meet_participants{${sel}})`, 'participants')))
  .withPanel(statPanel('Hosts', 'Participants signed in as hosts.',
    q(`sum(meet_participants{${sel},role="host"})`, 'hosts')))
  .withPanel(statPanel('Cameras', 'Camera tracks being published.',
    q(`sum(meet_published_tracks{${sel},source="camera"})`, 'cameras')))
  .withPanel(statPanel('Screen shares', 'Screen shares being published.',
    q(`sum(meet_published_tracks{${sel},source="screen_share"})`, 'screen shares')))
  .withPanel(statPanel('Signalling connections', 'Open WebSocket connections.',
    q(`sum(meet_signalling_connections{${sel}})`, 'connections')))
  .withPanel(graph('Participants and meetings', 'Over time.', 'none',
    q(`sum(meet_participants{${sel}})`, 'participants'),
    q(`sum(meet_rooms{${sel}})`, 'meetings')))
  .withPanel(graph('Published tracks', 'By kind and source.', 'none',
    q(`sum by (kind, source) (meet_published_tracks{${sel}})`, '{{kind}} {{source}}')))
  .withPanel(graph('Joins', 'Participants admitted per second.', 'ops',
    q(`sum(${rate(`meet_joins_total{${sel}}`)})`, 'joins')))

  .withRow(new dashboard.RowBuilder('How good is it'))
  .withPanel(graph('Packet loss', 'From subscribers\' receiver reports: the loss in one report in two (median), one in twenty (95th percentile), and the share of reports over 5% loss.', 'percentunit',
    q(quantile(0.5, 'meet_media_loss_ratio'), 'median'),
    q(quantile(0.95, 'meet_media_loss_ratio'), '95th percentile'),
    q(`1 - sum(${rate(`meet_media_loss_ratio_bucket{${sel},le="0.05"}`)}) / sum(${rate(`meet_media_loss_ratio_count{${sel}}`)})`, 'reports over 5%')))
  .withPanel(graph('Round-trip time', 'Between the server and subscribers, from their receiver reports.', 's',
    q(quantile(0.5, 'meet_media_rtt_seconds'), 'median'),
    q(quantile(0.95, 'meet_media_rtt_seconds'), '95th percentile')))
  .withPanel(graph('Jitter', 'Interarrival jitter at subscribers.', 's',
    q(quantile(0.5, 'meet_media_jitter_seconds'), 'median'),
    q(quantile(0.95, 'meet_media_jitter_seconds'), '95th percentile')))
  .withPanel(graph('Simulcast layers forwarded', 'Subscriptions to simulcast video, by the layer each gets now.', 'none',
    q(`sum by (layer) (meet_simulcast_subscriptions{${sel}})`, '{{layer}}')))
  // Joins are rare events: over the last 15 minutes, not the rate interval.
  .withPanel(graph('Join to first media', 'How long participants who joined in the last 15 minutes waited from joining to their first media packet.', 's',
    q(quantile(0.5, 'meet_join_to_media_seconds', '15m'), 'median'),
    q(quantile(0.95, 'meet_join_to_media_seconds', '15m'), '95th percentile')))
  .withPanel(graph('Repairs', 'NACKs from subscribers, packets resent, those that could not be, and keyframe requests, per second.', 'ops',
    q(`sum(${rate(`meet_rtcp_nacks_received_total{${sel}}`)})`, 'NACKs received'),
    q(`sum(${rate(`meet_rtp_retransmissions_total{${sel}}`)})`, 'packets resent'),
    q(`sum(${rate(`meet_rtp_nacks_unanswered_total{${sel}}`)})`, 'not resent'),
    q(`sum(${rate(`meet_keyframe_requests_received_total{${sel}}`)})`, 'keyframe requests received'),
    q(`sum(${rate(`meet_keyframe_requests_total{${sel}}`)})`, 'keyframe requests sent')))

  .withRow(new dashboard.RowBuilder('How full is it'))
  .withPanel(graph('CPU', 'CPU time of the server process, in cores.', 'none',
    q(rate(`process_cpu_seconds_total{${sel}}`), '{{instance}}')))
  .withPanel(graph('Media workers busy', 'Each worker\'s busy fraction: a meeting lives on one worker, which saturates at 1.', 'percentunit',
    q(rate(`meet_worker_busy_seconds_total{${sel}}`), 'worker {{worker}}')))
  .withPanel(graph('Slow wake-ups', 'Worker wake-ups busy over 5 ms, per second: every room on the worker waited.', 'ops',
    q(`sum by (worker) (${rate(`meet_worker_slow_wakeups_total{${sel}}`)})`, 'worker {{worker}}')))
  .withPanel(graph('Packets', 'RTP packets received from publishers and forwarded to subscribers, per second.', 'pps',
    q(`sum(${rate(`meet_rtp_packets_received_total{${sel}}`)})`, 'received'),
    q(`sum(${rate(`meet_rtp_packets_forwarded_total{${sel}}`)})`, 'forwarded')))
  .withPanel(graph('Bandwidth', 'On the media ports, in and out.', 'bps',
    q(`8 * sum(${rate(`meet_media_received_bytes_total{${sel}}`)})`, 'in'),
    q(`8 * sum(${rate(`meet_media_sent_bytes_total{${sel}}`)})`, 'out')))
  .withPanel(graph('Memory', 'Resident memory of the server process.', 'bytes',
    q(`process_resident_memory_bytes{${sel}}`, 'resident memory')))
  .withPanel(graph('File descriptors', 'Open, and the limit.', 'none',
    q(`process_open_fds{${sel}}`, 'open'),
    q(`process_max_fds{${sel}}`, 'limit')))
  .withPanel(graph('Send drops', 'Datagrams given up on before sending, per second, by class.', 'ops',
    q(`sum by (class) (${rate(`meet_send_dropped_total{${sel}}`)})`, '{{class}}')))

  // Several servers sharing meetings through Redis (docs/operating.md,
  // "Several servers"); on a server alone these read 0.
  .withRow(new dashboard.RowBuilder('Several servers'))
  .withPanel(statPanel('Servers in the registry', 'Servers sharing the meetings, as each last read the registry (the fewest any of them sees): fewer than you run means one is cut off. 0 on a server alone.',
    q(`min(meet_cluster_nodes{${sel}})`, 'servers')))
  .withPanel(statPanel('Redis reachable', '1 while the server\'s commands to Redis are answered, per server.',
    q(`meet_cluster_redis_up{${sel}}`, '{{instance}}')))
  .withPanel(graph('Meetings per server', 'Meetings whose lease each server holds: where each meeting lives.', 'none',
    q(`meet_cluster_leases{${sel}}`, '{{instance}}')))
  .withPanel(graph('Participants per server', 'Where the people are: new meetings go to the server with the fewest.', 'none',
    q(`sum by (instance) (meet_participants{${sel}})`, '{{instance}}')))
  .withPanel(graph('Joins sent on, meetings moved', 'Per second: joins sent on to the server that holds their meeting, and meetings closed on a server because another holds them now (after it was cut off).', 'ops',
    q(`sum by (instance) (${rate(`meet_cluster_redirects_total{${sel}}`)})`, '{{instance}} sent on'),
    q(`sum by (instance) (${rate(`meet_cluster_leases_lost_total{${sel}}`)})`, '{{instance}} moved away')))

  .withRow(new dashboard.RowBuilder('What is failing'))
  .withPanel(statPanel('Server up', '1 while Prometheus can scrape the server.',
    q(`up{${sel}}`, '{{instance}}')))
  .withPanel(statPanel('Homeserver reachable', '1 while the Matrix homeserver answers.',
    q(`meet_chat_homeserver_reachable{${sel}}`, '{{instance}}')))
  .withPanel(statPanel('Chat outbox', 'Chat messages waiting for the homeserver.',
    q(`sum(meet_chat_outbox_events{${sel}})`, 'waiting')))
  .withPanel(graph('Media connection failures', 'Per second, by reason (docs/metrics.md): ICE or DTLS failed, never connected, or gone silent.', 'ops',
    q(`sum by (reason) (${rate(`meet_media_connection_failures_total{${sel}}`)})`, '{{reason}}')))
  .withPanel(graph('Signalling errors', 'Error replies per second, by code (room_full, invalid_token, ...).', 'ops',
    q(`sum by (code) (${rate(`meet_signalling_errors_total{${sel}}`)})`, '{{code}}')))
  .withPanel(graph('Chat', 'Messages relayed per second, by direction; the outbox depth.', 'none',
    q(`sum by (direction) (${rate(`meet_chat_messages_total{${sel}}`)})`, '{{direction}}'),
    q(`sum(meet_chat_outbox_events{${sel}})`, 'outbox')))
  .withPanel(graph('Limits hit', 'Requests refused per second because a configured limit was reached, by limit (docs/metrics.md): floods, full meetings, too many connections from one address.', 'ops',
    q(`sum by (limit) (${rate(`meet_limits_hit_total{${sel}}`)})`, '{{limit}}')))
  .withPanel(statPanel('TURN reachable', '1 while each configured TURN server can be used (docs/metrics.md says how meet probes it), 0 while it cannot: staff behind strict firewalls reach meetings only through it.',
    q(`meet_turn_reachable{${sel}}`, '{{url}}')))
  .withPanel(graph('Through TCP', 'ICE-over-TCP connections open on the media workers (clients whose firewall drops UDP and who use no TURN server), and those refused.', 'none',
    q(`sum(meet_ice_tcp_connections{${sel}})`, 'open'),
    q(`sum(${rate(`meet_ice_tcp_connections_refused_total{${sel}}`)})`, 'refused per second')))
  .withPanel(graph('Dropped datagrams', 'Datagrams from unknown senders or garbage, oversized, and refused by the engine, per second.', 'ops',
    q(`sum(${rate(`meet_datagrams_dropped_total{${sel}}`)})`, 'unknown or garbage'),
    q(`sum(${rate(`meet_datagrams_oversized_total{${sel}}`)})`, 'oversized'),
    q(`sum(${rate(`meet_engine_errors_total{${sel}}`)})`, 'engine errors')));

process.stdout.write(`${JSON.stringify(b.build(), null, 2)}\n`);
