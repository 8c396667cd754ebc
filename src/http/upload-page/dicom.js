// A small DICOM Part 10 reader for the upload page's review (issue 18 part 2): the top-level attributes
// the preview needs (PS3.3 C.7.6.3 Image Pixel Module, Number of Frames, the series and instance UIDs)
// and where each frame's bytes are (PS3.5 A.4 for encapsulated Pixel Data). Frames are decoded here, in
// the browser: native pixels in plain JS, JPEG Baseline by the browser's own decoder. Nothing is sent.
'use strict';
(function () {
  const IMPLICIT_LE = '1.2.840.10008.1.2';
  const EXPLICIT_BE = '1.2.840.10008.1.2.2';
  const DEFLATED = '1.2.840.10008.1.2.1.99';
  const JPEG_BASELINE = '1.2.840.10008.1.2.4.50';
  const PIXEL_DATA = 0x7fe00010;
  const LONG_VRS = { OB: 1, OD: 1, OF: 1, OL: 1, OV: 1, OW: 1, SQ: 1, UC: 1, UN: 1, UR: 1, UT: 1, SV: 1, UV: 1 };
  const WANTED = new Map([
    [0x00080018, 'SOPInstanceUID'], [0x00080060, 'Modality'], [0x0020000e, 'SeriesInstanceUID'],
    [0x00280002, 'SamplesPerPixel'], [0x00280004, 'PhotometricInterpretation'], [0x00280006, 'PlanarConfiguration'],
    [0x00280008, 'NumberOfFrames'], [0x00280010, 'Rows'], [0x00280011, 'Columns'], [0x00280100, 'BitsAllocated'],
    [0x00280101, 'BitsStored'], [0x00280103, 'PixelRepresentation']
  ]);
  const NUMBERS = { SamplesPerPixel: 1, PlanarConfiguration: 1, Rows: 1, Columns: 1, BitsAllocated: 1, BitsStored: 1, PixelRepresentation: 1 };

  function fail(message) { throw new Error(message); }

  function text(u8, start, length) {
    let s = '';
    for (let i = 0; i < length; i++) s += String.fromCharCode(u8[start + i]);
    return s.replace(/[\0 ]+$/, '').trim();
  }

  /** Parses a Part 10 file (an ArrayBuffer). Throws an Error with a plain message on anything it cannot read. */
  function parse(buffer) {
    const u8 = new Uint8Array(buffer);
    const dv = new DataView(buffer);
    const end = buffer.byteLength;
    if (end < 132 || text(u8, 128, 4) !== 'DICM') fail('not a DICOM Part 10 file (no DICM preamble)');
    let pos = 132;
    let ts = IMPLICIT_LE;
    // PS3.10 7.1: the File Meta Information is Explicit VR Little Endian.
    while (pos + 8 <= end && dv.getUint16(pos, true) === 0x0002) {
      const meta = element(pos, true, true);
      if (meta.tag === 0x00020010) ts = text(u8, meta.value, meta.length);
      pos = meta.value + meta.length;
    }
    if (ts === DEFLATED) fail('the file is deflated: no preview for this encoding');
    const explicit = ts !== IMPLICIT_LE;
    const le = ts !== EXPLICIT_BE;
    const out = { transferSyntax: ts, attributes: {}, pixel: null };

    function element(p, isExplicit, isLe) {
      if (p + 8 > end) fail('the file ends inside an element header');
      const tag = ((dv.getUint16(p, isLe) << 16) | dv.getUint16(p + 2, isLe)) >>> 0;
      let vr;
      let length;
      let value;
      if ((tag >>> 16) === 0xfffe) return { tag: tag, vr: '', length: dv.getUint32(p + 4, isLe), value: p + 8 };
      if (isExplicit) {
        vr = String.fromCharCode(u8[p + 4], u8[p + 5]);
        if (LONG_VRS[vr]) {
          if (p + 12 > end) fail('the file ends inside an element header');
          length = dv.getUint32(p + 8, isLe);
          value = p + 12;
        } else {
          length = dv.getUint16(p + 6, isLe);
          value = p + 8;
        }
      } else {
        length = dv.getUint32(p + 4, isLe);
        value = p + 8;
        vr = length === 0xffffffff ? 'SQ' : 'UN';
      }
      return { tag: tag, vr: vr, length: length, value: value };
    }

    // Skips an undefined-length sequence (or item) from `p`; returns the position after its delimiter.
    function skipUndefined(p, delimiter) {
      while (p + 8 <= end) {
        const el = element(p, explicit, le);
        if (el.tag === delimiter) return el.value;
        if (el.length === 0xffffffff) p = skipUndefined(el.value, el.tag === 0xfffee000 ? 0xfffee00d : 0xfffee0dd);
        else p = el.value + el.length;
      }
      return fail('the file ends inside a sequence');
    }

    while (pos < end) {
      const el = element(pos, explicit, le);
      if (el.tag === PIXEL_DATA) {
        out.pixel = el.length === 0xffffffff ? { fragments: fragments(el.value) } : { offset: el.value, length: Math.min(el.length, end - el.value) };
        break;
      }
      if (el.length === 0xffffffff) {
        pos = skipUndefined(el.value, 0xfffee0dd);
        continue;
      }
      if (el.value + el.length > end) fail('the file ends inside an element');
      const name = WANTED.get(el.tag);
      if (name) {
        if (NUMBERS[name] && el.length >= 2) out.attributes[name] = dv.getUint16(el.value, le);
        else out.attributes[name] = text(u8, el.value, el.length);
      }
      pos = el.value + el.length;
    }

    // PS3.5 A.4: the Basic Offset Table item, then one item per fragment, then the Sequence Delimiter.
    function fragments(p) {
      const list = [];
      let table = null;
      while (p + 8 <= end) {
        const tag = ((dv.getUint16(p, true) << 16) | dv.getUint16(p + 2, true)) >>> 0;
        const length = dv.getUint32(p + 4, true);
        if (tag === 0xfffee0dd) return { table: table, items: list };
        if (tag !== 0xfffee000 || p + 8 + length > end) fail('the encapsulated Pixel Data is malformed');
        if (table === null) {
          table = [];
          for (let i = 0; i + 4 <= length; i += 4) table.push(dv.getUint32(p + 8 + i, true));
        } else list.push({ start: p, offset: p + 8, length: length });
        p += 8 + length;
      }
      return fail('the encapsulated Pixel Data ends without its delimiter');
    }

    const a = out.attributes;
    a.NumberOfFrames = parseInt(a.NumberOfFrames || '1', 10) || 1;
    out.u8 = u8;
    out.dv = dv;
    out.littleEndian = le;
    return out;
  }

  /** The encoded bytes of frame `k` of encapsulated Pixel Data (PS3.5 A.4), or null when the frames cannot be told apart. */
  function encodedFrame(parsed, k) {
    const f = parsed.pixel.fragments;
    const frames = parsed.attributes.NumberOfFrames;
    let groups = [];
    let i;
    if (frames === 1) groups = [f.items];
    else if (f.table && f.table.length === frames && f.items.length > 0) {
      const first = f.items[0].start;
      for (i = 0; i < frames; i++) groups.push([]);
      let at = 0;
      f.items.forEach(function (item) {
        while (at + 1 < frames && item.start - first >= f.table[at + 1]) at++;
        groups[at].push(item);
      });
    } else if (f.items.length === frames) groups = f.items.map(function (item) { return [item]; });
    else {
      // JPEG: a frame starts at a fragment beginning with SOI (FFD8).
      f.items.forEach(function (item) {
        if (parsed.u8[item.offset] === 0xff && parsed.u8[item.offset + 1] === 0xd8) groups.push([item]);
        else if (groups.length > 0) groups[groups.length - 1].push(item);
      });
      if (groups.length !== frames) return null;
    }
    const group = groups[k];
    if (!group) return null;
    const total = group.reduce(function (n, item) { return n + item.length; }, 0);
    const bytes = new Uint8Array(total);
    let pos = 0;
    group.forEach(function (item) {
      bytes.set(parsed.u8.subarray(item.offset, item.offset + item.length), pos);
      pos += item.length;
    });
    return bytes;
  }

  function clamp(v) { return Math.min(255, Math.max(0, v)); }

  /** Native frame `k` as RGBA ImageData (a min–max window for grey), or a string saying why not. */
  function nativeImage(parsed, k) {
    const a = parsed.attributes;
    const rows = a.Rows;
    const cols = a.Columns;
    const spp = a.SamplesPerPixel || 1;
    const bits = a.BitsAllocated;
    const pi = (a.PhotometricInterpretation || '').trim();
    if (bits !== 8 && bits !== 16) return 'no preview for ' + bits + '-bit pixels';
    const n = rows * cols;
    const bytes = bits / 8;
    const frameSize = n * spp * bytes;
    const start = parsed.pixel.offset + k * frameSize;
    if (start + frameSize > parsed.pixel.offset + parsed.pixel.length) return 'the file ends before this frame';
    const dv = parsed.dv;
    const le = parsed.littleEndian;
    const stored = a.BitsStored || bits;
    const mask = stored >= 16 ? 0xffff : (1 << stored) - 1;
    const signBit = a.PixelRepresentation === 1 ? 1 << (stored - 1) : 0;
    function sample(index) {
      let v = bits === 8 ? parsed.u8[start + index] : dv.getUint16(start + index * 2, le);
      v &= mask;
      if (signBit && (v & signBit)) v -= mask + 1;
      return v;
    }
    const image = new ImageData(cols, rows);
    const px = image.data;
    let i;
    if (spp === 1) {
      if (pi !== 'MONOCHROME1' && pi !== 'MONOCHROME2') return 'no preview for ' + (pi || 'this photometric interpretation');
      let min = Infinity;
      let max = -Infinity;
      const values = new Float64Array(n);
      for (i = 0; i < n; i++) {
        values[i] = sample(i);
        if (values[i] < min) min = values[i];
        if (values[i] > max) max = values[i];
      }
      const scale = max > min ? 255 / (max - min) : 0;
      for (i = 0; i < n; i++) {
        let g = Math.round((values[i] - min) * scale);
        if (pi === 'MONOCHROME1') g = 255 - g;
        px[i * 4] = px[i * 4 + 1] = px[i * 4 + 2] = g;
        px[i * 4 + 3] = 255;
      }
      return image;
    }
    if (spp !== 3 || (pi !== 'RGB' && pi !== 'YBR_FULL')) return 'no preview for ' + (pi || 'this photometric interpretation');
    const planar = a.PlanarConfiguration === 1;
    const shift = bits === 16 ? 8 : 0;
    for (i = 0; i < n; i++) {
      let c0 = sample(planar ? i : i * 3) >> shift;
      let c1 = sample(planar ? n + i : i * 3 + 1) >> shift;
      let c2 = sample(planar ? 2 * n + i : i * 3 + 2) >> shift;
      if (pi === 'YBR_FULL') {
        // PS3.3 C.7.6.3.1.2: YBR_FULL is ITU-R BT.601 full-range YCbCr.
        const y = c0;
        const cb = c1 - 128;
        const cr = c2 - 128;
        c0 = clamp(Math.round(y + 1.402 * cr));
        c1 = clamp(Math.round(y - 0.344136 * cb - 0.714136 * cr));
        c2 = clamp(Math.round(y + 1.772 * cb));
      }
      px[i * 4] = c0;
      px[i * 4 + 1] = c1;
      px[i * 4 + 2] = c2;
      px[i * 4 + 3] = 255;
    }
    return image;
  }

  /**
   * Frame `k` (0-based) as ImageData, resolved; or a string saying why there is no preview (rectangles
   * can still be typed in).
   */
  function frameImage(parsed, k) {
    const a = parsed.attributes;
    if (!parsed.pixel) return Promise.resolve('no pixel data');
    if (!a.Rows || !a.Columns) return Promise.resolve('no Rows or Columns');
    if (k < 0 || k >= a.NumberOfFrames) return Promise.resolve('no such frame');
    if (!parsed.pixel.fragments) return Promise.resolve(nativeImage(parsed, k));
    if (parsed.transferSyntax !== JPEG_BASELINE) return Promise.resolve('no preview for this encoding');
    const bytes = encodedFrame(parsed, k);
    if (!bytes) return Promise.resolve('no preview: the frames cannot be told apart');
    return createImageBitmap(new Blob([bytes], { type: 'image/jpeg' })).then(function (bitmap) {
      const canvas = document.createElement('canvas');
      canvas.width = a.Columns;
      canvas.height = a.Rows;
      const ctx = canvas.getContext('2d');
      ctx.drawImage(bitmap, 0, 0);
      return ctx.getImageData(0, 0, a.Columns, a.Rows);
    }, function () {
      return 'the browser could not decode this JPEG frame';
    });
  }

  window.DeidDicom = { parse: parse, frameImage: frameImage };
})();
