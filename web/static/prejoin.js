// The pre-join screen: the name (remembered in localStorage), the camera
// preview, the camera and microphone lists, and the Join button.
//
// Camera and microphone start on a click (Join, or "Turn on camera and
// microphone"), never because a link was opened: a link with join=now
// starts them at once only in a meeting this browser has joined before.
// Otherwise join=now still joins at once, with both off.

import { onLanguageChange, t } from './i18n.js';
import { $, params, room, state } from './state.js';

// Storage may be refused (a widget in another site's page): then no memory.
export function savedName() {
  try {
    return localStorage.getItem('meet.name');
  } catch {
    return null;
  }
}

export function saveName(name) {
  try {
    localStorage.setItem('meet.name', name);
  } catch {
    // Nowhere to keep it.
  }
}

const JOINED_KEY = 'meet.joined';
/** Meetings remembered as joined before, most recent first. */
const MAX_REMEMBERED = 50;

function joinedRooms() {
  try {
    const rooms = JSON.parse(localStorage.getItem(JOINED_KEY) || '[]');
    return Array.isArray(rooms) ? rooms : [];
  } catch {
    return [];
  }
}

/** Remembers that this browser joined this meeting. */
export function rememberJoined() {
  const rooms = [room, ...joinedRooms().filter((r) => r !== room)].slice(0, MAX_REMEMBERED);
  try {
    localStorage.setItem(JOINED_KEY, JSON.stringify(rooms));
  } catch {
    // Nowhere to keep it: every visit is a first one.
  }
}

/** The user's go-ahead (or a returning join=now): camera and microphone on. */
export async function startMedia() {
  state.mediaOn = true;
  $('start-media').hidden = true;
  await acquireMedia();
  await listDevices().catch(() => {});
}

/** What we ask of a camera (`kind` "video") or microphone ("audio"):
 * the device `id` if one was picked. */
export function deviceConstraints(kind, id) {
  const device = id ? { deviceId: { exact: id } } : {};
  if (kind === 'audio') return id ? device : true;
  // Chromium sends fewer simulcast layers for smaller sources.
  return { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 24 }, ...device };
}

export async function acquireMedia() {
  const constraints = {
    audio: deviceConstraints('audio', $('microphone').value),
    video: deviceConstraints('video', $('camera').value),
  };
  state.localStream.getTracks().forEach((t) => t.stop());
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
    $('prejoin-error').textContent = t('prejoin.deviceUnavailable', { why: err.message });
  }
  $('preview').srcObject = state.localStream;
  $('preview-off').hidden = state.localStream.getVideoTracks().length > 0;
  showMicLevel();
}

// The microphone's level, so that one sees it works before joining.
let levelMeter = null;

/** Shows how loud the microphone of the pre-join screen is, until the
 * screen goes or the microphone changes. */
function showMicLevel() {
  levelMeter?.close();
  levelMeter = null;
  const [track] = state.localStream.getAudioTracks();
  $('mic-level').hidden = !track;
  if (!track) return;
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 512;
  context.createMediaStreamSource(new MediaStream([track])).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const timer = setInterval(() => {
    if ($('prejoin').hidden) {
      levelMeter?.close();
      return;
    }
    analyser.getFloatTimeDomainData(samples);
    const rms = Math.sqrt(samples.reduce((sum, x) => sum + x * x, 0) / samples.length);
    // Speech peaks near an RMS of 0.3; the meter reads it as nearly full.
    $('mic-level').value = Math.min(1, rms * 3);
  }, 100);
  levelMeter = {
    close() {
      clearInterval(timer);
      context.close().catch(() => {});
      $('mic-level').value = 0;
      levelMeter = null;
    },
  };
}

const UNNAMED = { videoinput: 'prejoin.cameraN', audioinput: 'prejoin.microphoneN', audiooutput: 'devices.speakerN' };

/** Fills each select of `selects` ([select, device kind]) with the
 * devices of its kind, keeping what was chosen. */
export async function listDevices(selects = [[$('camera'), 'videoinput'], [$('microphone'), 'audioinput']]) {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [select, kind] of selects) {
    const current = select.value;
    select.replaceChildren();
    devices
      .filter((d) => d.kind === kind)
      .forEach((d, i) => {
        const option = new Option(d.label || t(UNNAMED[kind], { n: i + 1 }), d.deviceId);
        select.append(option);
      });
    if (current) select.value = current;
  }
}

/** Fills in the screen (and starts the preview for a returning join=now);
 * the Join button then calls onJoin(name) and "Join as a guest instead"
 * calls onGuest(). The Join button, disabled in the markup, is enabled
 * only then: a click before would be lost (the form sent as a plain GET,
 * the page back on this screen). */
export async function setupPrejoin({ onJoin, onGuest }) {
  const titles = () => {
    $('prejoin-heading').textContent = t('prejoin.heading', { room });
    document.title = t('page.title', { room });
  };
  titles();
  onLanguageChange(titles);
  if (!$('name').value && !state.identity) {
    $('name').value = params.get('name') || savedName() || '';
  }
  $('start-media').addEventListener('click', startMedia);
  const changed = () => { if (state.mediaOn) acquireMedia(); };
  $('camera').addEventListener('change', changed);
  $('microphone').addEventListener('change', changed);
  $('join-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!state.prejoinReady) return;
    // The click on Join is the go-ahead for camera and microphone.
    if (!state.mediaOn) await startMedia();
    onJoin($('name').value.trim());
  });
  $('guest-button').addEventListener('click', onGuest);
  if (params.get('join') === 'now' && joinedRooms().includes(room)) {
    await startMedia();
  } else {
    $('preview-off').hidden = false;
    $('start-media').hidden = false;
    await listDevices().catch(() => {});
  }
  state.prejoinReady = true;
  updateJoinButton();
}

export function updateJoinButton() {
  $('join-button').disabled = !state.prejoinReady || state.joining || state.identityPending;
}
