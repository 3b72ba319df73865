// The two peer connections the server expects: "publisher" (we offer our
// tracks, the server answers) and "subscriber" (the server offers everyone
// else's tracks, we answer). Creating and closing them, trickling ICE, and
// their offers and answers, one at a time each.

import { t } from './i18n.js';
import { state, setStatus } from './state.js';

/** A new connection that trickles its ICE candidates to the server as `target`. */
export function newPeerConnection(target) {
  // Only the TURN servers the server hands out with `joined` (for
  // firewalls that block the media path); no STUN: the server is reachable
  // directly, and a meeting contacts nothing its operator did not configure.
  const pc = new RTCPeerConnection({
    bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require', iceServers: state.iceServers,
  });
  pc.onicecandidate = (e) => {
    state.signalling?.send({ type: 'candidate', target, candidate: e.candidate ? e.candidate.toJSON() : null });
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === 'failed') setStatus(t('meeting.mediaFailed'));
    else if (pc.connectionState === 'connected') setStatus('');
  };
  return pc;
}

/** Offers the publisher connection's current tracks; one offer at a time. */
export function negotiatePublisher() {
  state.publisherQueue = state.publisherQueue.then(async () => {
    const pc = state.publisher;
    if (!pc) return;
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const tracks = state.published.map(({ transceiver, source, track }) => ({
      mid: transceiver.mid, source, muted: !track.enabled,
    }));
    const answered = new Promise((resolve) => { state.onPublisherAnswer = resolve; });
    state.signalling?.send({ type: 'publisher_offer', sdp: pc.localDescription.sdp, tracks });
    await answered;
  }).catch((err) => {
    console.error('publishing failed', err);
    setStatus(t('meeting.sendFailed'));
  });
  return state.publisherQueue;
}

/** publisher_answer: the answer to our last offer. */
export async function onPublisherAnswer(msg) {
  try {
    await state.publisher?.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
  } finally {
    const done = state.onPublisherAnswer;
    state.onPublisherAnswer = null;
    if (done) done();
  }
}

/** The server refused our last offer (bad_sdp) and will not answer it:
 * let the next negotiation go ahead. */
export function offerRefused() {
  if (state.onPublisherAnswer) state.onPublisherAnswer();
}

/** subscriber_offer: answered strictly in order, on the connection and
 * session it came for: one still queued when the page leaves and joins
 * again must not reach the new connection. */
export function onSubscriberOffer(msg) {
  const { subscriber: pc, signalling } = state;
  state.subscriberQueue = state.subscriberQueue.then(async () => {
    if (!pc || pc !== state.subscriber || signalling !== state.signalling) return;
    await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    signalling.send({ type: 'subscriber_answer', sdp: pc.localDescription.sdp });
  }).catch((err) => {
    console.error('subscriber negotiation failed', err);
    setStatus(t('meeting.receiveFailed'));
  });
}

/** Leaving: closes both connections and drops what was under way on them. */
export function closePeers() {
  for (const pc of [state.publisher, state.subscriber]) if (pc) pc.close();
  state.publisher = state.subscriber = null;
  state.onPublisherAnswer = null;
  state.publisherQueue = Promise.resolve();
  state.subscriberQueue = Promise.resolve();
}

/** The SRTP cipher of each of our connections, e.g. "SRTP_AEAD_AES_128_GCM". */
export async function srtpCiphers() {
  const out = {};
  for (const [name, pc] of [['publisher', state.publisher], ['subscriber', state.subscriber]]) {
    if (!pc) continue;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'transport' && s.srtpCipher) out[name] = s.srtpCipher;
    });
  }
  return out;
}
