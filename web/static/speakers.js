// Who speaks, as the server says (`speakers`, from the audio level in
// every packet each publisher sends): the "speaking" frame on their tiles
// and in the participant list, and the active speaker, whom the speaker
// layout shows large (layout.js).

import { state } from './state.js';
import { showPeople } from './people.js';
import { layoutGrid } from './layout.js';

/** `speakers`: who speaks now, and the active speaker. */
export function onSpeakers({ active, speaking }) {
  const now = new Set(speaking || []);
  state.speaking = [...now];
  for (const [pid, p] of state.participants) {
    const on = now.has(pid);
    if (on === !!p.speaking) continue;
    p.speaking = on;
    p.tile?.classList.toggle('speaking', on);
  }
  document.querySelector('#grid .tile.self')?.classList.toggle('speaking', now.has(state.participantId));
  const moved = (active ?? null) !== state.activeSpeaker;
  state.activeSpeaker = active ?? null;
  // Only the speaker layout depends on who speaks; the grid is laid out
  // when tiles or the window change, and only then (on a phone its size
  // follows the page's, which follows the tiles').
  if (moved && state.layout === 'speaker') layoutGrid();
  showPeople();
}

/** After leaving: nobody speaks in the next meeting until told so. */
export function resetSpeakers() {
  state.speaking = [];
  state.activeSpeaker = null;
}
