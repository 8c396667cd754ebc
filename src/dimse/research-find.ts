// PLACEHOLDER (issue 19 part 2, C-FIND): replaced by the C-FIND track.
import type dimse from 'dcmjs-dimse';
import type { Operation, ResearchFaceOptions } from './research-face.ts';

export async function findOnView(_op: Operation<InstanceType<typeof dimse.requests.CFindRequest>>, _options: ResearchFaceOptions): Promise<void> {
  throw new Error('C-FIND is not built yet');
}
