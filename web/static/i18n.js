// The page's languages: Swedish and English, one catalogue each
// (lang-sv.js, lang-en.js). The language is the user's choice if they made
// one (the switch, remembered), else the first of the browser's languages
// we have, else English. Static text in meeting.html names its key in
// data-i18n (text), data-i18n-label (aria-label) or data-i18n-placeholder;
// modules call t(key, params) and redraw what they drew on a change.

import en from './lang-en.js';
import sv from './lang-sv.js';

export const catalogues = { en, sv };
const STORE = 'meet.lang';
const listeners = [];

/** The language for `preferred` (the browser's list) and a remembered choice. */
export function pickLanguage(preferred, stored) {
  if (stored && stored in catalogues) return stored;
  for (const tag of preferred || []) {
    const base = String(tag).toLowerCase().split('-')[0];
    if (base in catalogues) return base;
  }
  return 'en';
}

function stored() {
  try {
    return localStorage.getItem(STORE);
  } catch {
    return null;
  }
}

// (Outside a browser, as in the catalogue tests: English.)
export let lang = pickLanguage(globalThis.navigator?.languages, stored());

/** The string for `key` in the page's language, `{name}`s filled from `params`. */
export function t(key, params = {}) {
  const s = catalogues[lang][key] ?? catalogues.en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => (k in params ? String(params[k]) : `{${k}}`));
}

/** What the user is told for a server error: our words for its code, where
 * this language has them, else the server's own. */
export function errorText(code, message) {
  return catalogues[lang][`error.${code}`] ?? message;
}

/** Calls `fn` after each change of language (to redraw what it drew). */
export function onLanguageChange(fn) {
  listeners.push(fn);
}

/** Puts the catalogue's text into the page's marked elements. */
export function translatePage(root = document) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-label]')) el.setAttribute('aria-label', t(el.dataset.i18nLabel));
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
}

export function setLanguage(next) {
  if (!(next in catalogues) || next === lang) return;
  lang = next;
  try {
    localStorage.setItem(STORE, next);
  } catch {
    // Not remembered, still switched.
  }
  translatePage();
  for (const fn of listeners) fn();
}
