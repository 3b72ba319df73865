// Who is in the meeting, for everyone: the participant list (names, host
// and guest, microphone and camera, as the server says them), the count
// in the header, and what a screen reader is told as people come and go.

import { onLanguageChange, t } from './i18n.js';
import { $, state } from './state.js';

/** Tells screen readers, politely, without moving the focus. */
export function announce(text) {
  const region = $('announcer');
  // A fresh node each time, so that the same words twice are read twice.
  const p = document.createElement('p');
  p.textContent = text;
  region.replaceChildren(p);
}

function status(label, on) {
  const s = document.createElement('span');
  s.className = on ? 'state on' : 'state off';
  s.textContent = t(label);
  return s;
}

/** Redraws the list and the count from what the page knows now. */
export function showPeople() {
  const items = [];
  const me = document.createElement('li');
  me.append(`${$('name').value.trim()}${t('meeting.you')}`);
  const local = state.localStream.getTracks();
  const on = (kind) => local.some((tr) => tr.kind === kind && tr.enabled);
  me.append(
    status(on('audio') ? 'people.micOn' : 'people.micOff', on('audio')),
    status(on('video') ? 'people.camOn' : 'people.camOff', on('video')),
  );
  items.push(me);
  for (const p of state.participants.values()) {
    const li = document.createElement('li');
    const tracks = [...p.tracks.values()];
    const mic = tracks.find((tr) => tr.source === 'microphone');
    const cam = tracks.find((tr) => tr.source === 'camera');
    const role = p.role === 'host' ? t('meeting.roleHost') : '';
    li.append(`${p.name}${p.guest ? t('meeting.guest') : ''}${role}`);
    li.append(
      status(mic && !mic.muted ? 'people.micOn' : 'people.micOff', !!mic && !mic.muted),
      status(cam && !cam.muted ? 'people.camOn' : 'people.camOff', !!cam && !cam.muted),
    );
    items.push(li);
  }
  $('people-list').replaceChildren(...items);
  const n = state.participants.size + (state.participantId ? 1 : 0);
  $('people-count').textContent = String(n);
  $('people-heading').textContent = t('people.heading', { n });
}

function togglePeople() {
  const panel = $('people');
  panel.hidden = !panel.hidden;
  $('toggle-people').setAttribute('aria-expanded', String(!panel.hidden));
  if (!panel.hidden) showPeople();
}

$('toggle-people').addEventListener('click', togglePeople);
onLanguageChange(() => { if (state.participantId) showPeople(); });
