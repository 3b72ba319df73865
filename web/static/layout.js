// How the tiles are laid out, recomputed when tiles come and go, when the
// window changes and when the active speaker does. The grid: every tile
// 16:9, as large as the space allows for the number of tiles (1–50),
// scrolling when tiles would get too small. The speaker layout (a toggle
// in the controls, remembered): the active speaker large, the others
// small below. In both, our own camera sits small in a corner once
// others are there.

import { $, state } from './state.js';

/** Narrowest a tile gets before the grid scrolls instead; the speaker
 * layout's small tiles are this wide. */
const MIN_TILE = 160;
const RATIO = 9 / 16;
const STORE = 'meet.layout';
/** Where the page scrolls instead of the grid (style.css's narrow screens). */
const PAGE_SCROLLS = matchMedia('(max-width: 720px)');

/** Columns and tile width for `n` tiles in `width` × `height` with `gap`. */
export function fit(n, width, height, gap) {
  let best = { cols: 1, tile: 0 };
  for (let cols = 1; cols <= Math.max(1, n); cols += 1) {
    const rows = Math.ceil(n / cols);
    const byWidth = (width - (cols - 1) * gap) / cols;
    const byHeight = (height - (rows - 1) * gap) / rows / RATIO;
    const tile = Math.min(byWidth, byHeight);
    if (tile > best.tile) best = { cols, tile };
  }
  if (best.tile < MIN_TILE) {
    const cols = Math.max(1, Math.floor((width + gap) / (MIN_TILE + gap)));
    best = { cols, tile: (width - (cols - 1) * gap) / cols };
  }
  return { cols: best.cols, tile: Math.floor(best.tile) };
}

/** The tile the speaker layout shows large: the active speaker's camera,
 * else the one shown so far, else a screen share, else the first. */
function mainTile(others) {
  const cameras = others.filter((el) => !el.classList.contains('screen'));
  return cameras.find((el) => el.dataset.participantId === state.activeSpeaker)
    || others.find((el) => el.classList.contains('main'))
    || others.find((el) => el.classList.contains('screen'))
    || others[0];
}

/** Sizes for the speaker layout: a row of small tiles below the large
 * one, which takes the rest of the height and no more than the row's width. */
function speakerSizes(width, height, gap) {
  const cols = Math.max(1, Math.floor((width + gap) / (MIN_TILE + gap)));
  const span = cols * MIN_TILE + (cols - 1) * gap;
  const byHeight = (height - MIN_TILE * RATIO - gap) / RATIO;
  const main = Math.floor(Math.max(MIN_TILE, Math.min(span, byHeight)));
  return { cols, main };
}

export function layoutGrid() {
  const grid = $('grid');
  const tiles = [...grid.querySelectorAll('.tile')];
  const others = tiles.filter((el) => !el.classList.contains('self'));
  // Alone, we see ourselves large; with others, in the corner.
  grid.classList.toggle('with-others', others.length > 0);
  const speaker = state.layout === 'speaker' && others.length > 1;
  grid.classList.toggle('speaker-layout', speaker);
  const main = speaker ? mainTile(others) : null;
  for (const el of tiles) el.classList.toggle('main', el === main);
  const gap = parseFloat(getComputedStyle(grid).columnGap) || 0;
  if (speaker) {
    // As for the grid below: a narrow screen's grid height follows its
    // tiles, so the window's is the bound there.
    const bound = PAGE_SCROLLS.matches ? innerHeight : grid.clientHeight;
    const { cols, main: w } = speakerSizes(grid.clientWidth, bound, gap);
    grid.style.setProperty('--cols', String(cols));
    grid.style.setProperty('--tile', `${MIN_TILE}px`);
    grid.style.setProperty('--main-w', `${w}px`);
    grid.style.setProperty('--main-h', `${Math.floor(w * RATIO)}px`);
    return;
  }
  const n = others.length || tiles.length;
  // On a narrow screen the page scrolls, and the grid is as tall as its
  // tiles: its height is no bound (measured, it would keep whatever size
  // the tiles had when the last one came), the width is.
  const height = PAGE_SCROLLS.matches ? Infinity : grid.clientHeight;
  const { cols, tile } = fit(n, grid.clientWidth, height, gap);
  grid.style.setProperty('--cols', String(cols));
  grid.style.setProperty('--tile', `${tile}px`);
}

function showLayoutControl() {
  $('speaker-layout').setAttribute('aria-pressed', String(state.layout === 'speaker'));
}

/** The controls' toggle between the grid and the speaker layout. */
function toggleLayout() {
  state.layout = state.layout === 'speaker' ? 'grid' : 'speaker';
  try {
    localStorage.setItem(STORE, state.layout);
  } catch {
    // Storage refused (a private window): the choice lasts this page.
  }
  showLayoutControl();
  layoutGrid();
}

try {
  if (localStorage.getItem(STORE) === 'speaker') state.layout = 'speaker';
} catch {
  // As above: the grid, then.
}
showLayoutControl();
$('speaker-layout').addEventListener('click', toggleLayout);
new ResizeObserver(layoutGrid).observe($('grid'));
new MutationObserver(layoutGrid).observe($('grid'), { childList: true });
