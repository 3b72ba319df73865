// Who is in the meeting, for everyone: the participant list (names, host
// and guest, microphone, camera and hand, as the server says them), the count
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

/** A host's button that lowers someone's hand. */
function lowerHandButton(pid, name) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'secondary';
  b.textContent = t('hands.lower');
  b.setAttribute('aria-label', t('hands.lowerFor', { name }));
  b.onclick = () => state.signalling?.send({ type: 'lower_hand', participant_id: pid });
  return b;
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
  if (state.handRaised) me.append(status('people.handUp', true));
  items.push(me);
  // Raised hands first, in the order they went up, as Teams lists them.
  const everyone = [...state.participants.entries()]
    .sort(([, a], [, b]) => (a.handRaisedAt ?? Infinity) - (b.handRaisedAt ?? Infinity));
  for (const [pid, p] of everyone) {
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
    if (p.speaking) li.append(status('people.speaking', true));
    if (p.reconnecting) li.append(status('people.reconnectingState', false));
    if (p.handRaisedAt) {
      li.append(status('people.handUp', true));
      if (state.role === 'host') li.append(lowerHandButton(pid, p.name));
    }
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
