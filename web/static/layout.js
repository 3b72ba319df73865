// The grid's layout: every tile 16:9, as large as the space allows for
// the number of tiles (1–50), our own camera small in a corner once
// others are there, and scrolling when tiles would get too small.
// Recomputed when tiles come and go and when the window changes.

import { $ } from './state.js';

/** Narrowest a tile gets before the grid scrolls instead. */
const MIN_TILE = 160;
const RATIO = 9 / 16;

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

export function layoutGrid() {
  const grid = $('grid');
  const tiles = [...grid.querySelectorAll('.tile')];
  const others = tiles.filter((el) => !el.classList.contains('self'));
  // Alone, we see ourselves large; with others, in the corner.
  grid.classList.toggle('with-others', others.length > 0);
  const n = others.length || tiles.length;
  const gap = parseFloat(getComputedStyle(grid).columnGap) || 0;
  const { cols, tile } = fit(n, grid.clientWidth, grid.clientHeight, gap);
  grid.style.setProperty('--cols', String(cols));
  grid.style.setProperty('--tile', `${tile}px`);
}

new ResizeObserver(layoutGrid).observe($('grid'));
new MutationObserver(layoutGrid).observe($('grid'), { childList: true });
