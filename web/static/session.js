// The signalling session: the WebSocket to the server (signalling.js holds
// the wire), the join, and what each server message does. Joining opens
// the peer connections (peers.js) and publishes (media.js); every server
// message is handed to the module that owns its concern.

import { Signalling, PROTOCOL_VERSION } from './signalling.js';
import { $, params, room, state, setStatus } from './state.js';
import { rememberJoined, saveName, updateJoinButton } from './prejoin.js';
import { signInRefused } from './identity.js';
import {
  addLocalTile, addParticipant, leave, onRemoteTrack, refreshHostControls, removeParticipant, trackGone, trackInfo,
  trackMuted,
} from './meeting.js';
import { newPeerConnection, offerRefused, onPublisherAnswer, onSubscriberOffer } from './peers.js';
import { publish, showLocalControls } from './media.js';
import {
  onInviteCreated, onMeetingLocked, onMutedByHost, showHostControls, showLobby,
} from './host.js';
import {
  applyChatEvent, chatHistory, resetChat, setChatDelayed, setupChat, showChatError,
} from './chat.js';

function wsUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

/** Joins the meeting as `name` (the Join and Rejoin buttons, or join=now). */
export async function join(name) {
  if (!name) {
    $('prejoin-error').textContent = 'Please enter your name.';
    return;
  }
  if (state.joining || state.signalling) return;
  if (!state.identity) saveName(name);
  state.joining = true;
  updateJoinButton();
  state.leaving = false;
  state.joinedAt = performance.now();
  state.firstFrameMs = null;
  resetChat();
  $('server-notice').textContent = '';
  onMeetingLocked({ locked: false });
  showLobby([]);
  state.participantId = null;
  state.joinedIdentity = null;
  const signalling = new Signalling(wsUrl());
  state.signalling = signalling;
  signalling
    .on('joined', onJoined)
    .on('publisher_answer', onPublisherAnswer)
    .on('subscriber_offer', onSubscriberOffer)
    .on('participant_joined', (m) => addParticipant(m.participant))
    .on('participant_left', (m) => removeParticipant(m.participant_id))
    .on('track_published', (m) => trackInfo(m.participant_id, m.track))
    .on('track_unpublished', (m) => trackGone(m.participant_id, m.track_id))
    .on('track_muted', (m) => trackMuted(m.participant_id, m.track_id, m.muted))
    .on('chat_history', (m) => chatHistory(m.events))
    .on('chat_event', (m) => { if (m.event) applyChatEvent(m.event, { live: true }); })
    .on('chat_status', (m) => setChatDelayed(!!m.delayed))
    .on('draining', (m) => { $('server-notice').textContent = drainingNotice(m.seconds_left); })
    .on('lobby_waiting', (m) => setStatus(m.for_host
      ? 'Waiting for a host to start the meeting…'
      : 'Waiting for a host to let you in…'))
    .on('lobby', (m) => showLobby(m.waiting || []))
    .on('muted_by_host', onMutedByHost)
    .on('meeting_locked', onMeetingLocked)
    .on('role_changed', onRoleChanged)
    .on('invite_created', onInviteCreated)
    .on('error', (m) => {
      console.warn(`server error ${m.code}: ${m.message}`);
      const refused = [
        'room_full', 'invite_required', 'invalid_invite', 'meeting_ended', 'draining',
        'meeting_locked', 'banned', 'denied', 'lobby_timeout', 'lobby_full',
      ].includes(m.code)
        || (m.code === 'unavailable' && !state.participantId);
      if (refused) {
        leave(m.message || 'You cannot be in this meeting.');
        return;
      }
      if (m.code === 'removed') {
        // Not to be used again: a rejoin must show the room membership anew.
        if (state.identity) state.identity = null;
        // Out of the meeting's Matrix room (left or banned): out of the meeting.
        leave(m.message || 'You were removed from the meeting.');
        return;
      }
      if (m.code === 'invalid_token' && !state.participantId) {
        // The sign-in expired or is for another meeting: back to the start,
        // where one can join as a guest.
        leave();
        signInRefused(m.message || 'the sign-in is no longer valid');
        return;
      }
      showChatError(m.code, m.message);
      setStatus(`Server: ${m.message}`);
      if (m.code === 'bad_sdp') offerRefused();
    })
    .on('close', (m) => {
      if (!state.leaving) leave(m.reason === 'removed' ? 'The server removed you from the meeting.' : 'The connection to the server was lost.');
    });
  try {
    await signalling.connect();
  } catch (err) {
    $('prejoin-error').textContent = err.message;
    state.signalling = null;
    state.joining = false;
    updateJoinButton();
    return;
  }
  const joinMsg = { type: 'join', v: PROTOCOL_VERSION, room, name };
  if (state.identity) {
    // The server takes the name from the token; we send the same one.
    joinMsg.token = state.identity.token;
    joinMsg.name = state.identity.name || name;
  } else if (params.get('invite')) {
    joinMsg.invite = params.get('invite');
  }
  signalling.send(joinMsg);
  $('prejoin').hidden = true;
  $('left').hidden = true;
  $('meeting').hidden = false;
  $('meeting-title').textContent = room;
  setStatus('Connecting…');
}

/** What to tell the user when the server starts shutting down. */
function drainingNotice(secondsLeft) {
  const minutes = Math.max(1, Math.round((Number(secondsLeft) || 0) / 60));
  return 'The server is restarting. This meeting goes on, but for at most '
    + `${minutes} more minute${minutes === 1 ? '' : 's'}; rejoin afterwards if it ends.`;
}

/** Who this page is in the meeting, and with what rights. */
function showIdentity() {
  const badge = $('meeting-identity');
  const role = { host: ' (host)', viewer: ' (viewer)', participant: '' }[state.role] ?? '';
  badge.textContent = state.joinedIdentity
    ? `Signed in as ${state.joinedIdentity.user_id}${role}`
    : `Guest${role}`;
  badge.hidden = false;
}

/** role_changed: someone's rights changed; ours change what we may do. */
function onRoleChanged({ participant_id: pid, role }) {
  const p = state.participants.get(pid);
  if (p) p.role = role;
  if (pid !== state.participantId) return;
  state.role = role;
  showIdentity();
  showHostControls();
  refreshHostControls();
  if (role !== 'host') showLobby([]);
  setStatus(role === 'host' ? 'You are now a host of this meeting.' : 'You are no longer a host of this meeting.');
}

/** joined: we are in. Shows who is here, then opens the connections and publishes. */
async function onJoined(msg) {
  state.participantId = msg.participant_id;
  state.joinedIdentity = msg.identity || null;
  state.role = msg.role || 'participant';
  state.guest = !!msg.guest;
  state.iceServers = msg.ice_servers || [];
  showHostControls();
  showIdentity();
  rememberJoined();
  setupChat(msg.chat || null);
  addLocalTile();
  showLocalControls();
  for (const p of msg.participants) addParticipant(p);
  state.subscriber = newPeerConnection('subscriber');
  state.subscriber.ontrack = onRemoteTrack;
  state.publisher = newPeerConnection('publisher');
  // A viewer receives only; the server would refuse its offers.
  if (state.role === 'viewer') setStatus('');
  else await publish();
}
