// The pre-join screen: the name (remembered in localStorage), the camera
// preview, the camera and microphone lists, and the Join button.

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

export async function acquireMedia() {
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

/** Fills in the screen and starts the preview; the Join button then calls
 * onJoin(name) and "Join as a guest instead" calls onGuest(). */
export async function setupPrejoin({ onJoin, onGuest }) {
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
    onJoin($('name').value.trim());
  });
  $('guest-button').addEventListener('click', onGuest);
}

export function updateJoinButton() {
  $('join-button').disabled = state.joining || state.identityPending;
}
