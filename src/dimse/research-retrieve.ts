// PLACEHOLDER (issue 19 part 2, C-GET and C-MOVE): replaced by the retrieve track.
import type dimse from 'dcmjs-dimse';
import type { GetChannel, Operation, ResearchFaceOptions } from './research-face.ts';

export async function getFromView(_op: Operation<InstanceType<typeof dimse.requests.CGetRequest>>, _channel: GetChannel, _options: ResearchFaceOptions): Promise<void> {
  throw new Error('C-GET is not built yet');
}

export async function moveFromView(_op: Operation<InstanceType<typeof dimse.requests.CMoveRequest>>, _options: ResearchFaceOptions): Promise<void> {
  throw new Error('C-MOVE is not built yet');
}
