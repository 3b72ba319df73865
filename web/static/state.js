// What the page's modules share: the one state object, the room and URL
// parameters of this page, and two small page helpers. Imports nothing, so
// every other module can import it.

export const $ = (id) => document.getElementById(id);

export const room = decodeURIComponent(location.pathname.replace(/^\/m\//, '').replace(/\/$/, ''));
export const params = new URLSearchParams(location.search);

export const state = {
  /** Our camera and microphone; empty until the user turns them on. */
  localStream: new MediaStream(),
  /** The user turned them on (a click), or a returning join=now did. */
  mediaOn: false,
  signalling: null,
  publisher: null,
  subscriber: null,
  participantId: null,
  /** participant id -> { name, stream, tile, tracks: Map(track id -> info) } */
  participants: new Map(),
  /** receiver track id (as the browser names it) -> { pid, screen } */
  remoteTrackOwner: new Map(),
  /** received video track id -> the quality last asked for (track_settings) */
  sentQuality: new Map(),
  /** What we publish: [{ transceiver, source, track }] */
  published: [],
  /** Our screen share while it runs: { stream, transceiver } */
  screen: null,
  /** A screen share kept running while we get back in, to share again. */
  keptScreen: null,
  publisherQueue: Promise.resolve(),
  onPublisherAnswer: null,
  subscriberQueue: Promise.resolve(),
  joinedAt: 0,
  firstFrameMs: null,
  leaving: false,
  joining: false,
  /** Signed in with Matrix: { token, user_id, name, host } from /api/token. */
  identity: null,
  /** The pre-join screen handles the Join button (prejoin.js). */
  prejoinReady: false,
  /** True while a Matrix sign-in is under way (the Join button waits). */
  identityPending: false,
  /** The Matrix sign-in failed: joining as a guest is the user's call. */
  identityFailed: false,
  /** What the server said about us in `joined`: { user_id, host } or null. */
  joinedIdentity: null,
  /** What the server said we may do in `joined`: host, participant or viewer. */
  role: 'participant',
  /** Admitted without a Matrix identity (`joined.guest`). */
  guest: false,
  /** A host locked the meeting (`meeting_locked`). */
  locked: false,
  /** TURN servers with our credentials, from `joined`. */
  iceServers: [],
  /** The connection to the server dropped and we are getting back in. */
  reconnecting: false,
  /** The next attempt to get back in, while one is due, and how many
   * attempts this reconnection has made. */
  retryTimer: null,
  attempts: 0,
  /** When the last of them began (performance.now()). */
  attemptAt: -Infinity,
  /** `joined.resume`: our secret for the seat the server holds for us
   * for a while should our connection drop. */
  resume: '',
  /** The name we joined with, for getting back in. */
  joinName: '',
  /** How often we got back in after a dropped connection. */
  reconnects: 0,
  /** Servers that sent us on (`moved`) since this join began. */
  moves: 0,
  /** How often we restarted ICE (ice.js) to follow a new network. */
  iceRestarts: 0,
  /** Our connection's quality as last rated: good, fair, poor or null. */
  quality: null,
  /** Who speaks now, and the active speaker (participant ids), as the
   * server last said (`speakers`). */
  speaking: [],
  activeSpeaker: null,
  /** How the tiles are laid out: 'grid', or 'speaker' (the active
   * speaker large, the others in a strip). */
  layout: 'grid',
  /** Our hand is up (as the server last said). */
  handRaised: false,
  /** Where remote sound plays (an audio output's device id), once chosen. */
  speaker: '',
  chat: newChatState(),
};

/** The chat's part of the state, as it is before a meeting's chat is known. */
export function newChatState() {
  return {
    /** `joined.chat`: { room_id, room_alias, delayed } or null. */
    info: null,
    delayed: false,
    /** id (event id, or local id while pending) -> message */
    byId: new Map(),
    /** Messages in display order. */
    order: [],
    /** reaction event id -> the message it is on */
    reactionTarget: new Map(),
    unread: 0,
    /** Keep the newest message in view (false once the reader scrolls up). */
    stickToBottom: true,
    lastSentAt: 0,
  };
}

/** A control's words (beside its icon, which stays). */
export function setLabel(button, text) {
  (button.querySelector('.label') ?? button).textContent = text;
}

/** The meeting screen's status line. */
export function setStatus(text) {
  $('status').textContent = text;
}
