// The meeting page: pre-join screen, then a grid of participants.
//
// Two peer connections per participant, as the server expects: "publisher"
// (we offer our camera and microphone, the server answers) and "subscriber"
// (the server offers everyone else's tracks, we answer). Remote tracks arrive
// in a stream whose id is the publishing participant's id.

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
};

// ---------- pre-join ----------

async function acquireMedia() {
  const cam = $('camera').value;
  const mic = $('microphone').value;
  const constraints = {
    audio: mic ? { deviceId: { exact: mic } } : true,
    video: {
      width: { ideal: 640 },
      height: { ideal: 360 },
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
  $('name').value = params.get('name') || localStorage.getItem('meet.name') || '';
  await acquireMedia();
  await listDevices().catch(() => {});
  $('camera').addEventListener('change', acquireMedia);
  $('microphone').addEventListener('change', acquireMedia);
  $('join-form').addEventListener('submit', (e) => {
    e.preventDefault();
    join($('name').value.trim());
  });
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
  localStorage.setItem('meet.name', name);
  $('join-button').disabled = true;
  state.leaving = false;
  state.joinedAt = performance.now();
  state.firstFrameMs = null;
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
    .on('error', (m) => {
      console.warn(`server error ${m.code}: ${m.message}`);
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
    $('join-button').disabled = false;
    return;
  }
  signalling.send({ type: 'join', v: PROTOCOL_VERSION, room, name });
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
    state.signalling.send({ type: 'candidate', target, candidate: e.candidate ? e.candidate.toJSON() : null });
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === 'failed') setStatus('Media connection failed.');
    else if (pc.connectionState === 'connected') setStatus('');
  };
  return pc;
}

async function onJoined(msg) {
  state.participantId = msg.participant_id;
  addLocalTile();
  for (const p of msg.participants) addParticipant(p);
  state.subscriber = newPeerConnection('subscriber');
  state.subscriber.ontrack = onRemoteTrack;
  state.publisher = newPeerConnection('publisher');
  await publish();
}

async function publish() {
  const pc = state.publisher;
  for (const track of state.localStream.getTracks()) {
    const transceiver = pc.addTransceiver(track, { direction: 'sendonly', streams: [state.localStream] });
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
    state.signalling.send({ type: 'publisher_offer', sdp: pc.localDescription.sdp, tracks });
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
    state.signalling.send({ type: 'subscriber_answer', sdp: pc.localDescription.sdp });
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
  updateTile(pid);
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
  p.tile.remove();
  p.screen?.tile.remove();
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
  if (info && info.source.startsWith('screen_share')) {
    if (p.screen && info.kind === 'video') {
      p.screen.tile.remove();
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
  if (published) state.signalling.send({ type: 'mute', mid: published.transceiver.mid, muted: !track.enabled });
  if (kind === 'video') {
    document.querySelector('.tile video.local')?.closest('.tile').classList.toggle('camera-off', !track.enabled);
  }
}

function leave(reason) {
  state.leaving = true;
  if (state.signalling) {
    state.signalling.send({ type: 'leave' });
    state.signalling.close();
  }
  for (const pc of [state.publisher, state.subscriber]) if (pc) pc.close();
  state.publisher = state.subscriber = null;
  state.participants.clear();
  state.remoteTrackOwner.clear();
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
  $('join-button').disabled = false;
}

$('toggle-mic').addEventListener('click', (e) => toggle('audio', e.currentTarget, 'Mute microphone', 'Unmute microphone'));
$('toggle-cam').addEventListener('click', (e) => toggle('video', e.currentTarget, 'Stop camera', 'Start camera'));
$('toggle-screen').addEventListener('click', (e) => toggleScreenShare(e.currentTarget));
$('leave').addEventListener('click', () => leave());
$('rejoin').addEventListener('click', async () => {
  if (state.localStream.getTracks().every((t) => t.readyState === 'ended')) await acquireMedia();
  join($('name').value.trim());
});

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
  get participantId() { return state.participantId; },
  get firstFrameMs() { return state.firstFrameMs; },
};

await setupPrejoin();
if (params.get('join') === 'now' && $('name').value.trim()) {
  join($('name').value.trim());
}
