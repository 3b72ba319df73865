// The chat panel: the meeting's Matrix room as the server bridges it. The
// server sends chat_history (right after joined) and chat_event messages;
// both are applied the same way, in order. All text goes into the page as
// text (textContent), never as markup. Also the panel's toggle, the unread
// badge, the "chat is delayed" notice and sending a message.

import { errorText, onLanguageChange, t } from './i18n.js';
import { $, state, newChatState } from './state.js';

const wideScreen = window.matchMedia('(min-width: 721px)');
let chatOpen = wideScreen.matches;

export function resetChat() {
  state.chat = newChatState();
  $('chat-log').replaceChildren();
  $('chat-error').textContent = '';
  $('chat-delayed').textContent = '';
  $('chat-unavailable').hidden = true;
  $('chat').hidden = true;
  $('toggle-chat').hidden = true;
  updateUnread();
}

/** `info` is joined.chat: null when this meeting has no chat. */
export function setupChat(info) {
  state.chat.info = info;
  $('toggle-chat').hidden = !info;
  $('chat-form').hidden = !info;
  $('chat-unavailable').hidden = !!info;
  setChatDelayed(!!(info && info.delayed));
  updateChatPanel();
}

/** Shows or hides the panel: open if the chat exists and the reader wants it. */
function updateChatPanel() {
  const open = chatOpen && !!state.chat.info;
  $('chat').hidden = !open;
  $('toggle-chat').setAttribute('aria-expanded', String(open));
  if (open) {
    state.chat.unread = 0;
    updateUnread();
    if (state.chat.stickToBottom) scrollChatToEnd();
  }
}

function updateUnread() {
  const badge = $('chat-unread');
  const n = state.chat.unread;
  badge.hidden = n === 0;
  const count = document.createElement('span');
  count.textContent = n > 99 ? '99+' : String(n);
  const words = document.createElement('span');
  words.className = 'visually-hidden';
  words.textContent = t('chat.unread');
  badge.replaceChildren(count, words);
}

export function setChatDelayed(delayed) {
  state.chat.delayed = delayed;
  $('chat-delayed').textContent = delayed ? t('chat.delayed') : '';
}

// What is drawn already follows a change of language.
onLanguageChange(() => {
  updateUnread();
  setChatDelayed(state.chat.delayed);
  for (const m of state.chat.order) renderMessage(m);
});

export function chatHistory(events) {
  // Everything since the meeting started: a fresh start.
  state.chat.byId.clear();
  state.chat.order = [];
  state.chat.reactionTarget.clear();
  $('chat-log').replaceChildren();
  for (const ev of events || []) applyChatEvent(ev, { live: false });
  scrollChatToEnd();
}

/** Applies one ChatEvent; events about messages we do not know are ignored. */
export function applyChatEvent(ev, { live }) {
  const chat = state.chat;
  const atEnd = chat.stickToBottom;
  switch (ev.kind) {
    case 'message': {
      if (typeof ev.id !== 'string' || chat.byId.has(ev.id)) return;
      const replyTo = ev.reply_to || null;
      const msg = {
        id: ev.id,
        sender: ev.sender || '',
        name: ev.name || ev.sender || '',
        body: replyTo ? stripReplyFallback(String(ev.body ?? '')) : String(ev.body ?? ''),
        ts: Number(ev.ts) || Date.now(),
        replyTo,
        pending: !!ev.pending,
        edited: false,
        deleted: false,
        /** reaction event id -> { key, name } */
        reactions: new Map(),
        el: document.createElement('li'),
      };
      chat.byId.set(msg.id, msg);
      chat.order.push(msg);
      renderMessage(msg);
      $('chat-log').append(msg.el);
      if (live && $('chat').hidden) {
        chat.unread += 1;
        updateUnread();
      }
      break;
    }
    case 'delivered': {
      const msg = chat.byId.get(ev.local_id);
      if (!msg || typeof ev.id !== 'string') return;
      chat.byId.delete(ev.local_id);
      const twin = chat.byId.get(ev.id);
      if (twin && twin !== msg) {
        // The delivered copy is already here: drop the pending one.
        msg.el.remove();
        chat.order = chat.order.filter((m) => m !== msg);
        return;
      }
      msg.id = ev.id;
      msg.pending = false;
      chat.byId.set(msg.id, msg);
      renderMessage(msg);
      break;
    }
    case 'failed': {
      // The homeserver refused the message for good (e.g. not allowed).
      const msg = chat.byId.get(ev.local_id);
      if (!msg || !msg.pending) return;
      msg.pending = false;
      msg.failed = true;
      renderMessage(msg);
      break;
    }
    case 'edit': {
      const msg = chat.byId.get(ev.id);
      if (!msg || msg.deleted) return;
      msg.body = String(ev.body ?? '');
      msg.edited = true;
      renderMessage(msg);
      renderRepliesTo(msg);
      break;
    }
    case 'redact': {
      const msg = chat.byId.get(ev.id);
      if (msg) {
        msg.deleted = true;
        msg.body = '';
        msg.edited = false;
        for (const rid of msg.reactions.keys()) chat.reactionTarget.delete(rid);
        msg.reactions.clear();
        renderMessage(msg);
        renderRepliesTo(msg);
        return;
      }
      const target = chat.reactionTarget.get(ev.id);
      if (target) {
        chat.reactionTarget.delete(ev.id);
        target.reactions.delete(ev.id);
        renderMessage(target);
      }
      return;
    }
    case 'reaction': {
      const target = chat.byId.get(ev.target);
      if (!target || target.deleted || typeof ev.id !== 'string' || chat.reactionTarget.has(ev.id)) return;
      target.reactions.set(ev.id, { key: String(ev.key ?? ''), name: ev.name || '' });
      chat.reactionTarget.set(ev.id, target);
      renderMessage(target);
      break;
    }
    default:
      return;
  }
  if (live && atEnd) scrollChatToEnd();
}

