// The meeting page: pre-join screen, then a grid of participants.
//
// Two peer connections per participant, as the server expects: "publisher"
// (we offer our camera and microphone, the server answers) and "subscriber"
// (the server offers everyone else's tracks, we answer). Remote tracks arrive
// in a stream whose id is the publishing participant's id.
//
// Beside the grid, the meeting's chat (the server bridges it to a Matrix
// room). Someone with a Matrix account can join as themselves: inside
// Element the page is a widget and asks Element for an OpenID token (the
// Matrix widget API, MSC2762/MSC1960); elsewhere a token may come in the URL
// fragment as #openid=<base64url JSON>. The server checks the token and
// gives a meeting token for the join (POST /api/token).

import { Signalling, PROTOCOL_VERSION } from './signalling.js';

const $ = (id) => document.getElementById(id);

const room = decodeURIComponent(location.pathname.replace(/^\/m\//, '').replace(/\/$/, ''));
const params = new URLSearchParams(location.search);

const state = {
  localStream: null,
  signalling: null,
  publisher: null,
  subscriber: null,
  participantId: null,
  /** participant id -> { name, stream, tile, tracks: Map(track id -> info) } */
  participants: new Map(),
  /** receiver track id (as the browser names it) -> { pid, screen } */
  remoteTrackOwner: new Map(),
  /** received video track id -> the quality last asked for (track_settings) */
  sentQuality: new Map(),
  /** What we publish: [{ transceiver, source, track }] */
  published: [],
  /** Our screen share while it runs: { stream, transceiver } */
  screen: null,
  publisherQueue: Promise.resolve(),
  onPublisherAnswer: null,
  subscriberQueue: Promise.resolve(),
  joinedAt: 0,
  firstFrameMs: null,
  leaving: false,
  joining: false,
  /** Signed in with Matrix: { token, user_id, name, host } from /api/token. */
  identity: null,
  /** True while a Matrix sign-in is under way (the Join button waits). */
  identityPending: false,
  /** The Matrix sign-in failed: joining as a guest is the user's call. */
  identityFailed: false,
  /** What the server said about us in `joined`: { user_id, host } or null. */
  joinedIdentity: null,
  chat: newChatState(),
};

function newChatState() {
  return {
    /** `joined.chat`: { room_id, room_alias, delayed } or null. */
    info: null,
    delayed: false,
    /** id (event id, or local id while pending) -> message */
    byId: new Map(),
    /** Messages in display order. */
    order: [],
    /** reaction event id -> the message it is on */
    reactionTarget: new Map(),
    unread: 0,
    /** Keep the newest message in view (false once the reader scrolls up). */
    stickToBottom: true,
    lastSentAt: 0,
  };
}

// Storage may be refused (a widget in another site's page): then no memory.
function savedName() {
  try {
    return localStorage.getItem('meet.name');
  } catch {
    return null;
  }
}

function saveName(name) {
  try {
    localStorage.setItem('meet.name', name);
  } catch {
    // Nowhere to keep it.
  }
}

// ---------- signing in with Matrix ----------

// Started before anything else awaits, so that no message from Element is
// missed: { done: Promise } that settles once the sign-in has an outcome.
const identityFlow = startIdentity();

function startIdentity() {
  const displayName = matrixParam('displayName');
  if (displayName) $('name').value = displayName.slice(0, 64);
  const fromFragment = openidFromFragment();
  if (fromFragment) return exchangeOpenId(fromFragment);
  if (fromFragment === false) return Promise.resolve();
  const widget = startWidgetApi();
  if (widget) return widget;
  return Promise.resolve();
}

/** A URL parameter Element fills in; an unreplaced "$matrix_…" placeholder means none. */
function matrixParam(name) {
  const value = params.get(name);
  return value && !value.startsWith('$') ? value : null;
}

/** The OpenID token in "#openid=<base64url of its JSON>": the token, null
 * without one, false for one that cannot be read. */
function openidFromFragment() {
  const m = location.hash.match(/(?:^#|&)openid=([^&]*)/);
  if (!m) return null;
  // Do not leave the token in the address bar or the history.
  history.replaceState(history.state, '', location.pathname + location.search);
  try {
    const b64 = m[1].replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
    const token = JSON.parse(new TextDecoder().decode(bytes));
    if (!token || typeof token.access_token !== 'string') throw new Error('no access_token');
    return token;
  } catch {
    identityFailed('the sign-in link is damaged');
    return false;
  }
}

function setIdentityPending(pending, text = '') {
  state.identityPending = pending;
  if (pending) state.identityFailed = false;
  $('identity').textContent = text;
  updateJoinButton();
}

function identityFailed(why) {
  state.identity = null;
  state.identityFailed = true;
  setIdentityPending(false);
  $('identity-error').textContent = `Could not sign in with Matrix: ${why}. You can still join as a guest.`;
}

/** Trades a Matrix OpenID token for a meeting token. */
async function exchangeOpenId(openidToken) {
  setIdentityPending(true, 'Signing in with Matrix…');
  $('identity-error').textContent = '';
  let res;
  let body = null;
  try {
    res = await fetch('/api/token', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        room,
        openid_token: {
          access_token: openidToken.access_token,
          token_type: openidToken.token_type || 'Bearer',
          matrix_server_name: openidToken.matrix_server_name,
          expires_in: openidToken.expires_in,
        },
      }),
    });
    body = await res.json().catch(() => null);
  } catch {
    identityFailed('the meeting server cannot be reached');
    return;
  }
  if (!res.ok || !body || typeof body.token !== 'string') {
    identityFailed(body && body.message ? body.message : `the meeting server answered ${res.status}`);
    return;
  }
  state.identity = { token: body.token, user_id: body.user_id, name: body.name, host: !!body.host };
  if (body.name) $('name').value = body.name.slice(0, 64);
  $('name').readOnly = true;
  $('guest-button').hidden = false;
  setIdentityPending(false, `Signed in as ${body.user_id}`);
}

function joinAsGuest() {
  state.identity = null;
  $('name').readOnly = false;
  $('name').value = savedName() || '';
  $('guest-button').hidden = true;
  $('identity').textContent = '';
  $('name').focus();
}

function updateJoinButton() {
  $('join-button').disabled = state.joining || state.identityPending;
}

/**
 * The widget side of the Matrix widget API over postMessage, as far as we
 * need it: answer the client's requests (we ask for no capabilities) and
 * ask it for an OpenID token. Returns null when this page is no widget,
 * else a promise that settles once the sign-in has an outcome.
 */
function startWidgetApi() {
  const widgetId = params.get('widgetId');
  const parentUrl = params.get('parentUrl');
  if (!widgetId || !parentUrl || window.parent === window) return null;
  let parentOrigin;
  try {
    parentOrigin = new URL(parentUrl).origin;
  } catch {
    return null;
  }
  if (!parentOrigin || parentOrigin === 'null') return null;

  const post = (msg) => window.parent.postMessage(msg, parentOrigin);
  const waiting = new Map(); // our request id -> resolve
  let counter = 0;
  const request = (action, data = {}) => {
    const requestId = `meet-${Date.now()}-${++counter}`;
    post({ api: 'fromWidget', widgetId, requestId, action, data });
    return { requestId, response: new Promise((resolve) => waiting.set(requestId, resolve)) };
  };

  let openidRequestId = null;
  let settle;
  const done = new Promise((resolve) => { settle = resolve; });
  const credentials = (c) => {
    if (c && c.state === 'allowed' && c.access_token) {
      exchangeOpenId(c).then(settle);
    } else if (c && c.state === 'blocked') {
      identityFailed('Element did not allow the meeting to confirm who you are');
      settle();
    } else {
      identityFailed(c && c.error && c.error.message ? c.error.message : 'Element gave no token');
      settle();
    }
  };

  let asked = false;
  const askOpenId = () => {
    if (asked) return;
    asked = true;
    setIdentityPending(true, 'Asking Element who you are…');
    const { requestId, response } = request('get_openid');
    openidRequestId = requestId;
    const timer = setTimeout(() => {
      if (!waiting.delete(requestId)) return;
      identityFailed('Element did not answer');
      settle();
    }, 15000);
    response.then((r) => {
      clearTimeout(timer);
      if (r && r.state === 'request') {
        // Element asks the user; the answer comes as openid_credentials.
        setIdentityPending(false, 'Element is asking whether the meeting may confirm who you are…');
        settle();
      } else {
        credentials(r);
      }
    });
  };

  window.addEventListener('message', (ev) => {
    if (ev.origin !== parentOrigin || ev.source !== window.parent) return;
    const msg = ev.data;
    if (!msg || typeof msg !== 'object' || typeof msg.requestId !== 'string' || msg.widgetId !== widgetId) return;
    if (msg.api === 'fromWidget') {
      // The answer to one of our requests.
      const resolve = waiting.get(msg.requestId);
      if (resolve && msg.response !== undefined) {
        waiting.delete(msg.requestId);
        resolve(msg.response);
      }
      return;
    }
    if (msg.api !== 'toWidget' || msg.response !== undefined) return;
    let response = {};
    if (msg.action === 'capabilities') {
      response = { capabilities: [] };
    } else if (msg.action === 'supported_api_versions') {
      response = { supported_versions: ['0.0.1', '0.0.2'] };
    }
    post({ ...msg, response });
    if (msg.action === 'capabilities') {
      // Capabilities settled: now Element will hear us.
      setTimeout(askOpenId, 0);
    } else if (msg.action === 'openid_credentials' && msg.data && msg.data.original_request_id === openidRequestId) {
      if (!state.signalling) credentials(msg.data);
    }
  });

  // An Element that waits for the widget to say it is loaded (a widget with
  // waitForIframeLoad false) asks for capabilities only after this.
  setTimeout(() => {
    if (!asked) request('content_loaded');
  }, 2000);
  // A parent that never asks for capabilities: ask anyway.
  setTimeout(askOpenId, 5000);
  return done;
}

// ---------- pre-join ----------

async function acquireMedia() {
  const cam = $('camera').value;
  const mic = $('microphone').value;
  const constraints = {
    audio: mic ? { deviceId: { exact: mic } } : true,
    video: {
      // Chromium sends fewer simulcast layers for smaller sources.
      width: { ideal: 1280 },
      height: { ideal: 720 },
      frameRate: { ideal: 24 },
      ...(cam ? { deviceId: { exact: cam } } : {}),
    },
  };
  if (state.localStream) {
    state.localStream.getTracks().forEach((t) => t.stop());
  }
  try {
    state.localStream = await navigator.mediaDevices.getUserMedia(constraints);
  } catch (err) {
    // Without a camera (or permission for it) we can still join with audio,
    // or even with nothing and just watch.
    try {
      state.localStream = await navigator.mediaDevices.getUserMedia({ audio: constraints.audio });
    } catch {
      state.localStream = new MediaStream();
    }
    $('prejoin-error').textContent = `Camera or microphone unavailable: ${err.message}`;
  }
  $('preview').srcObject = state.localStream;
  $('preview-off').hidden = state.localStream.getVideoTracks().length > 0;
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [select, kind] of [[$('camera'), 'videoinput'], [$('microphone'), 'audioinput']]) {
    const current = select.value;
    select.replaceChildren();
    devices
      .filter((d) => d.kind === kind)
      .forEach((d, i) => {
        const option = new Option(d.label || `${kind === 'videoinput' ? 'Camera' : 'Microphone'} ${i + 1}`, d.deviceId);
        select.append(option);
      });
    if (current) select.value = current;
  }
}

