// What hosts do to the meeting and to others in it — let people in from
// the lobby or not, hand out an invite link, mute someone (and keep them
// muted), remove or ban them, lock the meeting, end it for everyone — and
// what the others see
// of it: a host's mute of their own
// microphone or camera, and the meeting's lock. The server enforces all
// of it; these are its controls and its news.

import { onLanguageChange, t } from './i18n.js';
import { $, room, setLabel, state, setStatus } from './state.js';
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
  const keep = button('host-keep-muted', t('host.keepMuted'), t('host.keepMutedLabel', { name }), () => {
    const locked = keep.getAttribute('aria-pressed') !== 'true';
    keep.setAttribute('aria-pressed', String(locked));
    mute(locked);
  });
  keep.setAttribute('aria-pressed', 'false');
  return [
    button('host-mute', t('host.mute'), t('host.muteLabel', { name }), () => mute(false)),
    keep,
    button('remove', t('host.remove'), t('host.removeLabel', { name }), () => send({ type: 'remove', participant_id: pid })),
    button('host-ban', t('host.ban'), t('host.banLabel', { name }), () => send({ type: 'remove', participant_id: pid, ban: true })),
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
  const what = kind === 'audio' ? 'Mic' : 'Cam';
  setStatus(t(`host.mutedYour${what}${locked ? 'Locked' : ''}`));
}

/** lobby (hosts only): who waits to be let in. */
export function showLobby(waiting) {
  const list = $('lobby-list');
  list.replaceChildren(...waiting.map(({ id, name }) => {
    const item = document.createElement('li');
    const label = document.createElement('span');
    label.textContent = t('host.lobbyGuest', { name });
    item.append(
      label,
      button('lobby-admit', t('host.admit'), t('host.admitLabel', { name }), () => send({ type: 'admit', lobby_id: id })),
      button('lobby-deny', t('host.deny'), t('host.denyLabel', { name }), () => send({ type: 'deny', lobby_id: id })),
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
    () => setStatus(t('host.inviteCopied')),
    () => setStatus(t('host.inviteReady')),
  );
}

/** meeting_locked: nobody but hosts may join while it is locked. */
export function onMeetingLocked({ locked }) {
  state.locked = !!locked;
  const b = $('lock-meeting');
  setLabel(b, t(locked ? 'controls.unlock' : 'controls.lock'));
  b.setAttribute('aria-pressed', String(!!locked));
  $('meeting-locked').hidden = !locked;
}

// Drawn at once too: the markup's words are English.
onMeetingLocked({ locked: state.locked });
onLanguageChange(() => onMeetingLocked({ locked: state.locked }));

$('invite-link').addEventListener('click', () => send({ type: 'create_invite', role: 'participant' }));
$('lock-meeting').addEventListener('click', () => send({ type: 'lock_meeting', locked: !state.locked }));
$('end-meeting').addEventListener('click', () => {
  if (window.confirm(t('host.confirmEnd'))) send({ type: 'end_meeting' });
});
