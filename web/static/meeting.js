// The meeting screen: the grid of tiles (ours and each participant's, a
// screen share in a tile of its own), who is in the meeting and what they
// publish, the remote tracks as they arrive, the control buttons, and
// leaving. Remote tracks arrive in a stream whose id is the publishing
// participant's id.

import { onLanguageChange, t } from './i18n.js';
import { $, room, setStatus, state } from './state.js';
import { updateJoinButton } from './prejoin.js';
import { closePeers } from './peers.js';
import {
  askQuality, resetMedia, toggleLocal, toggleScreenShare, unwatchQuality, watchQuality,
} from './media.js';
import { hostControls } from './host.js';
import { announce, showPeople } from './people.js';
import { useSpeaker } from './devices.js';
import { showTileHand } from './hands.js';
import { resetQuality } from './quality.js';
import { resetSpeakers } from './speakers.js';

/** Stream ids are "<participant id>" for camera and microphone and
 * "<participant id>:screen" for a screen share. */
function parseStreamId(id) {
  const [pid, part] = id.split(':');
  return { pid, screen: part === 'screen' };
}

/** The subscriber connection's ontrack. */
export function onRemoteTrack(e) {
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

function removeTile(tile) {
  unwatchQuality(tile.querySelector('video'));
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
  b.textContent = t('meeting.clickToHear');
  b.onclick = () => {
    document.querySelectorAll('#grid video.remote').forEach((v) => { v.muted = false; v.play().catch(() => {}); });
    b.remove();
  };
  $('controls').prepend(b);
}

/** A tile's caption: the name, and whether a guest or ourselves. */
function tileName(label) {
  const { name, guest, local } = label.dataset;
  return `${name}${guest ? t('meeting.guest') : ''}${local ? t('meeting.you') : ''}`;
}

onLanguageChange(() => {
  for (const label of document.querySelectorAll('#grid .tile .name')) label.textContent = tileName(label);
  for (const mic of document.querySelectorAll('#grid .tile .mic-muted')) mic.textContent = t('meeting.muted');
  for (const badge of document.querySelectorAll('#grid .reconnecting-badge')) badge.textContent = t('meeting.reconnectingBadge');
  refreshHostControls();
  document.getElementById('unmute-all')?.replaceChildren(t('meeting.clickToHear'));
});

function makeTile(pid, name, { local: isLocal = false, screen = false, guest = false } = {}) {
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
    watchQuality(video);
    useSpeaker(video);
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
  // Guests name themselves: everyone sees that nobody vouched for the name.
  Object.assign(label.dataset, { name, guest: guest ? '1' : '', local: isLocal ? '1' : '' });
  label.textContent = tileName(label);
  const mic = document.createElement('span');
  mic.className = 'mic-muted';
  mic.textContent = t('meeting.muted');
  mic.hidden = true;
  caption.append(label, mic);
  if (!isLocal && !screen) caption.append(hostControlsOf(pid, name));
  const avatar = document.createElement('div');
  avatar.className = 'avatar';
  avatar.textContent = name.slice(0, 1).toUpperCase();
  tile.append(video, avatar, caption);
  $('grid').append(tile);
  return tile;
}

/** Hosts may mute, remove and ban others: the buttons, or an empty
 * holder for them should this page become a host's. */
function hostControlsOf(pid, name) {
  const holder = document.createElement('span');
  holder.className = 'host-controls';
  holder.dataset.name = name;
  if (state.role === 'host') holder.append(...hostControls(pid, name));
  return holder;
}

/** Our role changed in the meeting: every tile's host buttons follow it. */
export function refreshHostControls() {
  for (const [pid, p] of state.participants) {
    const holder = p.tile.querySelector('.host-controls');
    if (holder) holder.replaceChildren(...(state.role === 'host' ? hostControls(pid, p.name) : []));
  }
}

export function addLocalTile() {
  const tile = makeTile(state.participantId, $('name').value.trim(), { local: true, guest: state.guest });
  tile.classList.add('self');
  tile.querySelector('video').srcObject = state.localStream;
  tile.classList.toggle('camera-off', state.localStream.getVideoTracks().length === 0);
}

/** Someone in the meeting; `live`: they joined just now (told aloud);
 * `replaces`: they are someone whose connection dropped, come back. */
export function addParticipant(info, { live = false, replaces = null } = {}) {
  if (state.participants.has(info.id)) return;
  const back = replaces && state.participants.has(replaces);
  if (back) removeParticipant(replaces, { silent: true });
  const tile = makeTile(info.id, info.name, { guest: !!info.guest });
  const p = {
    name: info.name,
    role: info.role,
    guest: !!info.guest,
    stream: new MediaStream(),
    tile,
    tracks: new Map(),
    screen: null,
    /** When its hand went up (as this page learnt it), or null. */
    handRaisedAt: info.hand_raised ? Date.now() : null,
  };
  state.participants.set(info.id, p);
  showTileHand(p);
  for (const t of info.tracks) p.tracks.set(t.id, t);
  if (info.reconnecting) participantReconnecting(info.id, { live: false });
  updateTile(info.id);
  if (back) announce(t('people.back', { name: info.name }));
  else if (live) announce(t('people.joined', { name: info.name }));
}

/** Someone whose connection dropped: their tile stays, marked, while the
 * server holds their seat; `live`: it happened just now (told aloud). */
export function participantReconnecting(pid, { live = true } = {}) {
  const p = state.participants.get(pid);
  if (!p || p.reconnecting) return;
  p.reconnecting = true;
  p.tile.classList.add('reconnecting');
  const badge = document.createElement('span');
  badge.className = 'reconnecting-badge';
  badge.textContent = t('meeting.reconnectingBadge');
  p.tile.querySelector('figcaption').append(badge);
  showPeople();
  if (live) announce(t('people.reconnecting', { name: p.name }));
}

/** Someone left; `silent`: they are back on a new connection (see
 * addParticipant), nothing to tell. */
export function removeParticipant(pid, { silent = false } = {}) {
  const p = state.participants.get(pid);
  if (!p) return;
  removeTile(p.tile);
  if (p.screen) removeTile(p.screen.tile);
  for (const trackId of p.tracks.keys()) state.sentQuality.delete(trackId);
  state.participants.delete(pid);
  showPeople();
  if (!silent) announce(t('people.left', { name: p.name }));
}

export function trackInfo(pid, track) {
  const p = state.participants.get(pid);
  if (!p) return;
  p.tracks.set(track.id, track);
  updateTile(pid);
}

export function trackGone(pid, trackId) {
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

export function trackMuted(pid, trackId, muted) {
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
  showPeople();
}

/** Takes down what being in the meeting built (connections, tiles, what
 * we publish), keeping our camera and microphone as they are, and with
 * `keepScreen` a screen share too (see resetMedia). */
export function dropMeeting({ keepScreen = false } = {}) {
  closePeers();
  resetQuality();
  resetSpeakers();
  state.participants.clear();
  state.remoteTrackOwner.clear();
  resetMedia({ keepScreen });
  $('grid').replaceChildren();
  document.getElementById('unmute-all')?.remove();
}

/** Leaves the meeting (the button, or the server ended it: `reason`). */
export function leave(reason) {
  state.leaving = true;
  state.reconnecting = false;
  state.handRaised = false;
  clearTimeout(state.retryTimer);
  if (state.signalling) {
    state.signalling?.send({ type: 'leave' });
    state.signalling.close();
  }
  state.signalling = null;
  state.joining = false;
  dropMeeting();
  $('meeting').hidden = true;
  $('left').hidden = false;
  $('left-reason').textContent = reason || '';
  updateJoinButton();
}

$('toggle-mic').addEventListener('click', () => toggleLocal('audio'));
$('toggle-cam').addEventListener('click', () => toggleLocal('video'));
$('toggle-screen').addEventListener('click', toggleScreenShare);
$('copy-link').addEventListener('click', () => {
  const url = new URL(`/m/${encodeURIComponent(room)}`, location.origin).href;
  const ready = () => setStatus(t('meeting.linkReady', { url }));
  if (!navigator.clipboard) return ready();
  return navigator.clipboard.writeText(url).then(() => setStatus(t('meeting.linkCopied')), ready);
});

// The last host asks before leaving: nobody else could let people in.
$('leave').addEventListener('click', () => {
  const otherHost = [...state.participants.values()].some((p) => p.role === 'host');
  const lastHost = state.role === 'host' && !otherHost && state.participants.size > 0;
  if (!lastHost || window.confirm(t('meeting.lastHostLeave'))) leave();
});

// What the page receives from each other participant, from getStats(): used
// by the end-to-end tests, and handy in the console.
export async function receiveStats() {
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