async function setupPrejoin() {
  $('room-title').textContent = room;
  document.title = `${room} – Meeting`;
  if (!$('name').value && !state.identity) {
    $('name').value = params.get('name') || savedName() || '';
  }
  await acquireMedia();
  await listDevices().catch(() => {});
  $('camera').addEventListener('change', acquireMedia);
  $('microphone').addEventListener('change', acquireMedia);
  $('join-form').addEventListener('submit', (e) => {
    e.preventDefault();
    join($('name').value.trim());
  });
  $('guest-button').addEventListener('click', joinAsGuest);
}

// ---------- meeting ----------

function wsUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

function setStatus(text) {
  $('status').textContent = text;
}

async function join(name) {
  if (!name) {
    $('prejoin-error').textContent = 'Please enter your name.';
    return;
  }
  if (state.joining || state.signalling) return;
  if (!state.identity) saveName(name);
  state.joining = true;
  updateJoinButton();
  state.leaving = false;
  state.joinedAt = performance.now();
  state.firstFrameMs = null;
  resetChat();
  state.participantId = null;
  state.joinedIdentity = null;
  const signalling = new Signalling(wsUrl());
  state.signalling = signalling;
  signalling
    .on('joined', onJoined)
    .on('publisher_answer', onPublisherAnswer)
    .on('subscriber_offer', onSubscriberOffer)
    .on('participant_joined', (m) => addParticipant(m.participant))
    .on('participant_left', (m) => removeParticipant(m.participant_id))
    .on('track_published', (m) => trackInfo(m.participant_id, m.track))
    .on('track_unpublished', (m) => trackGone(m.participant_id, m.track_id))
    .on('track_muted', (m) => trackMuted(m.participant_id, m.track_id, m.muted))
    .on('chat_history', (m) => chatHistory(m.events))
    .on('chat_event', (m) => { if (m.event) applyChatEvent(m.event, { live: true }); })
    .on('chat_status', (m) => setChatDelayed(!!m.delayed))
    .on('error', (m) => {
      console.warn(`server error ${m.code}: ${m.message}`);
      if (m.code === 'room_full') {
        leave(m.message || 'The meeting is full.');
        return;
      }
      if (m.code === 'removed') {
        // Not to be used again: a rejoin must show the room membership anew.
        if (state.identity) state.identity = null;
        // Out of the meeting's Matrix room (left or banned): out of the meeting.
        leave(m.message || 'You were removed from the meeting.');
        return;
      }
      if (m.code === 'invalid_token' && !state.participantId) {
        // The sign-in expired or is for another meeting: back to the start,
        // where one can join as a guest.
        leave();
        $('left').hidden = true;
        $('prejoin').hidden = false;
        $('name').readOnly = false;
        $('guest-button').hidden = true;
        $('identity').textContent = '';
        identityFailed(m.message || 'the sign-in is no longer valid');
        return;
      }
      if (m.code === 'chat_unavailable' || (m.code === 'bad_message' && Date.now() - state.chat.lastSentAt < 5000)) {
        $('chat-error').textContent = m.code === 'chat_unavailable' ? `Chat is not available: ${m.message}` : m.message;
      }
      setStatus(`Server: ${m.message}`);
      // A refused offer gets no answer: let the next negotiation go ahead.
      if (m.code === 'bad_sdp' && state.onPublisherAnswer) state.onPublisherAnswer();
    })
    .on('close', (m) => {
      if (!state.leaving) leave(m.reason === 'removed' ? 'The server removed you from the meeting.' : 'The connection to the server was lost.');
    });
  try {
    await signalling.connect();
  } catch (err) {
    $('prejoin-error').textContent = err.message;
    state.signalling = null;
    state.joining = false;
    updateJoinButton();
    return;
  }
  const joinMsg = { type: 'join', v: PROTOCOL_VERSION, room, name };
  if (state.identity) {
    // The server takes the name from the token; we send the same one.
    joinMsg.token = state.identity.token;
    joinMsg.name = state.identity.name || name;
  }
  signalling.send(joinMsg);
  $('prejoin').hidden = true;
  $('left').hidden = true;
  $('meeting').hidden = false;
  $('meeting-title').textContent = room;
  setStatus('Connecting…');
}

