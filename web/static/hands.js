// Raised hands and reactions. A hand stays up until its owner (or a host)
// lowers it, and the server keeps it, so a late joiner sees it; the
// participant list puts raised hands first, in the order they went up. A
// reaction floats over the reacting person's tile for a moment; the server
// keeps nothing of it. Both are told to screen readers.

import { onLanguageChange, t } from './i18n.js';
import { $, setLabel, state } from './state.js';
import { announce, showPeople } from './people.js';

/** The reactions the server passes on, and their names for the buttons. */
const REACTIONS = [
  ['👍', 'hands.thumbsUp'],
  ['👏', 'hands.clap'],
  ['❤️', 'hands.heart'],
  ['😂', 'hands.laugh'],
  ['😮', 'hands.surprised'],
  ['🎉', 'hands.celebrate'],
];

/** How long a reaction stays over a tile. */
const REACTION_MS = 4000;

const send = (msg) => state.signalling?.send(msg);

/** Our hand's button as our hand is. */
function showOwnHand() {
  setLabel($('raise-hand'), t(state.handRaised ? 'hands.lower' : 'hands.raise'));
  $('raise-hand').setAttribute('aria-pressed', String(state.handRaised));
}

/** The hand button's action (and Ctrl+Shift+K's). */
export function toggleHand() {
  if (!state.participantId) return;
  send({ type: 'raise_hand', raised: !state.handRaised });
}

/** hand_raised: someone's hand, ours included, went up or down. */
export function onHandRaised({ participant_id: pid, raised }) {
  const mine = pid === state.participantId;
  const p = state.participants.get(pid);
  if (!mine && !p) return;
  const name = mine ? $('name').value.trim() : p.name;
  if (mine) {
    state.handRaised = raised;
    showOwnHand();
  } else {
    p.handRaisedAt = raised ? Date.now() : null;
    showTileHand(p);
  }
  showPeople();
  if (raised) announce(t(mine ? 'hands.youRaised' : 'hands.raised', { name }));
  else if (mine) announce(t('hands.yoursLowered'));
}

/** The ✋ on a participant's tile, with words for those who do not see it. */
export function showTileHand(p) {
  const caption = p.tile.querySelector('figcaption');
  let badge = caption.querySelector('.hand');
  if (!p.handRaisedAt) {
    badge?.remove();
    return;
  }
  if (!badge) {
    badge = document.createElement('span');
    badge.className = 'hand';
    caption.prepend(badge);
  }
  badge.textContent = `✋ ${t('hands.raisedBadge')}`;
}

/** reacted: a reaction floats over the reacting person's tile. */
export function onReacted({ participant_id: pid, reaction }) {
  const mine = pid === state.participantId;
  const p = state.participants.get(pid);
  const tile = mine ? document.querySelector('#grid .tile.self') : p?.tile;
  if (!tile) return;
  const float = document.createElement('span');
  float.className = 'reaction';
  float.textContent = reaction;
  float.setAttribute('aria-hidden', 'true');
  tile.append(float);
  setTimeout(() => float.remove(), REACTION_MS);
  const named = REACTIONS.find(([emoji]) => emoji === reaction);
  if (named && !mine) announce(t('hands.reacted', { name: p.name, reaction: t(named[1]) }));
}

/** After (re)joining: a hand we had up goes up again. */
export function restoreHand() {
  if (state.handRaised) send({ type: 'raise_hand', raised: true });
  state.handRaised = false;
  showOwnHand();
}

function buildReactions() {
  const menu = $('reactions');
  menu.replaceChildren(...REACTIONS.map(([emoji, key]) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = emoji;
    b.setAttribute('aria-label', t(key));
    b.title = t(key);
    b.onclick = () => {
      send({ type: 'react', reaction: emoji });
      toggleReactions(false);
    };
    return b;
  }));
}

function toggleReactions(open = $('reactions').hidden) {
  $('reactions').hidden = !open;
  $('show-reactions').setAttribute('aria-expanded', String(open));
  if (open) $('reactions').querySelector('button').focus();
}

$('raise-hand').addEventListener('click', toggleHand);
$('show-reactions').addEventListener('click', () => toggleReactions());
$('reactions').addEventListener('keydown', (e) => {
  if (e.key === 'Escape') {
    toggleReactions(false);
    $('show-reactions').focus();
  }
});
buildReactions();
onLanguageChange(() => {
  buildReactions();
  showOwnHand();
  for (const p of state.participants.values()) showTileHand(p);
});
