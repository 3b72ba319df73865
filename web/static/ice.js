// Following a new network without a rejoin: when the browser says its
// network changed, when everything that was arriving stops arriving, or
// when a connection's ICE state stays `disconnected` for a moment or turns
// `failed`, both connections restart ICE (the publisher
// with a new offer, the subscriber by asking the server for one: v1's
// `restart_ice`). The participant, its tracks and DTLS stay; only the path
// changes. If media has not come back a few seconds after a restart, the
// full rejoin (session.js) is the fallback.

import { state } from './state.js';
import { negotiatePublisher } from './peers.js';

/** A connection `disconnected` this long is restarted (browsers often
 * recover from a shorter blip by themselves). */
const DISCONNECTED_GRACE_MS = 1000;
/** Triggers closer together than this make one restart. */
const MIN_INTERVAL_MS = 2000;
/** Without media on every connection this long after a restart, rejoin. */
const FALLBACK_MS = 6000;
/** A server that says nothing this long after a restart was asked of it
 * (no answer to the new offer, no offer of its own) hangs or is cut off
 * from us: rejoin at once, through another server if need be. */
const ANSWER_MS = 2000;
/** A path that lost its address says nothing: Chromium turns `disconnected`
 * only after about 5 s. Each connection that is in use hears from the
 * server several times a second (media, or for a publisher transport-wide
 * feedback), so silence on all of them this long means the path is gone. */
const SILENCE_MS = 1000;
/** A connection that heard nothing for this long is not in use (a
 * subscriber nobody publishes to), so its silence says nothing. */
const IN_USE_MS = 4000;
const LOOK_MS = 250;

let rejoin = () => {};
let lastRestart = -Infinity;
let fallbackTimer = null;
let answerTimer = null;

/** `fallback`: the full rejoin, for a restart that did not help. */
export function setupIceRestart(fallback) {
  rejoin = fallback;
  addEventListener('online', () => restartIce('online'));
  // Going offline is a change too; a restart then is of no use.
  navigator.connection?.addEventListener('change', () => { if (navigator.onLine) restartIce('network change'); });
  setInterval(listen, LOOK_MS);
}

/** When each connection last received something, and how much it had. */
const heard = new WeakMap();

/** Restarts ICE when every connection in use has gone silent. */
async function listen() {
  const now = performance.now();
  const silences = [];
  for (const pc of negotiated()) {
    let bytes = 0;
    (await pc.getStats()).forEach((s) => { if (s.type === 'transport') bytes += s.bytesReceived || 0; });
    const last = heard.get(pc);
    if (!last || bytes !== last.bytes) heard.set(pc, { bytes, at: now });
    const silence = now - heard.get(pc).at;
    if (silence < IN_USE_MS) silences.push(silence);
  }
  if (silences.length > 0 && silences.every((s) => s >= SILENCE_MS)) restartIce('silence');
}

/** Restarts `pc` (and its sibling) when its ICE state says the path is
 * gone. Its states and local candidates go to the console at debug level:
 * where a restart's time goes. */
export function watchIce(pc, name) {
  let graceTimer = null;
  pc.addEventListener('icegatheringstatechange', () => console.debug(`${name} ICE gathering ${pc.iceGatheringState}`));
  pc.addEventListener('icecandidate', (e) => {
    if (e.candidate) console.debug(`${name} ICE candidate ${e.candidate.type} ${e.candidate.address}`);
  });
  pc.addEventListener('iceconnectionstatechange', () => {
    console.debug(`${name} ICE ${pc.iceConnectionState}`);
    clearTimeout(graceTimer);
    if (pc.iceConnectionState === 'failed') restartIce('ice failed');
    else if (pc.iceConnectionState === 'disconnected') {
      graceTimer = setTimeout(() => {
        if (pc.iceConnectionState === 'disconnected') restartIce('ice disconnected');
      }, DISCONNECTED_GRACE_MS);
    }
  });
}

/** The connections something was negotiated on: those that carry media. */
function negotiated() {
  return [state.publisher, state.subscriber].filter((pc) => pc?.remoteDescription);
}

const flowing = (pc) => ['connected', 'completed'].includes(pc.iceConnectionState);

/** Restarts ICE on both connections, and arms the fallback. */
export function restartIce(why) {
  const { signalling } = state;
  if (!state.participantId || !signalling || negotiated().length === 0) return;
  const now = performance.now();
  if (now - lastRestart < MIN_INTERVAL_MS) return;
  // A server that has not answered the last restart will not answer
  // another: its deadline stands (a new one would put the rejoin off).
  if (answerTimer !== null && signalling.lastHeard < lastRestart) return;
  lastRestart = now;
  state.iceRestarts += 1;
  console.info(`restarting ICE (${why})`);
  if (state.publisher?.remoteDescription) {
    state.publisher.restartIce();
    negotiatePublisher();
  }
  if (state.subscriber?.remoteDescription) signalling.send({ type: 'restart_ice' });
  const pcs = negotiated();
  clearTimeout(answerTimer);
  answerTimer = setTimeout(() => {
    answerTimer = null;
    if (signalling !== state.signalling || signalling.lastHeard >= now) return;
    console.warn('the server did not answer an ICE restart: rejoining');
    clearTimeout(fallbackTimer);
    rejoin();
  }, ANSWER_MS);
  clearTimeout(fallbackTimer);
  fallbackTimer = setTimeout(() => {
    // Left, or back on new connections, meanwhile: nothing to fall back from.
    if (signalling !== state.signalling || !pcs.every((pc) => negotiated().includes(pc))) return;
    if (pcs.every(flowing)) return;
    console.warn('ICE restart did not bring media back: rejoining');
    rejoin();
  }, FALLBACK_MS);
}