function newPeerConnection(target) {
  // No ICE servers: the server is reachable directly, and a meeting must
  // not contact anything its operator did not configure.
  const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
  pc.onicecandidate = (e) => {
    state.signalling?.send({ type: 'candidate', target, candidate: e.candidate ? e.candidate.toJSON() : null });
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === 'failed') setStatus('Media connection failed.');
    else if (pc.connectionState === 'connected') setStatus('');
  };
  return pc;
}

async function onJoined(msg) {
  state.participantId = msg.participant_id;
  state.joinedIdentity = msg.identity || null;
  const badge = $('meeting-identity');
  badge.textContent = state.joinedIdentity
    ? `Signed in as ${state.joinedIdentity.user_id}${state.joinedIdentity.host ? ' (host)' : ''}`
    : '';
  badge.hidden = !state.joinedIdentity;
  setupChat(msg.chat || null);
  addLocalTile();
  for (const p of msg.participants) addParticipant(p);
  state.subscriber = newPeerConnection('subscriber');
  state.subscriber.ontrack = onRemoteTrack;
  state.publisher = newPeerConnection('publisher');
  await publish();
}

// The camera goes out in three layers (LiveKit's default presets), so that
// each subscriber can be sent the one its tile needs; ?simulcast=0 sends a
// single layer, for debugging.
const simulcast = params.get('simulcast') !== '0';
const CAMERA_LAYERS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', maxBitrate: 1_500_000 },
];

