// Switching camera, microphone or speaker in the meeting, without
// rejoining: the new device's track takes the old one's place on the same
// sender (every simulcast layer of it), so nothing is renegotiated and the
// others keep decoding; it keeps the old track's mute state. The speaker is
// where every remote tile's sound plays.

import { t } from './i18n.js';
import { $, setStatus, state } from './state.js';
import { deviceConstraints, listDevices } from './prejoin.js';
import { showPeople } from './people.js';

/** Whether this browser lets a page pick where sound plays. */
const canPickSpeaker = 'setSinkId' in HTMLMediaElement.prototype;

const SELECTS = () => [
  [$('switch-camera'), 'videoinput'],
  [$('switch-microphone'), 'audioinput'],
  ...(canPickSpeaker ? [[$('switch-speaker'), 'audiooutput']] : []),
];

async function openDevices() {
  $('switch-camera').value = $('camera').value;
  $('switch-microphone').value = $('microphone').value;
  await listDevices(SELECTS()).catch(() => {});
  // What is in use now, where the prejoin screen left no choice.
  for (const [kind, select] of [['video', $('switch-camera')], ['audio', $('switch-microphone')]]) {
    const id = state.localStream.getTracks().find((tr) => tr.kind === kind)?.getSettings().deviceId;
    if (id) select.value = id;
  }
  if (state.speaker) $('switch-speaker').value = state.speaker;
  $('devices').showModal();
}

/** Puts the device `id` in the place of our camera (`kind` "video") or
 * microphone ("audio"). One not turned on yet is only chosen: the next
 * click on its button starts it. */
export async function switchDevice(kind, id) {
  $(kind === 'video' ? 'camera' : 'microphone').value = id;
  const old = state.localStream.getTracks().find((tr) => tr.kind === kind);
  if (!old) return;
  let track;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ [kind]: deviceConstraints(kind, id) });
    [track] = stream.getTracks();
  } catch (err) {
    setStatus(t(kind === 'audio' ? 'controls.micUnavailable' : 'controls.camUnavailable', { why: err.message }));
    return;
  }
  track.enabled = old.enabled;
  old.stop();
  state.localStream.removeTrack(old);
  state.localStream.addTrack(track);
  const published = state.published.find((p) => p.track === old);
  if (published) {
    published.track = track;
    await published.transceiver.sender.replaceTrack(track);
  }
  // The self-view picks up the stream's new track.
  const self = document.querySelector('.tile video.local');
  if (self) self.srcObject = state.localStream;
  showPeople();
}

/** Plays every remote tile's sound on `media` (a video or audio element)
 * through the chosen speaker. */
export async function useSpeaker(media) {
  if (!canPickSpeaker || !state.speaker) return;
  await media.setSinkId(state.speaker).catch((err) => console.warn('cannot use the chosen speaker:', err));
}

async function switchSpeaker(id) {
  state.speaker = id;
  await Promise.all([...document.querySelectorAll('#grid video.remote')].map(useSpeaker));
}

$('switch-speaker-label').hidden = !canPickSpeaker;
$('show-devices').addEventListener('click', openDevices);
$('close-devices').addEventListener('click', () => $('devices').close());
$('switch-camera').addEventListener('change', (e) => switchDevice('video', e.target.value));
$('switch-microphone').addEventListener('change', (e) => switchDevice('audio', e.target.value));
$('switch-speaker').addEventListener('change', (e) => switchSpeaker(e.target.value));