/** A reply's body may start with the quoted original ("> <@a:b> text"
 * lines, then an empty line): we show our own quote instead. */
function stripReplyFallback(body) {
  const lines = body.split('\n');
  let i = 0;
  while (i < lines.length && lines[i].startsWith('>')) i += 1;
  if (i > 0 && i < lines.length && lines[i] === '') return lines.slice(i + 1).join('\n');
  return body;
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** (Re)builds a message's list item from its state. */
function renderMessage(msg) {
  const li = msg.el;
  li.className = 'chat-msg';
  li.classList.toggle('pending', msg.pending);
  li.classList.toggle('deleted', msg.deleted);
  li.dataset.id = msg.id;

  const meta = el('div', 'chat-meta');
  const name = el('span', 'chat-name', msg.name);
  if (msg.sender.startsWith('@')) name.title = msg.sender;
  const time = el('time', 'chat-time', new Date(msg.ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
  time.dateTime = new Date(msg.ts).toISOString();
  meta.append(name, time);
  if (msg.pending) meta.append(el('span', 'chat-hint', t('chat.sending')));
  if (msg.failed) meta.append(el('span', 'chat-hint', t('chat.notDelivered')));

  const parts = [meta];
  const quoted = msg.replyTo && state.chat.byId.get(msg.replyTo);
  if (quoted) {
    const quote = el('blockquote', 'chat-quote');
    const excerpt = quoted.deleted ? t('chat.deleted') : quoted.body.replace(/\s+/g, ' ').slice(0, 80);
    quote.append(el('span', 'visually-hidden', t('chat.inReplyTo')), `${quoted.name}: ${excerpt}`);
    parts.push(quote);
  }

  const body = el('p', 'chat-body', msg.deleted ? t('chat.deleted') : msg.body);
  if (msg.edited && !msg.deleted) body.append(' ', el('span', 'chat-hint', t('chat.edited')));
  parts.push(body);

  if (msg.reactions.size > 0) {
    const byKey = new Map();
    for (const { key, name: who } of msg.reactions.values()) {
      if (!byKey.has(key)) byKey.set(key, []);
      byKey.get(key).push(who);
    }
    const list = el('ul', 'chat-reactions');
    list.setAttribute('aria-label', t('chat.reactions'));
    for (const [key, names] of byKey) {
      const chip = el('li', '', `${key} ${names.length}`);
      chip.title = names.filter(Boolean).join(', ');
      list.append(chip);
    }
    parts.push(list);
  }
  li.replaceChildren(...parts);
}

function renderRepliesTo(msg) {
  for (const m of state.chat.order) if (m.replyTo === msg.id) renderMessage(m);
}

function scrollChatToEnd() {
  const log = $('chat-log');
  log.scrollTop = log.scrollHeight;
  state.chat.stickToBottom = true;
}

/** Sends a chat message; false if there was nothing to send or no way to. */
export function sendChat(text) {
  const body = String(text).trim();
  if (!body || !state.chat.info || !state.signalling || !state.signalling.open) return false;
  if ([...body].length > 4000) {
    $('chat-error').textContent = t('chat.tooLong');
    return false;
  }
  $('chat-error').textContent = '';
  state.chat.lastSentAt = Date.now();
  state.signalling.send({ type: 'chat', text: body });
  return true;
}

/** Shows a server `error` under the chat if it is about chat: chat_unavailable,
 * or bad_message soon after we sent a message (it was refused). */
export function showChatError(code, message) {
  if (code === 'chat_unavailable' || (code === 'bad_message' && Date.now() - state.chat.lastSentAt < 5000)) {
    $('chat-error').textContent = code === 'chat_unavailable' ? t('chat.unavailableWhy', { why: message }) : errorText(code, message);
  }
}

$('chat-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = $('chat-input');
  if (sendChat(input.value)) input.value = '';
});
$('chat-log').addEventListener('scroll', () => {
  const log = $('chat-log');
  state.chat.stickToBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 32;
});
$('toggle-chat').addEventListener('click', () => {
  chatOpen = $('chat').hidden;
  updateChatPanel();
  if (chatOpen) $('chat-input').focus();
});

/** The chat as the tests (and the console) see it, in display order. */
export function chatMessages() {
  return state.chat.order.map((m) => {
    const reactions = {};
    for (const { key } of m.reactions.values()) reactions[key] = (reactions[key] || 0) + 1;
    return {
      id: m.id,
      name: m.name,
      sender: m.sender,
      body: m.body,
      pending: m.pending,
      edited: m.edited,
      deleted: m.deleted,
      replyTo: m.replyTo,
      reactions,
    };
  });
}