async function publish() {
  const pc = state.publisher;
  for (const track of state.localStream.getTracks()) {
    const init = { direction: 'sendonly', streams: [state.localStream] };
    if (track.kind === 'video' && simulcast) init.sendEncodings = CAMERA_LAYERS;
    const transceiver = pc.addTransceiver(track, init);
    if (track.kind === 'video' && params.get('codec')) preferCodec(transceiver, params.get('codec'));
    state.published.push({ transceiver, source: track.kind === 'audio' ? 'microphone' : 'camera', track });
  }
  if (state.published.length === 0) {
    setStatus('');
    return; // Nothing to send (yet): watch only.
  }
  await negotiatePublisher();
}

/** Offers the publisher connection's current tracks; one offer at a time. */
function negotiatePublisher() {
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
    setStatus('Could not send your media.');
  });
  return state.publisherQueue;
}

async function onPublisherAnswer(msg) {
  try {
    await state.publisher?.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
  } finally {
    const done = state.onPublisherAnswer;
    state.onPublisherAnswer = null;
    if (done) done();
  }
}

async function toggleScreenShare(button) {
  if (state.screen) {
    stopScreenShare();
    return;
  }
  if (!state.publisher) return;
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch (err) {
    setStatus(`Screen sharing did not start: ${err.message}`);
    return;
  }
  const track = stream.getVideoTracks()[0];
  const transceiver = state.publisher.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
  state.screen = { stream, transceiver };
  state.published.push({ transceiver, source: 'screen_share', track });
  // The browser's own "stop sharing" button ends the track.
  track.addEventListener('ended', stopScreenShare);
  button.textContent = 'Stop sharing';
  button.setAttribute('aria-pressed', 'true');
  await negotiatePublisher();
}

function stopScreenShare() {
  if (!state.screen) return;
  const { stream, transceiver } = state.screen;
  state.screen = null;
  state.published = state.published.filter((p) => p.transceiver !== transceiver);
  stream.getTracks().forEach((t) => t.stop());
  const button = $('toggle-screen');
  button.textContent = 'Share screen';
  button.setAttribute('aria-pressed', 'false');
  if (state.publisher) {
    transceiver.stop();
    negotiatePublisher();
  }
}

/** Puts one video codec (e.g. "h264", "vp8") first in what we offer. */
function preferCodec(transceiver, name) {
  const mime = `video/${name}`.toLowerCase();
  for (const caps of [RTCRtpSender.getCapabilities?.('video'), RTCRtpReceiver.getCapabilities?.('video')]) {
    if (!caps || !transceiver.setCodecPreferences) continue;
    const codecs = [...caps.codecs].sort((a, b) => (b.mimeType.toLowerCase() === mime) - (a.mimeType.toLowerCase() === mime));
    try {
      transceiver.setCodecPreferences(codecs);
      return;
    } catch {
      // Some browsers check against the other capability list; try it.
    }
  }
}

function onSubscriberOffer(msg) {
  // Offers are answered strictly in order.
  state.subscriberQueue = state.subscriberQueue.then(async () => {
    const pc = state.subscriber;
    await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    state.signalling?.send({ type: 'subscriber_answer', sdp: pc.localDescription.sdp });
  }).catch((err) => {
    console.error('subscriber negotiation failed', err);
    setStatus('Could not receive the others’ media.');
  });
}

/** Stream ids are "<participant id>" for camera and microphone and
 * "<participant id>:screen" for a screen share. */
function parseStreamId(id) {
  const [pid, part] = id.split(':');
  return { pid, screen: part === 'screen' };
}

