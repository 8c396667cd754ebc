// The research face, composed: C-FIND (research-find.ts) and C-GET / C-MOVE (research-retrieve.ts), each
// served through the caller's de-identified view (view-client.ts).
import { findOnView } from './research-find.ts';
import type { ResearchFace, ResearchFaceOptions } from './research-face.ts';
import { getFromView, moveFromView } from './research-retrieve.ts';

export function createResearchFace(options: ResearchFaceOptions): ResearchFace {
  return {
    find: (op) => findOnView(op, options),
    get: (op, channel) => getFromView(op, channel, options),
    move: (op) => moveFromView(op, options),
  };
}
