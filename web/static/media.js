// What we send and what we ask to receive. Sending: our camera and
// microphone on the publisher connection (the camera in three simulcast
// layers, of which it encodes only those the server says anyone receives),
// the codec preference, screen sharing, muting. Receiving: the
// adaptive stream, which asks the server for the simulcast layer each
// remote video's tile needs.

import { t, onLanguageChange } from './i18n.js';
import { $, params, setLabel, state, setStatus } from './state.js';
import { negotiatePublisher } from './peers.js';
import { deviceConstraints } from './prejoin.js';
import { showPeople } from './people.js';

// The camera goes out in three layers (LiveKit's default presets), so that
// each subscriber can be sent the one its tile needs; ?simulcast=0 sends a
// single layer, for debugging.
const simulcast = params.get('simulcast') !== '0';
const CAMERA_LAYERS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', maxBitrate: 1_500_000 },
];

/** Adds our camera or microphone track to the publisher connection. */
async function addLocalTrack(track) {
  const init = { direction: 'sendonly', streams: [state.localStream] };
  if (track.kind === 'video' && simulcast) init.sendEncodings = CAMERA_LAYERS;
  const transceiver = state.publisher.addTransceiver(track, init);
  state.published.push({ transceiver, source: track.kind === 'audio' ? 'microphone' : 'camera', track });
  if (track.kind === 'video') {
    if (params.get('codec')) preferCodec(transceiver, params.get('codec'));
    await keepResolution(transceiver.sender);
  }
}

/** Offers our camera and microphone on the new publisher connection, and
 * a screen share that ran before our connection dropped. */
export async function publish() {
  await Promise.all(state.localStream.getTracks().map(addLocalTrack));
  const kept = state.keptScreen;
  state.keptScreen = null;
  if (kept?.getVideoTracks()[0]?.readyState === 'live') shareStream(kept);
  if (state.published.length === 0) {
    setStatus('');
    return; // Nothing to send (yet): watch only.
  }
  await negotiatePublisher();
}

/**
 * Short of CPU, Chromium scales a camera's layers down by default. The
 * layers are what subscribers choose by their tiles' size, so the camera
 * keeps its resolution and gives up frame rate instead. (A screen share
 * keeps the browser's default.)
 */
async function keepResolution(sender) {
  const parameters = sender.getParameters();
  parameters.degradationPreference = 'maintain-resolution';
  try {
    await sender.setParameters(parameters);
  } catch (err) {
    // Sending at all matters more.
    console.warn('the camera may lose resolution under load:', err);
  }
}

export async function toggleScreenShare() {
  if (state.screen) {
    stopScreenShare();
    return;
  }
  if (!state.publisher) return;
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch (err) {
    setStatus(t('controls.screenFailed', { why: err.message }));
    return;
  }
  shareStream(stream);
  await negotiatePublisher();
}

/** Puts a screen share on the publisher connection (negotiated next). */
function shareStream(stream) {
  const track = stream.getVideoTracks()[0];
  const transceiver = state.publisher.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
  state.screen = { stream, transceiver };
  state.published.push({ transceiver, source: 'screen_share', track });
  // The browser's own "stop sharing" button ends the track.
  track.onended = stopScreenShare;
  showScreenControl();
}

/** The screen-share button as sharing is: from the page's first render
 * on (the markup's words are English), and after each change. */
function showScreenControl() {
  setLabel($('toggle-screen'), t(state.screen ? 'controls.stopSharing' : 'controls.shareScreen'));
  $('toggle-screen').setAttribute('aria-pressed', String(!!state.screen));
}
showScreenControl();

function stopScreenShare() {
  if (!state.screen) return;
  const { stream, transceiver } = state.screen;
  state.screen = null;
  state.published = state.published.filter((p) => p.transceiver !== transceiver);
  stream.getTracks().forEach((t) => t.stop());
  showScreenControl();
  if (state.publisher) {
    transceiver.stop();
    negotiatePublisher();
  }
}

/** Mutes or unmutes our microphone ("audio") or camera ("video"); turns
 * on one that was never started. */
function toggleLocalTrack(kind, button, onLabel, offLabel) {
  const track = state.localStream.getTracks().find((t) => t.kind === kind);
  if (!track) {
    startDevice(kind, button, onLabel);
    return;
  }
  track.enabled = !track.enabled;
  setLabel(button, t(track.enabled ? onLabel : offLabel));
  button.setAttribute('aria-pressed', String(!track.enabled));
  const published = state.published.find((p) => p.track === track);
  if (published) state.signalling?.send({ type: 'mute', mid: published.transceiver.mid, muted: !track.enabled });
  showPeople();
  if (kind === 'video') {
    document.querySelector('.tile video.local')?.closest('.tile').classList.toggle('camera-off', !track.enabled);
  }
}

/** A click turns on a camera or microphone that was not started before
 * joining: asked for now, shown, and published. */
async function startDevice(kind, button, onLabel) {
  const device = $(kind === 'audio' ? 'microphone' : 'camera').value;
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ [kind]: deviceConstraints(kind, device) });
  } catch (err) {
    setStatus(t(kind === 'audio' ? 'controls.micUnavailable' : 'controls.camUnavailable', { why: err.message }));
    return;
  }
  const track = stream.getTracks()[0];
  state.mediaOn = true;
  state.localStream.addTrack(track);
  showPeople();
  setLabel(button, t(onLabel));
  button.setAttribute('aria-pressed', 'false');
  if (kind === 'video') {
    document.querySelector('.tile video.local')?.closest('.tile').classList.remove('camera-off');
  }
  if (state.publisher && state.role !== 'viewer') {
    await addLocalTrack(track);
    await negotiatePublisher();
  }
}