function onRemoteTrack(e) {
  const stream = e.streams[0];
  if (!stream) return;
  const { pid, screen } = parseStreamId(stream.id);
  state.remoteTrackOwner.set(e.track.id, { pid, screen });
  const p = state.participants.get(pid);
  if (!p) return;
  let target = p;
  if (screen) {
    if (!p.screen) p.screen = { stream: new MediaStream(), tile: makeTile(pid, `${p.name} (screen)`, { screen: true }) };
    target = p.screen;
  }
  for (const old of target.stream.getTracks().filter((t) => t.kind === e.track.kind)) {
    target.stream.removeTrack(old);
  }
  target.stream.addTrack(e.track);
  e.track.addEventListener('ended', () => target.stream.removeTrack(e.track));
  const video = target.tile.querySelector('video');
  video.srcObject = target.stream;
  play(video);
  if (e.track.kind === 'video') askQuality(video);
  updateTile(pid);
}

// ---------- adaptive stream ----------
//
// Each remote video asks the server for the simulcast layer its tile needs
// (what LiveKit calls adaptiveStream): a small tile, or any tile in a hidden
// tab, gets the low layer and saves everyone bandwidth and decoding.

const qualityObserver = new ResizeObserver((entries) => {
  for (const entry of entries) askQuality(entry.target);
});
document.addEventListener('visibilitychange', () => {
  document.querySelectorAll('#grid video.remote').forEach(askQuality);
});

function wantedQuality(video) {
  if (document.hidden) return 'low';
  // Tiles crop the video to fill them (object-fit: cover), so a tall tile
  // shows a picture wider than itself.
  const aspect = video.videoHeight ? video.videoWidth / video.videoHeight : 16 / 9;
  const width = Math.max(video.clientWidth, video.clientHeight * aspect) * devicePixelRatio;
  if (width <= 320) return 'low';
  return width <= 640 ? 'medium' : 'high';
}

/** Sends track_settings for the video `video` shows, if its wish changed. */
function askQuality(video) {
  const track = video.srcObject?.getVideoTracks()[0];
  if (!track || !state.participantId || !state.signalling?.open) return;
  const quality = wantedQuality(video);
  // The server starts every subscription at high.
  if ((state.sentQuality.get(track.id) ?? 'high') === quality) return;
  state.sentQuality.set(track.id, quality);
  state.signalling.send({ type: 'track_settings', track_id: track.id, quality });
}

function removeTile(tile) {
  qualityObserver.unobserve(tile.querySelector('video'));
  tile.remove();
}

function play(video) {
  video.play().catch((err) => {
    // A newer srcObject interrupting this play() is not a refusal.
    if (err.name !== 'NotAllowedError') return;
    // Autoplay with sound refused (no user gesture yet): play muted and
    // offer to unmute.
    video.muted = true;
    video.play().catch(() => {});
    showUnmuteHint();
  });
}

function showUnmuteHint() {
  if (document.getElementById('unmute-all')) return;
  const b = document.createElement('button');
  b.id = 'unmute-all';
  b.textContent = 'Click to hear the others';
  b.onclick = () => {
    document.querySelectorAll('#grid video.remote').forEach((v) => { v.muted = false; v.play().catch(() => {}); });
    b.remove();
  };
  $('controls').prepend(b);
}

function makeTile(pid, name, { local: isLocal = false, screen = false } = {}) {
  const tile = document.createElement('figure');
  tile.className = screen ? 'tile screen' : 'tile';
  tile.dataset.participantId = pid;
  if (screen) tile.dataset.source = 'screen';
  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  if (isLocal) {
    video.muted = true;
    video.classList.add('local');
  } else {
    video.classList.add('remote');
    qualityObserver.observe(video);
    // Time to first decoded frame, for the operator and the tests.
    const mark = () => {
      if (state.firstFrameMs === null) state.firstFrameMs = performance.now() - state.joinedAt;
    };
    if ('requestVideoFrameCallback' in video) video.requestVideoFrameCallback(mark);
    else video.addEventListener('loadeddata', mark, { once: true });
  }
  const caption = document.createElement('figcaption');
  const label = document.createElement('span');
  label.className = 'name';
  label.textContent = isLocal ? `${name} (you)` : name;
  const mic = document.createElement('span');
  mic.className = 'mic-muted';
  mic.textContent = 'muted';
  mic.hidden = true;
  caption.append(label, mic);
  // Hosts (who may kick in the meeting's Matrix room) may remove others.
  if (!isLocal && !screen && state.joinedIdentity && state.joinedIdentity.host) {
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'remove';
    remove.textContent = 'Remove';
    remove.setAttribute('aria-label', `Remove ${name} from the meeting`);
    remove.onclick = () => state.signalling?.send({ type: 'remove', participant_id: pid });
    caption.append(remove);
  }
  const avatar = document.createElement('div');
  avatar.className = 'avatar';
  avatar.textContent = name.slice(0, 1).toUpperCase();
  tile.append(video, avatar, caption);
  $('grid').append(tile);
  return tile;
}

function addLocalTile() {
  const tile = makeTile(state.participantId, $('name').value.trim(), { local: true });
  tile.querySelector('video').srcObject = state.localStream;
  tile.classList.toggle('camera-off', state.localStream.getVideoTracks().length === 0);
}

function addParticipant(info) {
  if (state.participants.has(info.id)) return;
  const p = { name: info.name, stream: new MediaStream(), tile: makeTile(info.id, info.name), tracks: new Map(), screen: null };
  state.participants.set(info.id, p);
  for (const t of info.tracks) p.tracks.set(t.id, t);
  updateTile(info.id);
}

