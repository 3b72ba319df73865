// How well each participant comes through, from the browser's own
// statistics: for each participant whose media we receive, the packets
// lost and the jitter over the last 2 s; for ourselves, what the server
// reports it lost of ours and the round trip. Shown on each tile as bars
// with words (for screen readers and not by colour alone). A picture the
// server paused because our link cannot carry it says so on its tile.
// Who speaks the server says (speakers.js).

import { onLanguageChange, t } from './i18n.js';
import { state } from './state.js';

/** How often the connections are rated. */
const LOOK_MS = 2000;

/** Rates the last interval: lost packets (a fraction of those due) and
 * jitter (seconds), as LiveKit's and Jitsi's indicators do, roughly. */
function rate(lost, jitter, rtt = 0) {
  if (lost > 0.1 || jitter > 0.1 || rtt > 0.5) return 'poor';
  if (lost > 0.02 || jitter > 0.03 || rtt > 0.25) return 'fair';
  return 'good';
}

/** Per participant id: the counters at the last look, to rate the change. */
const last = new Map();

function delta(key, received, lost) {
  const before = last.get(key) ?? { received, lost };
  last.set(key, { received, lost });
  const due = (received - before.received) + (lost - before.lost);
  return { due, lost: due > 0 ? (lost - before.lost) / due : 0 };
}

function receivedQuality(report) {
  const sums = new Map();
  report.forEach((s) => {
    if (s.type !== 'inbound-rtp') return;
    const owner = state.remoteTrackOwner.get(s.trackIdentifier);
    if (!owner || owner.screen) return;
    const sum = sums.get(owner.pid) ?? { received: 0, lost: 0, jitter: 0 };
    sum.received += s.packetsReceived || 0;
    sum.lost += Math.max(0, s.packetsLost || 0);
    sum.jitter = Math.max(sum.jitter, s.jitter || 0);
    sums.set(owner.pid, sum);
  });
  for (const [pid, p] of state.participants) {
    const sum = sums.get(pid);
    if (!sum) continue;
    const d = delta(pid, sum.received, sum.lost);
    // Nothing due (all muted, or nothing published): nothing to say.
    p.quality = d.due > 0 ? rate(d.lost, sum.jitter) : p.quality;
    showQuality(p.tile, p.quality);
  }
}

async function ownQuality() {
  let received = 0;
  let lost = 0;
  let jitter = 0;
  let rtt = 0;
  const report = await state.publisher.getStats();
  report.forEach((s) => {
    if (s.type === 'remote-inbound-rtp') {
      lost += Math.max(0, s.packetsLost || 0);
      jitter = Math.max(jitter, s.jitter || 0);
    } else if (s.type === 'outbound-rtp') {
      received += s.packetsSent || 0;
    } else if (s.type === 'candidate-pair' && s.nominated && s.currentRoundTripTime) {
      rtt = s.currentRoundTripTime;
    }
  });
  const d = delta(state.participantId, received - lost, lost);
  if (d.due === 0) return;
  state.quality = rate(d.lost, jitter, rtt);
  showQuality(document.querySelector('#grid .tile.self'), state.quality);
}

/** The bars and words on a tile's caption. */
function showQuality(tile, level) {
  const caption = tile?.querySelector('figcaption');
  if (!caption || !level) return;
  let q = caption.querySelector('.quality');
  if (!q) {
    q = document.createElement('span');
    q.className = 'quality';
    q.setAttribute('role', 'img');
    const bars = document.createElement('span');
    bars.setAttribute('aria-hidden', 'true');
    bars.className = 'bars';
    for (let i = 0; i < 3; i += 1) bars.append(document.createElement('i'));
    q.append(bars);
    caption.append(q);
  }
  q.dataset.level = level;
  const words = t(`quality.${level}`);
  q.setAttribute('aria-label', words);
  q.title = words;
}

/** One report of each side: how well each participant comes through. */
async function look() {
  // Nobody sees a hidden tab; it catches up on return.
  if (!state.participantId || document.hidden) return;
  try {
    if (state.subscriber) receivedQuality(await state.subscriber.getStats());
    if (state.publisher) await ownQuality();
  } catch (err) {
    // A connection closed while we looked: the next look is fresh.
    console.debug('no statistics now:', err);
  }
}

/** The tile a received track shows on. */
function tileOf(pid, trackId) {
  const p = state.participants.get(pid);
  const info = p?.tracks.get(trackId);
  if (!p || !info) return null;
  return info.source.startsWith('screen_share') ? p.screen?.tile : p.tile;
}

/** `track_paused`: the server stopped (or resumed) a picture we receive,
 * as our link cannot carry even its smallest size now. */
export function onTrackPaused({ participant_id: pid, track_id: trackId, paused }) {
  const tile = tileOf(pid, trackId);
  if (!tile) return;
  tile.classList.toggle('paused', paused);
  let badge = tile.querySelector('.paused-badge');
  if (!paused) {
    badge?.remove();
    return;
  }
  if (!badge) {
    badge = document.createElement('p');
    badge.className = 'paused-badge';
    badge.setAttribute('role', 'status');
    tile.append(badge);
  }
  badge.textContent = t('meeting.pausedWeak');
}

/** After leaving: nothing of the last meeting's counters is compared. */
export function resetQuality() {
  last.clear();
  state.quality = null;
}

setInterval(look, LOOK_MS);
onLanguageChange(() => {
  for (const badge of document.querySelectorAll('#grid .paused-badge')) badge.textContent = t('meeting.pausedWeak');
  for (const p of state.participants.values()) showQuality(p.tile, p.quality);
  showQuality(document.querySelector('#grid .tile.self'), state.quality);
});
