// The widget side of the Matrix widget API (MSC2762, OpenID as in MSC1960)
// over postMessage, as far as the meeting needs it inside Element: answer
// the client's requests (we ask for no capabilities) and ask it for an
// OpenID token. What to do with the token is identity.js's business.

import { t } from './i18n.js';
import { params, state } from './state.js';

/**
 * The origin of `url` as its browser writes it, or null: an http(s)
 * origin, or that of a desktop client's own scheme (Element Desktop runs
 * at vector://vector), which the URL standard leaves opaque ("null") but
 * the client registers as a standard scheme, so its messages carry it.
 */
export function originOf(url) {
  let u;
  try {
    u = new URL(url);
  } catch {
    return null;
  }
  // Chromium writes a file: URL's origin "file://", not "null": no parent.
  if (u.protocol === 'file:') return null;
  if (u.origin && u.origin !== 'null') return u.origin;
  if (!/^[a-z][a-z0-9+.-]*:$/.test(u.protocol) || !u.host) return null;
  return `${u.protocol}//${u.host}`;
}

/**
 * Starts talking to Element if this page is its widget. `signIn` is what
 * to do with the outcome: exchange(token) (returns a promise), failed(why),
 * pending(isPending, text). Returns null when this page is no widget, else
 * a promise that settles once the sign-in has an outcome.
 */
export function startWidgetApi(signIn) {
  const widgetId = params.get('widgetId');
  const parentUrl = params.get('parentUrl');
  if (!widgetId || !parentUrl || window.parent === window) return null;
  const parentOrigin = originOf(parentUrl);
  if (!parentOrigin) return null;
  // The link names the parent, but anyone can make a link: only the Matrix
  // clients the deployment trusts get to hand us an identity.
  const trusted = (document.querySelector('meta[name="meet-widget-origins"]')?.content || '').split(' ');
  if (!trusted.includes(parentOrigin)) {
    console.warn(`not a widget: ${parentOrigin} is not a configured widget origin`);
    return null;
  }

  const post = (msg) => window.parent.postMessage(msg, parentOrigin);
  const waiting = new Map(); // our request id -> resolve
  let counter = 0;
  const request = (action, data = {}) => {
    const requestId = `meet-${Date.now()}-${++counter}`;
    post({ api: 'fromWidget', widgetId, requestId, action, data });
    return { requestId, response: new Promise((resolve) => waiting.set(requestId, resolve)) };
  };

  let openidRequestId = null;
  let settle;
  const done = new Promise((resolve) => { settle = resolve; });
  const credentials = (c) => {
    if (c && c.state === 'allowed' && c.access_token) {
      signIn.exchange(c).then(settle);
    } else if (c && c.state === 'blocked') {
      signIn.failed(t('identity.elementRefused'));
      settle();
    } else {
      signIn.failed(c && c.error && c.error.message ? c.error.message : t('identity.elementNoToken'));
      settle();
    }
  };

  let asked = false;
  const askOpenId = () => {
    if (asked) return;
    asked = true;
    signIn.pending(true, t('identity.elementAsking'));
    const { requestId, response } = request('get_openid');
    openidRequestId = requestId;
    const timer = setTimeout(() => {
      if (!waiting.delete(requestId)) return;
      signIn.failed(t('identity.elementSilent'));
      settle();
    }, 15000);
    response.then((r) => {
      clearTimeout(timer);
      if (r && r.state === 'request') {
        // Element asks the user; the answer comes as openid_credentials.
        signIn.pending(false, t('identity.elementConfirm'));
        settle();
      } else {
        credentials(r);
      }
    });
  };

  window.addEventListener('message', (ev) => {
    if (ev.origin !== parentOrigin || ev.source !== window.parent) return;
    const msg = ev.data;
    if (!msg || typeof msg !== 'object' || typeof msg.requestId !== 'string' || msg.widgetId !== widgetId) return;
    if (msg.api === 'fromWidget') {
      // The answer to one of our requests.
      const resolve = waiting.get(msg.requestId);
      if (resolve && msg.response !== undefined) {
        waiting.delete(msg.requestId);
        resolve(msg.response);
      }
      return;
    }
    if (msg.api !== 'toWidget' || msg.response !== undefined) return;
    let response = {};
    if (msg.action === 'capabilities') {
      response = { capabilities: [] };
    } else if (msg.action === 'supported_api_versions') {
      response = { supported_versions: ['0.0.1', '0.0.2'] };
    }
    post({ ...msg, response });
    if (msg.action === 'capabilities') {
      // Capabilities settled: now Element will hear us.
      setTimeout(askOpenId, 0);
    } else if (msg.action === 'openid_credentials' && msg.data && msg.data.original_request_id === openidRequestId) {
      if (!state.signalling) credentials(msg.data);
    }
  });

  // An Element that waits for the widget to say it is loaded (a widget with
  // waitForIframeLoad false) asks for capabilities only after this.
  setTimeout(() => {
    if (!asked) request('content_loaded');
  }, 2000);
  // A parent that never asks for capabilities: ask anyway.
  setTimeout(askOpenId, 5000);
  return done;
}