function removeParticipant(pid) {
  const p = state.participants.get(pid);
  if (!p) return;
  removeTile(p.tile);
  if (p.screen) removeTile(p.screen.tile);
  for (const trackId of p.tracks.keys()) state.sentQuality.delete(trackId);
  state.participants.delete(pid);
}

function trackInfo(pid, track) {
  const p = state.participants.get(pid);
  if (!p) return;
  p.tracks.set(track.id, track);
  updateTile(pid);
}

function trackGone(pid, trackId) {
  const p = state.participants.get(pid);
  if (!p) return;
  const info = p.tracks.get(trackId);
  p.tracks.delete(trackId);
  state.sentQuality.delete(trackId);
  if (info && info.source.startsWith('screen_share')) {
    if (p.screen && info.kind === 'video') {
      removeTile(p.screen.tile);
      p.screen = null;
    }
  } else if (info) {
    for (const t of p.stream.getTracks().filter((t) => t.kind === info.kind)) p.stream.removeTrack(t);
  }
  updateTile(pid);
}

function trackMuted(pid, trackId, muted) {
  const p = state.participants.get(pid);
  const t = p && p.tracks.get(trackId);
  if (!t) return;
  t.muted = muted;
  updateTile(pid);
}

function updateTile(pid) {
  const p = state.participants.get(pid);
  if (!p) return;
  const tracks = [...p.tracks.values()];
  const video = tracks.find((t) => t.source === 'camera');
  const audio = tracks.find((t) => t.source === 'microphone');
  p.tile.classList.toggle('camera-off', !video || video.muted);
  p.tile.querySelector('.mic-muted').hidden = !(audio && audio.muted) && !!audio;
}

function toggle(kind, button, onLabel, offLabel) {
  const track = state.localStream.getTracks().find((t) => t.kind === kind);
  if (!track) return;
  track.enabled = !track.enabled;
  button.textContent = track.enabled ? onLabel : offLabel;
  button.setAttribute('aria-pressed', String(!track.enabled));
  const published = state.published.find((p) => p.track === track);
  if (published) state.signalling?.send({ type: 'mute', mid: published.transceiver.mid, muted: !track.enabled });
  if (kind === 'video') {
    document.querySelector('.tile video.local')?.closest('.tile').classList.toggle('camera-off', !track.enabled);
  }
}

function leave(reason) {
  state.leaving = true;
  if (state.signalling) {
    state.signalling?.send({ type: 'leave' });
    state.signalling.close();
  }
  state.signalling = null;
  state.joining = false;
  for (const pc of [state.publisher, state.subscriber]) if (pc) pc.close();
  state.publisher = state.subscriber = null;
  state.participants.clear();
  state.remoteTrackOwner.clear();
  state.sentQuality.clear();
  qualityObserver.disconnect();
  if (state.screen) stopScreenShare();
  state.published = [];
  state.onPublisherAnswer = null;
  state.publisherQueue = Promise.resolve();
  state.subscriberQueue = Promise.resolve();
  $('grid').replaceChildren();
  document.getElementById('unmute-all')?.remove();
  $('meeting').hidden = true;
  $('left').hidden = false;
  $('left-reason').textContent = reason || '';
  updateJoinButton();
}

$('toggle-mic').addEventListener('click', (e) => toggle('audio', e.currentTarget, 'Mute microphone', 'Unmute microphone'));
$('toggle-cam').addEventListener('click', (e) => toggle('video', e.currentTarget, 'Stop camera', 'Start camera'));
$('toggle-screen').addEventListener('click', (e) => toggleScreenShare(e.currentTarget));
$('leave').addEventListener('click', () => leave());
$('rejoin').addEventListener('click', async () => {
  if (state.localStream.getTracks().every((t) => t.readyState === 'ended')) await acquireMedia();
  join($('name').value.trim());
});

// ---------- chat ----------
//
// The server sends chat_history (right after joined) and chat_event
// messages; both are applied the same way, in order. All text goes into the
// page as text (textContent), never as markup.

const DELAYED_TEXT = 'Chat is delayed: messages will be delivered when the chat server is back.';
const wideScreen = window.matchMedia('(min-width: 721px)');
let chatOpen = wideScreen.matches;

function resetChat() {
  state.chat = newChatState();
  $('chat-log').replaceChildren();
  $('chat-error').textContent = '';
  $('chat-delayed').textContent = '';
  $('chat-unavailable').hidden = true;
  $('chat').hidden = true;
  $('toggle-chat').hidden = true;
  updateUnread();
}

/** `info` is joined.chat: null when this meeting has no chat. */
function setupChat(info) {
  state.chat.info = info;
  $('toggle-chat').hidden = !info;
  $('chat-form').hidden = !info;
  $('chat-unavailable').hidden = !!info;
  setChatDelayed(!!(info && info.delayed));
  updateChatPanel();
}

/** Shows or hides the panel: open if the chat exists and the reader wants it. */
function updateChatPanel() {
  const open = chatOpen && !!state.chat.info;
  $('chat').hidden = !open;
  $('toggle-chat').setAttribute('aria-expanded', String(open));
  if (open) {
    state.chat.unread = 0;
    updateUnread();
    if (state.chat.stickToBottom) scrollChatToEnd();
  }
}

