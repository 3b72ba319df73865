// Signing in with a Matrix identity. Inside Element the page is a widget and
// asks Element for an OpenID token (widget.js); elsewhere a token may come
// in the URL fragment as #openid=<base64url JSON>. Either is traded for a
// meeting token at POST /api/token, which the join then carries. Owns the
// pre-join screen's identity line, its error and the "join as a guest"
// button.

import { errorText, t } from './i18n.js';
import { $, params, room, state } from './state.js';
import { savedName, updateJoinButton } from './prejoin.js';
import { startWidgetApi } from './widget.js';

/**
 * Starts the sign-in the page was opened for, if any. Call it before
 * anything else awaits, so that no message from Element is missed. Returns
 * a promise that settles once the sign-in has an outcome.
 */
export function startIdentity() {
  const displayName = matrixParam('displayName');
  if (displayName) $('name').value = displayName.slice(0, 64);
  const fromFragment = openidFromFragment();
  if (fromFragment) return exchangeOpenId(fromFragment);
  if (fromFragment === false) return Promise.resolve();
  const widget = startWidgetApi({ exchange: exchangeOpenId, failed: identityFailed, pending: setIdentityPending });
  if (widget) return widget;
  return Promise.resolve();
}

/** A URL parameter Element fills in; an unreplaced "$matrix_…" placeholder means none. */
function matrixParam(name) {
  const value = params.get(name);
  return value && !value.startsWith('$') ? value : null;
}

/** The OpenID token in "#openid=<base64url of its JSON>": the token, null
 * without one, false for one that cannot be read. */
function openidFromFragment() {
  const m = location.hash.match(/(?:^#|&)openid=([^&]*)/);
  if (!m) return null;
  // Do not leave the token in the address bar or the history.
  history.replaceState(history.state, '', location.pathname + location.search);
  try {
    const b64 = m[1].replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
    const token = JSON.parse(new TextDecoder().decode(bytes));
    if (!token || typeof token.access_token !== 'string') throw new Error('no access_token');
    return token;
  } catch {
    identityFailed('the sign-in link is damaged');
    return false;
  }
}

function setIdentityPending(pending, text = '') {
  state.identityPending = pending;
  if (pending) state.identityFailed = false;
  $('identity').textContent = text;
  updateJoinButton();
}

function identityFailed(why) {
  state.identity = null;
  state.identityFailed = true;
  setIdentityPending(false);
  $('identity-error').textContent = t('identity.failed', { why });
}

/** Trades a Matrix OpenID token for a meeting token. */
async function exchangeOpenId(openidToken) {
  setIdentityPending(true, t('identity.signingIn'));
  $('identity-error').textContent = '';
  let res;
  let body = null;
  try {
    res = await fetch('/api/token', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        room,
        openid_token: {
          access_token: openidToken.access_token,
          token_type: openidToken.token_type || 'Bearer',
          matrix_server_name: openidToken.matrix_server_name,
          expires_in: openidToken.expires_in,
        },
      }),
    });
    body = await res.json().catch(() => null);
  } catch {
    identityFailed(t('identity.unreachable'));
    return;
  }
  if (!res.ok || !body || typeof body.token !== 'string') {
    identityFailed(body && body.message ? errorText(body.error, body.message) : t('identity.answered', { status: res.status }));
    return;
  }
  state.identity = { token: body.token, user_id: body.user_id, name: body.name, host: !!body.host };
  if (body.name) $('name').value = body.name.slice(0, 64);
  $('name').readOnly = true;
  $('guest-button').hidden = false;
  setIdentityPending(false, t('identity.signedIn', { user: body.user_id }));
}

export function joinAsGuest() {
  state.identity = null;
  $('name').readOnly = false;
  $('name').value = savedName() || '';
  $('guest-button').hidden = true;
  $('identity').textContent = '';
  $('name').focus();
}

/** The server refused our meeting token (expired, or for another meeting):
 * back to the pre-join screen, where one can join as a guest. */
export function signInRefused(why) {
  $('left').hidden = true;
  $('prejoin').hidden = false;
  $('name').readOnly = false;
  $('guest-button').hidden = true;
  $('identity').textContent = '';
  identityFailed(why);
}
