// The signalling session: the WebSocket to the server (signalling.js holds
// the wire), the join, and what each server message does. Joining opens
// the peer connections (peers.js) and publishes (media.js); every server
// message is handed to the module that owns its concern.

import { errorText, onLanguageChange, t } from './i18n.js';
import { Signalling, PROTOCOL_VERSION } from './signalling.js';
import { $, params, room, state, setStatus } from './state.js';
import { rememberJoined, saveName, updateJoinButton } from './prejoin.js';
import { signInRefused } from './identity.js';
import {
  addLocalTile, addParticipant, dropMeeting, leave, onRemoteTrack, participantReconnecting, refreshHostControls,
  removeParticipant, trackGone, trackInfo, trackMuted,
} from './meeting.js';
import { newPeerConnection, offerRefused, onPublisherAnswer, onSubscriberOffer } from './peers.js';
import { setupIceRestart, watchIce } from './ice.js';
import { onLayersWanted, publish, showLocalControls } from './media.js';
import { showPeople } from './people.js';
import { onHandRaised, onReacted, restoreHand } from './hands.js';
import { onSpeakers } from './speakers.js';
import { onTrackPaused } from './quality.js';
import {
  onInviteCreated, onMeetingLocked, onMutedByHost, showHostControls, showLobby,
} from './host.js';
import {
  applyChatEvent, chatHistory, resetChat, setChatDelayed, setupChat, showChatError,
} from './chat.js';

/** The signalling address: this page's server, or `via`, where a server
 * sent us on (`moved`: another server of the deployment holds the
 * meeting; a path on this origin or a ws(s):// URL). */
function wsUrl(via) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  if (!via) return `${scheme}//${location.host}/ws`;
  const url = new URL(via, location.href);
  if (url.protocol === 'http:' || url.protocol === 'https:') url.protocol = scheme;
  return url.href;
}

// Servers that disagree about where a meeting lives would send us round in
// circles: after this many moves in a row, we try again from the start.
const MAX_MOVES = 3;

// Errors that say "not now" rather than "not you": while getting back in
// after a dropped connection, try again.
const TRANSIENT = ['draining', 'unavailable', 'overloaded', 'too_many_joins', 'timeout'];

/** The connection to the server dropped while we were in the meeting (the
 * network, or the server restarting): back in by ourselves, with what we
 * published and its mute state, and the chat. Tries at once, then less
 * and less often, until the user leaves. */
function reconnect() {
  state.signalling?.close();
  state.signalling = null;
  state.joining = false;
  dropMeeting({ keepScreen: true });
  state.participantId = null;
  if (!state.reconnecting) state.attempts = 0;
  state.reconnecting = true;
  setStatus(t('meeting.reconnecting'));
  retry();
}

// A new network, or a failed media path: ICE restarts first; a rejoin is
// the fallback.
setupIceRestart(reconnect);

/** The next attempt: the first at once, then 0.5, 1, 2, 4, 4, … s after
 * the one before began (an attempt that waited out a server that hangs
 * has waited already); `soon`: after 0.5 s whatever came before (the
 * meeting's server, as another said, did not answer: it is moving to
 * another within seconds). */
function retry({ soon = false } = {}) {
  clearTimeout(state.retryTimer);
  const attempt = state.attempts;
  state.attempts += 1;
  const backoff = attempt === 0 ? 0 : Math.min(250 * 2 ** attempt, 4000);
  const waited = performance.now() - state.attemptAt;
  const delay = soon ? 500 : Math.max(0, backoff - waited);
  state.retryTimer = setTimeout(async () => {
    if (!state.reconnecting || state.leaving) return;
    state.attemptAt = performance.now();
    if (!(await join(state.joinName, { rejoin: true }))) retry();
  }, delay);
}

/** Joins the meeting as `name` (the Join and Rejoin buttons, or join=now);
 * `rejoin`: getting back in after a dropped connection; `via`: the server
 * that holds the meeting, as another one said. Resolves false when the
 * server could not be reached. */
