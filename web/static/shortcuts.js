// Keyboard shortcuts in the meeting, as Teams has them (staff know those):
// Ctrl+Shift+M the microphone, Ctrl+Shift+O the camera, Ctrl+Shift+K the
// hand, Ctrl+Shift+P the participant list; "?" shows them all. Not while typing in a field.

import { $, state } from './state.js';
import { toggleLocal } from './media.js';
import { toggleHand } from './hands.js';

const KEYS = {
  m: () => toggleLocal('audio'),
  o: () => toggleLocal('video'),
  k: toggleHand,
  p: () => $('toggle-people').click(),
};

function typing(target) {
  return target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement
    || target instanceof HTMLSelectElement || target?.isContentEditable;
}

document.addEventListener('keydown', (e) => {
  if ($('meeting').hidden || !state.participantId) return;
  const key = e.key.toLowerCase();
  if (e.ctrlKey && e.shiftKey && !e.altKey && KEYS[key]) {
    e.preventDefault();
    KEYS[key]();
  } else if (e.key === '?' && !typing(e.target)) {
    e.preventDefault();
    $('shortcuts').showModal();
  }
});

$('show-shortcuts').addEventListener('click', () => $('shortcuts').showModal());
$('close-shortcuts').addEventListener('click', () => $('shortcuts').close());