function updateUnread() {
  const badge = $('chat-unread');
  const n = state.chat.unread;
  badge.hidden = n === 0;
  const count = document.createElement('span');
  count.textContent = n > 99 ? '99+' : String(n);
  const words = document.createElement('span');
  words.className = 'visually-hidden';
  words.textContent = ' unread';
  badge.replaceChildren(count, words);
}

function setChatDelayed(delayed) {
  state.chat.delayed = delayed;
  $('chat-delayed').textContent = delayed ? DELAYED_TEXT : '';
}

function chatHistory(events) {
  // Everything since the meeting started: a fresh start.
  state.chat.byId.clear();
  state.chat.order = [];
  state.chat.reactionTarget.clear();
  $('chat-log').replaceChildren();
  for (const ev of events || []) applyChatEvent(ev, { live: false });
  scrollChatToEnd();
}

/** Applies one ChatEvent; events about messages we do not know are ignored. */
function applyChatEvent(ev, { live }) {
  const chat = state.chat;
  const atEnd = chat.stickToBottom;
  switch (ev.kind) {
    case 'message': {
      if (typeof ev.id !== 'string' || chat.byId.has(ev.id)) return;
      const replyTo = ev.reply_to || null;
      const msg = {
        id: ev.id,
        sender: ev.sender || '',
        name: ev.name || ev.sender || '',
        body: replyTo ? stripReplyFallback(String(ev.body ?? '')) : String(ev.body ?? ''),
        ts: Number(ev.ts) || Date.now(),
        replyTo,
        pending: !!ev.pending,
        edited: false,
        deleted: false,
        /** reaction event id -> { key, name } */
        reactions: new Map(),
        el: document.createElement('li'),
      };
      chat.byId.set(msg.id, msg);
      chat.order.push(msg);
      renderMessage(msg);
      $('chat-log').append(msg.el);
      if (live && $('chat').hidden) {
        chat.unread += 1;
        updateUnread();
      }
      break;
    }
    case 'delivered': {
      const msg = chat.byId.get(ev.local_id);
      if (!msg || typeof ev.id !== 'string') return;
      chat.byId.delete(ev.local_id);
      const twin = chat.byId.get(ev.id);
      if (twin && twin !== msg) {
        // The delivered copy is already here: drop the pending one.
        msg.el.remove();
        chat.order = chat.order.filter((m) => m !== msg);
        return;
      }
      msg.id = ev.id;
      msg.pending = false;
      chat.byId.set(msg.id, msg);
      renderMessage(msg);
      break;
    }
    case 'failed': {
      // The homeserver refused the message for good (e.g. not allowed).
      const msg = chat.byId.get(ev.local_id);
      if (!msg || !msg.pending) return;
      msg.pending = false;
      msg.failed = true;
      renderMessage(msg);
      break;
    }
    case 'edit': {
      const msg = chat.byId.get(ev.id);
      if (!msg || msg.deleted) return;
      msg.body = String(ev.body ?? '');
      msg.edited = true;
      renderMessage(msg);
      renderRepliesTo(msg);
      break;
    }
    case 'redact': {
      const msg = chat.byId.get(ev.id);
      if (msg) {
        msg.deleted = true;
        msg.body = '';
        msg.edited = false;
        for (const rid of msg.reactions.keys()) chat.reactionTarget.delete(rid);
        msg.reactions.clear();
        renderMessage(msg);
        renderRepliesTo(msg);
        return;
      }
      const target = chat.reactionTarget.get(ev.id);
      if (target) {
        chat.reactionTarget.delete(ev.id);
        target.reactions.delete(ev.id);
        renderMessage(target);
      }
      return;
    }
    case 'reaction': {
      const target = chat.byId.get(ev.target);
      if (!target || target.deleted || typeof ev.id !== 'string' || chat.reactionTarget.has(ev.id)) return;
      target.reactions.set(ev.id, { key: String(ev.key ?? ''), name: ev.name || '' });
      chat.reactionTarget.set(ev.id, target);
      renderMessage(target);
      break;
    }
    default:
      return;
  }
  if (live && atEnd) scrollChatToEnd();
}

/** A reply's body may start with the quoted original ("> <@a:b> text"
 * lines, then an empty line): we show our own quote instead. */
