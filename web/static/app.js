// The meeting page's entry point: a pre-join screen, then a grid of
// participants beside the meeting's chat. Starts the Matrix sign-in, sets up
// the pre-join screen, connects the Join and Rejoin buttons to the session,
// and keeps the hooks the tests (and the console) use in `window.meet`.
//
// The modules, one concern each: state.js (what they share), prejoin.js,
// identity.js and widget.js (signing in with Matrix, in Element or by
// link), session.js (the WebSocket and what each server message does),
// peers.js (the two peer connections), media.js (what we send, and which
// simulcast layer we ask for), devices.js (switching them mid-call),
// meeting.js (tiles, participants, leaving), hands.js (raised hands and
// reactions), quality.js (connection quality), speakers.js (who speaks),
// layout.js (the grid or the speaker layout), chat.js.

import { $, params, state } from './state.js';
import { lang, setLanguage, translatePage } from './i18n.js';
import { startIdentity, joinAsGuest } from './identity.js';
import { acquireMedia, setupPrejoin } from './prejoin.js';
import { join } from './session.js';
import { receiveStats } from './meeting.js';
import { srtpCiphers } from './peers.js';
import { chatMessages, sendChat } from './chat.js';
import './shortcuts.js';
import './devices.js';
import './hands.js';
import './quality.js';
import './layout.js';

translatePage();
$('language').value = lang;
$('language').addEventListener('change', (e) => setLanguage(e.target.value));

// Started before anything else awaits, so that no message from Element is
// missed: settles once the sign-in has an outcome.
const identityFlow = startIdentity();

$('rejoin').addEventListener('click', async () => {
  const ended = state.localStream.getTracks().every((t) => t.readyState === 'ended');
  if (state.mediaOn && ended) await acquireMedia();
  join($('name').value.trim());
});

window.meet = {
  state,
  receiveStats,
  srtpCiphers,
  chatMessages,
  chatDelayed: () => state.chat.delayed,
  chatRoomId: () => (state.chat.info && state.chat.info.room_id) || null,
  /** `joined.identity`: { user_id, host } when we joined signed in, else null. */
  identity: () => state.joinedIdentity,
  /** `joined.role` and `joined.guest`. */
  role: () => ({ role: state.role, guest: state.guest }),
  sendChat,
  get participantId() { return state.participantId; },
  get firstFrameMs() { return state.firstFrameMs; },
  /** Who speaks and the active speaker, as the server last said. */
  speakers: () => ({ active: state.activeSpeaker, speaking: [...state.speaking] }),
};

await setupPrejoin({ onJoin: join, onGuest: joinAsGuest });
// With a Matrix sign-in under way, "join now" waits for its outcome; after
// a failed one the user decides whether to join as a guest (a name typed
// meanwhile must not join them unasked).
await identityFlow;
if (params.get('join') === 'now' && !state.identityFailed && $('name').value.trim()) {
  join($('name').value.trim());
}