const TOGGLES = {
  audio: ['toggle-mic', 'controls.muteMic', 'controls.unmuteMic'],
  video: ['toggle-cam', 'controls.stopCam', 'controls.startCam'],
};

/** The microphone and camera buttons as our tracks are: "on" for those
 * we have (and have not muted), "off" for those not started. */
export function showLocalControls() {
  for (const [kind, [id, onLabel, offLabel]] of Object.entries(TOGGLES)) {
    const on = state.localStream.getTracks().some((t) => t.kind === kind && t.enabled);
    setLabel($(id), t(on ? onLabel : offLabel));
    $(id).setAttribute('aria-pressed', String(!on));
  }
}

// Drawn at once too: the markup's words are English.
showLocalControls();
onLanguageChange(() => {
  showLocalControls();
  showScreenControl();
});

/** The microphone ("audio") or camera ("video") button's action. */
export function toggleLocal(kind) {
  const [id, onLabel, offLabel] = TOGGLES[kind];
  toggleLocalTrack(kind, $(id), onLabel, offLabel);
}

/** A host muted our microphone ("audio") or camera ("video"); `locked`:
 * we may not unmute it until a host allows it (the server refuses). */
export function forceMuted(kind, locked) {
  const track = state.localStream?.getTracks().find((t) => t.kind === kind);
  if (track?.enabled) toggleLocal(kind);
  $(TOGGLES[kind][0]).disabled = locked;
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

// ---------- adaptive stream ----------
//
// Each remote video asks the server for the simulcast layer its tile needs
// (what LiveKit calls adaptiveStream): a small tile, a tile scrolled out
// of view in a large meeting, or any tile in a hidden tab, gets the low
// layer and saves everyone bandwidth and decoding.

const qualityObserver = new ResizeObserver((entries) => {
  for (const entry of entries) askQuality(entry.target);
});
const visibilityObserver = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    entry.target.dataset.offscreen = entry.isIntersecting ? '' : '1';
    askQuality(entry.target);
  }
});
document.addEventListener('visibilitychange', () => {
  document.querySelectorAll('#grid video.remote').forEach(askQuality);
});

/** From now on `video` asks for the quality its size needs. */
export function watchQuality(video) {
  qualityObserver.observe(video);
  visibilityObserver.observe(video);
}

export function unwatchQuality(video) {
  qualityObserver.unobserve(video);
  visibilityObserver.unobserve(video);
}

function wantedQuality(video) {
  if (document.hidden || video.dataset.offscreen) return 'low';
  // Tiles show the whole picture (object-fit: contain): as wide as the
  // tile, or narrower where the tile is wider than the picture.
  const aspect = video.videoHeight ? video.videoWidth / video.videoHeight : 16 / 9;
  const width = Math.min(video.clientWidth, video.clientHeight * aspect) * devicePixelRatio;
  if (width <= 320) return 'low';
  return width <= 640 ? 'medium' : 'high';
}

/** Sends track_settings for the video `video` shows, if its wish changed. */
export function askQuality(video) {
  const track = video.srcObject?.getVideoTracks()[0];
  if (!track || !state.participantId || !state.signalling?.open) return;
  const quality = wantedQuality(video);
  // The server starts every subscription at high.
  if ((state.sentQuality.get(track.id) ?? 'high') === quality) return;
  state.sentQuality.set(track.id, quality);
  state.signalling.send({ type: 'track_settings', track_id: track.id, quality });
}

/**
 * `layers_wanted`: the server says which of our camera's simulcast layers
 * anyone receives (dynacast); the encoder stops the others, and starts
 * them again when the server asks. Changes to one sender go one after the
 * other, each from the parameters the last one left.
 */
export function onLayersWanted({ mid, rids }) {
  const published = state.published.find((p) => p.transceiver.mid === mid);
  if (!published || !Array.isArray(rids)) return;
  const { sender } = published.transceiver;
  published.layers = (published.layers ?? Promise.resolve()).then(async () => {
    const parameters = sender.getParameters();
    if (!parameters.encodings?.some((e) => e.rid)) return;
    let changed = false;
    for (const encoding of parameters.encodings) {
      const active = rids.includes(encoding.rid);
      changed ||= encoding.active !== active;
      encoding.active = active;
    }
    if (changed) await sender.setParameters(parameters);
  }).catch((err) => console.warn('could not change the layers we send:', err));
}

/** Leaving: forgets what we published and asked for, and stops a screen
 * share, unless `keepScreen` (getting back in after a dropped connection:
 * it is shared again, with no new prompt). The camera and microphone keep
 * running for a rejoin. */
export function resetMedia({ keepScreen = false } = {}) {
  state.sentQuality.clear();
  qualityObserver.disconnect();
  visibilityObserver.disconnect();
  if (state.screen && keepScreen) {
    state.keptScreen = state.screen.stream;
    state.screen = null;
  } else {
    if (state.screen) stopScreenShare();
    state.keptScreen?.getTracks().forEach((tr) => tr.stop());
    state.keptScreen = null;
  }
  state.published = [];
}
