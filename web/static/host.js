// What hosts do to the meeting and to others in it — let people in from
// the lobby or not, hand out an invite link, mute someone (and keep them
// muted), remove or ban them, lock the meeting, end it for everyone — and
// what the others see
// of it: a host's mute of their own
// microphone or camera, and the meeting's lock. The server enforces all
// of it; these are its controls and its news.

import { $, room, state, setStatus } from './state.js';
import { forceMuted } from './media.js';

const send = (msg) => state.signalling?.send(msg);

function button(className, text, label, onclick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = className;
  b.textContent = text;
  b.setAttribute('aria-label', label);
  b.onclick = onclick;
  return b;
}

/** The host's buttons on participant `pid`'s tile: mute its microphone
 * (and keep it muted), remove it, ban it. */
export function hostControls(pid, name) {
  const micTrack = () => [...(state.participants.get(pid)?.tracks.values() ?? [])]
    .find((t) => t.source === 'microphone');
  const mute = (locked) => {
    const track = micTrack();
    if (track) send({ type: 'mute_participant', participant_id: pid, track_id: track.id, locked });
  };
  const keep = button('host-keep-muted', 'Keep muted', `Mute ${name} and keep them muted`, () => {
    const locked = keep.getAttribute('aria-pressed') !== 'true';
    keep.setAttribute('aria-pressed', String(locked));
    mute(locked);
  });
  keep.setAttribute('aria-pressed', 'false');
  return [
    button('host-mute', 'Mute', `Mute ${name}'s microphone`, () => mute(false)),
    keep,
    button('remove', 'Remove', `Remove ${name} from the meeting`, () => send({ type: 'remove', participant_id: pid })),
    button('host-ban', 'Ban', `Remove ${name} and keep them out`, () => send({ type: 'remove', participant_id: pid, ban: true })),
  ];
}

/** Shows the meeting-wide controls to hosts. */
export function showHostControls() {
  const host = state.role === 'host';
  $('invite-link').hidden = !host;
  if (!host) $('invite').hidden = true;
  $('lock-meeting').hidden = !host;
  $('end-meeting').hidden = !host;
}

/** muted_by_host: a host muted our microphone or camera. */
export function onMutedByHost({ source, locked }) {
  const kind = source === 'camera' ? 'video' : 'audio';
  forceMuted(kind, locked);
  const what = kind === 'audio' ? 'microphone' : 'camera';
  setStatus(locked
    ? `A host muted your ${what} and keeps it muted.`
    : `A host muted your ${what}. You can unmute it.`);
}

/** lobby (hosts only): who waits to be let in. */
export function showLobby(waiting) {
  const list = $('lobby-list');
  list.replaceChildren(...waiting.map(({ id, name }) => {
    const item = document.createElement('li');
    const label = document.createElement('span');
    label.textContent = `${name} (guest)`;
    item.append(
      label,
      button('lobby-admit', 'Admit', `Let ${name} in`, () => send({ type: 'admit', lobby_id: id })),
      button('lobby-deny', 'Deny', `Turn ${name} away`, () => send({ type: 'deny', lobby_id: id })),
    );
    return item;
  }));
  $('lobby').hidden = waiting.length === 0;
  $('lobby-count').textContent = String(waiting.length);
}

/** invite_created: the link to hand out, on the origin this page came
 * from, selected for copying (and copied where the browser lets us). */
export function onInviteCreated({ invite }) {
  const url = new URL(`/m/${encodeURIComponent(room)}`, location.origin);
  url.searchParams.set('invite', invite);
  const field = $('invite-url');
  field.value = url.href;
  $('invite').hidden = false;
  field.focus();
  field.select();
  navigator.clipboard?.writeText(url.href).then(
    () => setStatus('Invite link copied.'),
    () => setStatus('Invite link ready to copy.'),
  );
}

/** meeting_locked: nobody but hosts may join while it is locked. */
export function onMeetingLocked({ locked }) {
  state.locked = !!locked;
  const b = $('lock-meeting');
  b.textContent = locked ? 'Unlock meeting' : 'Lock meeting';
  b.setAttribute('aria-pressed', String(!!locked));
  $('meeting-locked').hidden = !locked;
}

$('invite-link').addEventListener('click', () => send({ type: 'create_invite', role: 'participant' }));
$('lock-meeting').addEventListener('click', () => send({ type: 'lock_meeting', locked: !state.locked }));
$('end-meeting').addEventListener('click', () => {
  if (window.confirm('End the meeting for everyone?')) send({ type: 'end_meeting' });
});
