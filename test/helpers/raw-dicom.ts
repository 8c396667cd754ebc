// A Part 10 file written byte by byte (Explicit VR Little Endian), for tests that need what no good
// encoder writes: a VR the dictionary does not give, a length longer than the VM allows, an identifier
// that is a path. Elements are sorted by tag; values are padded to even length.

const LONG_HEADER = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'UC', 'UN', 'UR', 'UT']);

/** [group, element, VR, value] */
export type RawElement = readonly [number, number, string, string | Buffer];

function element([group, elementNumber, vr, value]: RawElement): Buffer {
  let bytes = Buffer.isBuffer(value) ? value : Buffer.from(value, 'latin1');
  if (bytes.length % 2) bytes = Buffer.concat([bytes, Buffer.from([vr === 'UI' || vr === 'OB' ? 0 : 0x20])]);
  const head = Buffer.alloc(LONG_HEADER.has(vr) ? 12 : 8);
  head.writeUInt16LE(group, 0);
  head.writeUInt16LE(elementNumber, 2);
  head.write(vr, 4, 'latin1');
  if (LONG_HEADER.has(vr)) head.writeUInt32LE(bytes.length, 8);
  else head.writeUInt16LE(bytes.length, 6);
  return Buffer.concat([head, bytes]);
}

/** A Secondary Capture instance with the given identifiers and patient, plus `extra` elements. */
export function rawInstance(ids: { study: string; series: string; instance: string; patientId?: string }, extra: readonly RawElement[] = []): Buffer {
  const sopClass = '1.2.840.10008.5.1.4.1.1.7';
  const metaBody = Buffer.concat(
    ([
      [2, 1, 'OB', Buffer.from([0, 1])],
      [2, 2, 'UI', sopClass],
      [2, 3, 'UI', ids.instance],
      [2, 0x10, 'UI', '1.2.840.10008.1.2.1'],
      [2, 0x12, 'UI', '1.2.3.4'],
    ] as RawElement[]).map(element),
  );
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(metaBody.length);
  const dataset = ([
    [8, 0x16, 'UI', sopClass],
    [8, 0x18, 'UI', ids.instance],
    [8, 0x20, 'DA', '20200101'],
    [8, 0x60, 'CS', 'OT'],
    [0x10, 0x10, 'PN', 'CANARY^SECRET'],
    [0x10, 0x20, 'LO', ids.patientId ?? 'CANARYPID'],
    [0x10, 0x30, 'DA', '19700101'],
    [0x20, 0x0d, 'UI', ids.study],
    [0x20, 0x0e, 'UI', ids.series],
    ...extra,
  ] as RawElement[])
    .slice()
    .sort((a, b) => a[0] - b[0] || a[1] - b[1])
    .map(element);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), element([2, 0, 'UL', groupLength]), metaBody, ...dataset]);
}