export async function join(name, { rejoin = false, via = null } = {}) {
  if (!name) {
    $('prejoin-error').textContent = t('prejoin.enterName');
    return true;
  }
  if (state.joining || state.signalling) return true;
  if (!state.identity) saveName(name);
  state.joinName = name;
  state.joining = true;
  if (!via) state.moves = 0;
  updateJoinButton();
  state.leaving = false;
  if (!rejoin) state.reconnecting = false;
  state.joinedAt = performance.now();
  state.firstFrameMs = null;
  resetChat();
  $('server-notice').textContent = '';
  onMeetingLocked({ locked: false });
  showLobby([]);
  state.participantId = null;
  state.joinedIdentity = null;
  const signalling = new Signalling(wsUrl(via));
  state.signalling = signalling;
  // The server let our seat go because our media went silent (a network
  // that dropped for longer than it waits): we get back in, as after a
  // dropped socket.
  let mediaTimedOut = false;
  signalling
    .on('joined', onJoined)
    .on('publisher_answer', onPublisherAnswer)
    .on('subscriber_offer', onSubscriberOffer)
    .on('participant_joined', (m) => addParticipant(m.participant, { live: true, replaces: m.replaces }))
    .on('participant_reconnecting', (m) => participantReconnecting(m.participant_id))
    .on('participant_left', (m) => removeParticipant(m.participant_id))
    .on('track_published', (m) => trackInfo(m.participant_id, m.track))
    .on('track_unpublished', (m) => trackGone(m.participant_id, m.track_id))
    .on('track_muted', (m) => trackMuted(m.participant_id, m.track_id, m.muted))
    .on('chat_history', (m) => chatHistory(m.events))
    .on('chat_event', (m) => { if (m.event) applyChatEvent(m.event, { live: true }); })
    .on('chat_status', (m) => setChatDelayed(!!m.delayed))
    .on('draining', (m) => { $('server-notice').textContent = drainingNotice(m.seconds_left); })
    .on('lobby_waiting', (m) => setStatus(t(m.for_host ? 'meeting.waitingForHost' : 'meeting.waitingToBeLetIn')))
    .on('lobby', (m) => showLobby(m.waiting || []))
    .on('muted_by_host', onMutedByHost)
    .on('meeting_locked', onMeetingLocked)
    .on('role_changed', onRoleChanged)
    .on('hand_raised', onHandRaised)
    .on('reacted', onReacted)
    .on('speakers', onSpeakers)
    .on('track_paused', onTrackPaused)
    .on('layers_wanted', onLayersWanted)
    .on('invite_created', onInviteCreated)
    .on('moved', async (m) => {
      // Another server holds the meeting: the same join, there.
      signalling.close();
      state.signalling = null;
      state.joining = false;
      state.moves += 1;
      const there = state.moves <= MAX_MOVES && await join(name, { rejoin, via: m.url });
      if (there) return;
      // Not reachable (yet): from the start again, as after a dropped
      // connection, until the meeting has found its new server.
      if (!state.reconnecting) {
        state.reconnecting = true;
        state.attempts = 0;
      }
      retry({ soon: state.attempts < 20 });
    })
    .on('error', (m) => {
      console.warn(`server error ${m.code}: ${m.message}`);
      if (state.reconnecting && !state.participantId && TRANSIENT.includes(m.code)) {
        signalling.close();
        state.signalling = null;
        state.joining = false;
        retry();
        return;
      }
      const refused = [
        'room_full', 'invite_required', 'invalid_invite', 'meeting_ended', 'draining',
        'meeting_locked', 'banned', 'denied', 'lobby_timeout', 'lobby_full',
        'invite_revoked', 'too_many_knocks',
      ].includes(m.code)
        || (m.code === 'unavailable' && !state.participantId);
      if (refused) {
        leave(errorText(m.code, m.message) || t('left.cannotBeIn'));
        return;
      }
      if (m.code === 'removed') {
        // Not to be used again: a rejoin must show the room membership anew.
        if (state.identity) state.identity = null;
        // Out of the meeting's Matrix room (left or banned): out of the meeting.
        leave(errorText(m.code, m.message) || t('left.removed'));
        return;
      }
      if (m.code === 'timeout' && state.participantId) {
        mediaTimedOut = true;
        return;
      }
      if (m.code === 'invalid_token' && !state.participantId) {
        // The sign-in expired or is for another meeting: back to the start,
        // where one can join as a guest.
        leave();
        signInRefused(errorText(m.code, m.message) || t('identity.noLongerValid'));
        return;
      }
      showChatError(m.code, m.message);
      setStatus(t('meeting.serverSays', { message: errorText(m.code, m.message) }));
      if (m.code === 'bad_sdp') offerRefused();
    })
    .on('close', (m) => {
      if (state.leaving) return;
      if (m.reason === 'removed' && !mediaTimedOut) leave(t('left.serverRemoved'));
      // This page's seat went to a newer connection of its own (see the
      // server's held seats): nothing to get back into.
      else if (m.reason === 'replaced') leave(t('left.replaced'));
      else if (state.participantId || state.reconnecting) reconnect();
      else leave(t('left.connectionLost'));
    });
  try {
    await signalling.connect();
  } catch (err) {
    // Its close, which follows, is no dropped meeting: the caller decides.
    signalling.close();
    state.signalling = null;
    state.joining = false;
    if (rejoin || via) return false;
    $('prejoin-error').textContent = err.message;
    updateJoinButton();
    return true;
  }
  const joinMsg = { type: 'join', v: PROTOCOL_VERSION, room, name };
  if (state.identity) {
    // The server takes the name from the token; we send the same one.
    joinMsg.token = state.identity.token;
    joinMsg.name = state.identity.name || name;
  } else if (params.get('invite')) {
    joinMsg.invite = params.get('invite');
  }
  // Back to the seat the server holds for us, while it does: no lobby,
  // no fresh sign-in, and the others see us come back, not leave.
  if (rejoin && state.resume) joinMsg.resume = state.resume;
  signalling.send(joinMsg);
  $('prejoin').hidden = true;
  $('left').hidden = true;
  $('meeting').hidden = false;
  $('meeting-title').textContent = room;
  setStatus(t(rejoin ? 'meeting.reconnecting' : 'meeting.connecting'));
  return true;
}