function stripReplyFallback(body) {
  const lines = body.split('\n');
  let i = 0;
  while (i < lines.length && lines[i].startsWith('>')) i += 1;
  if (i > 0 && i < lines.length && lines[i] === '') return lines.slice(i + 1).join('\n');
  return body;
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** (Re)builds a message's list item from its state. */
function renderMessage(msg) {
  const li = msg.el;
  li.className = 'chat-msg';
  li.classList.toggle('pending', msg.pending);
  li.classList.toggle('deleted', msg.deleted);
  li.dataset.id = msg.id;

  const meta = el('div', 'chat-meta');
  const name = el('span', 'chat-name', msg.name);
  if (msg.sender.startsWith('@')) name.title = msg.sender;
  const time = el('time', 'chat-time', new Date(msg.ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
  time.dateTime = new Date(msg.ts).toISOString();
  meta.append(name, time);
  if (msg.pending) meta.append(el('span', 'chat-hint', 'sending…'));
  if (msg.failed) meta.append(el('span', 'chat-hint', 'not delivered'));

  const parts = [meta];
  const quoted = msg.replyTo && state.chat.byId.get(msg.replyTo);
  if (quoted) {
    const quote = el('blockquote', 'chat-quote');
    const excerpt = quoted.deleted ? 'Message deleted' : quoted.body.replace(/\s+/g, ' ').slice(0, 80);
    quote.append(el('span', 'visually-hidden', 'In reply to '), `${quoted.name}: ${excerpt}`);
    parts.push(quote);
  }

  const body = el('p', 'chat-body', msg.deleted ? 'Message deleted' : msg.body);
  if (msg.edited && !msg.deleted) body.append(' ', el('span', 'chat-hint', '(edited)'));
  parts.push(body);

  if (msg.reactions.size > 0) {
    const byKey = new Map();
    for (const { key, name: who } of msg.reactions.values()) {
      if (!byKey.has(key)) byKey.set(key, []);
      byKey.get(key).push(who);
    }
    const list = el('ul', 'chat-reactions');
    list.setAttribute('aria-label', 'Reactions');
    for (const [key, names] of byKey) {
      const chip = el('li', '', `${key} ${names.length}`);
      chip.title = names.filter(Boolean).join(', ');
      list.append(chip);
    }
    parts.push(list);
  }
  li.replaceChildren(...parts);
}

function renderRepliesTo(msg) {
  for (const m of state.chat.order) if (m.replyTo === msg.id) renderMessage(m);
}

function scrollChatToEnd() {
  const log = $('chat-log');
  log.scrollTop = log.scrollHeight;
  state.chat.stickToBottom = true;
}

/** Sends a chat message; false if there was nothing to send or no way to. */
function sendChat(text) {
  const body = String(text).trim();
  if (!body || !state.chat.info || !state.signalling || !state.signalling.open) return false;
  if ([...body].length > 4000) {
    $('chat-error').textContent = 'That message is too long (at most 4000 characters).';
    return false;
  }
  $('chat-error').textContent = '';
  state.chat.lastSentAt = Date.now();
  state.signalling.send({ type: 'chat', text: body });
  return true;
}

$('chat-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = $('chat-input');
  if (sendChat(input.value)) input.value = '';
});
$('chat-log').addEventListener('scroll', () => {
  const log = $('chat-log');
  state.chat.stickToBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 32;
});
$('toggle-chat').addEventListener('click', () => {
  chatOpen = $('chat').hidden;
  updateChatPanel();
  if (chatOpen) $('chat-input').focus();
});

/** The chat as the tests (and the console) see it, in display order. */
function chatMessages() {
  return state.chat.order.map((m) => {
    const reactions = {};
    for (const { key } of m.reactions.values()) reactions[key] = (reactions[key] || 0) + 1;
    return {
      id: m.id,
      name: m.name,
      sender: m.sender,
      body: m.body,
      pending: m.pending,
      edited: m.edited,
      deleted: m.deleted,
      replyTo: m.replyTo,
      reactions,
    };
  });
}

// What the page receives from each other participant, from getStats(): used
// by the end-to-end tests, and handy in the console.
async function receiveStats() {
  const out = {};
  for (const [pid, p] of state.participants) {
    out[pid] = { name: p.name, framesDecoded: 0, videoPackets: 0, audioPackets: 0, videoCodec: null, screenFramesDecoded: 0 };
  }
  if (!state.subscriber) return out;
  const report = await state.subscriber.getStats();
  report.forEach((s) => {
    if (s.type !== 'inbound-rtp') return;
    const owner = state.remoteTrackOwner.get(s.trackIdentifier);
    const entry = owner && out[owner.pid];
    if (!entry) return;
    if (owner.screen) {
      entry.screenFramesDecoded += s.framesDecoded || 0;
    } else if (s.kind === 'video') {
      entry.framesDecoded += s.framesDecoded || 0;
      entry.videoPackets += s.packetsReceived || 0;
      entry.videoCodec = report.get(s.codecId)?.mimeType ?? null;
    } else {
      entry.audioPackets += s.packetsReceived || 0;
    }
  });
  return out;
}

/** The SRTP cipher of each of our connections, e.g. "SRTP_AEAD_AES_128_GCM". */
async function srtpCiphers() {
  const out = {};
  for (const [name, pc] of [['publisher', state.publisher], ['subscriber', state.subscriber]]) {
    if (!pc) continue;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'transport' && s.srtpCipher) out[name] = s.srtpCipher;
    });
  }
  return out;
}

window.meet = {
  state,
  receiveStats,
  srtpCiphers,
  chatMessages,
  chatDelayed: () => state.chat.delayed,
  chatRoomId: () => (state.chat.info && state.chat.info.room_id) || null,
  /** `joined.identity`: { user_id, host } when we joined signed in, else null. */
  identity: () => state.joinedIdentity,
  sendChat,
  get participantId() { return state.participantId; },
  get firstFrameMs() { return state.firstFrameMs; },
};

await setupPrejoin();
// With a Matrix sign-in under way, "join now" waits for its outcome; after
// a failed one the user decides whether to join as a guest (a name typed
// meanwhile must not join them unasked).
await identityFlow;
if (params.get('join') === 'now' && !state.identityFailed && $('name').value.trim()) {
  join($('name').value.trim());
}