// A page that closes, or goes elsewhere, has left: the server need not
// hold its seat. (Browsers also close the socket as "going away".)
addEventListener('pagehide', () => state.signalling?.send({ type: 'leave' }));

/** What to tell the user when the server starts shutting down. */
function drainingNotice(secondsLeft) {
  const minutes = Math.max(1, Math.round((Number(secondsLeft) || 0) / 60));
  return minutes === 1 ? t('meeting.drainingOne') : t('meeting.draining', { minutes });
}

/** Who this page is in the meeting, and with what rights. */
function showIdentity() {
  const badge = $('meeting-identity');
  const role = { host: t('meeting.roleHost'), viewer: t('meeting.roleViewer') }[state.role] ?? '';
  badge.textContent = state.joinedIdentity
    ? t('meeting.badgeSignedIn', { user: state.joinedIdentity.user_id, role })
    : t('meeting.badgeGuest', { role });
  badge.hidden = false;
}

onLanguageChange(() => { if (state.participantId) showIdentity(); });

/** role_changed: someone's rights changed; ours change what we may do. */
function onRoleChanged({ participant_id: pid, role }) {
  const p = state.participants.get(pid);
  if (p) p.role = role;
  showPeople();
  if (pid !== state.participantId) return;
  state.role = role;
  showIdentity();
  showHostControls();
  refreshHostControls();
  if (role !== 'host') showLobby([]);
  setStatus(t(role === 'host' ? 'meeting.nowHost' : 'meeting.noLongerHost'));
}

/** joined: we are in. Shows who is here, then opens the connections and publishes. */
async function onJoined(msg) {
  if (state.reconnecting) {
    state.reconnecting = false;
    state.reconnects += 1;
  }
  state.participantId = msg.participant_id;
  state.resume = msg.resume || '';
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
  restoreHand();
  showPeople();
  state.subscriber = newPeerConnection('subscriber');
  state.subscriber.ontrack = onRemoteTrack;
  state.publisher = newPeerConnection('publisher');
  watchIce(state.subscriber, 'subscriber');
  watchIce(state.publisher, 'publisher');
  // A viewer receives only; the server would refuse its offers.
  if (state.role === 'viewer') setStatus('');
  else await publish();
}
