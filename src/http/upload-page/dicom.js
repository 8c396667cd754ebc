// A small DICOM Part 10 reader for the upload page's review (issue 18 part 2): the top-level attributes
// the preview needs (PS3.3 C.7.6.3 Image Pixel Module, Number of Frames, the series and instance UIDs)
// and where each frame's bytes are (PS3.5 A.4 for encapsulated Pixel Data). Frames are decoded here, in
// the browser, and nothing is sent: native pixels and RLE Lossless in plain JS; JPEG Baseline (and 8-bit
// JPEG Extended) by the browser's own decoder; JPEG-LS, JPEG 2000 and HTJ2K by the WebAssembly codecs
// OHIF uses (CharLS, OpenJPEG, OpenJPH) and lossless JPEG by its pure-JS decoder, each loaded from
// upload/codecs/ the first time a file needs it. Every decoder's samples go through one renderer.
'use strict';
(function () {
  const IMPLICIT_LE = '1.2.840.10008.1.2';
  const EXPLICIT_BE = '1.2.840.10008.1.2.2';
  const DEFLATED = '1.2.840.10008.1.2.1.99';
  const JPEG_BASELINE = '1.2.840.10008.1.2.4.50';
  const JPEG_EXTENDED = '1.2.840.10008.1.2.4.51';
  const RLE_LOSSLESS = '1.2.840.10008.1.2.5';
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

  /**
   * Unsigned stored values as RGBA ImageData: the one rendering path for every decoder, so a rectangle
   * drawn on any preview covers the same pixels. `raw` (Uint8Array or Uint16Array) holds SamplesPerPixel
   * values per pixel, interleaved, or planar when `planar`. Grey gets a min–max window (MONOCHROME1
   * inverted); colour is RGB, or YBR_FULL turned into RGB. `colour` overrides the Photometric
   * Interpretation when the decoder has already turned the samples into RGB (JPEG 2000's YBR_ICT/RCT).
   * Returns a string saying why not when the layout has no preview.
   */
  function render(a, raw, planar, colour) {
    const rows = a.Rows;
    const cols = a.Columns;
    const spp = a.SamplesPerPixel || 1;
    const n = rows * cols;
    const pi = colour || (a.PhotometricInterpretation || '').trim();
    if (raw.length < n * spp) return 'the decoded frame is shorter than Rows × Columns';
    const bits = raw.BYTES_PER_ELEMENT * 8;
    const stored = Math.min(a.BitsStored || bits, bits);
    const mask = stored >= 16 ? 0xffff : (1 << stored) - 1;
    const signBit = a.PixelRepresentation === 1 ? 1 << (stored - 1) : 0;
    function sample(index) {
      let v = raw[index] & mask;
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
    const shift = stored > 8 ? stored - 8 : 0;
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

  /** The stored values of native frame `k` (PS3.5 8.1), or a string saying why not. */
  function nativeSamples(parsed, k) {
    const a = parsed.attributes;
    const spp = a.SamplesPerPixel || 1;
    const bits = a.BitsAllocated;
    if (bits !== 8 && bits !== 16) return 'no preview for ' + bits + '-bit pixels';
    const count = a.Rows * a.Columns * spp;
    const frameSize = count * (bits / 8);
    const start = parsed.pixel.offset + k * frameSize;
    if (start + frameSize > parsed.pixel.offset + parsed.pixel.length) return 'the file ends before this frame';
    if (bits === 8) return parsed.u8.subarray(start, start + count);
    const raw = new Uint16Array(count);
    for (let i = 0; i < count; i++) raw[i] = parsed.dv.getUint16(start + i * 2, parsed.littleEndian);
    return raw;
  }

  /**
   * PS3.5 Annex G: one RLE Lossless frame to its stored values, interleaved.
   * 1. The header is 16 little-endian 32-bit numbers: how many segments, then the offset of each.
   * 2. One segment per byte plane of each sample: sample 1's most significant byte first (G.2).
   * 3. Each segment is PackBits (G.3.1): a header byte n; 0..127 copies the next n + 1 bytes,
   *    -127..-1 repeats the next byte 1 - n times, -128 does nothing.
   * A segment that yields fewer than Rows × Columns bytes is refused; bytes past them (padding) are ignored.
   * Throws an Error with a plain message.
   */
  function decodeRle(bytes, a) {
    const spp = a.SamplesPerPixel || 1;
    const bits = a.BitsAllocated;
    if (bits !== 8 && bits !== 16) fail('no preview for ' + bits + '-bit pixels');
    const width = bits / 8;
    const n = a.Rows * a.Columns;
    if (bytes.length < 64) fail('the RLE header is truncated');
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const segments = dv.getUint32(0, true);
    if (segments !== spp * width) fail('the RLE header names ' + segments + ' segments, ' + spp * width + ' expected');
    const offsets = [];
    for (let s = 0; s < segments; s++) {
      const offset = dv.getUint32(4 + 4 * s, true);
      if (offset < 64 || offset > bytes.length || (s > 0 && offset < offsets[s - 1])) fail('RLE segment ' + (s + 1) + ' has a bad offset');
      offsets.push(offset);
    }
    const raw = width === 1 ? new Uint8Array(n * spp) : new Uint16Array(n * spp);
    const plane = new Uint8Array(n);
    for (let s = 0; s < segments; s++) {
      const end = s + 1 < segments ? offsets[s + 1] : bytes.length;
      let p = offsets[s];
      let out = 0;
      while (out < n && p < end) {
        const h = bytes[p++];
        if (h < 128) {
          const count = Math.min(h + 1, n - out, end - p);
          plane.set(bytes.subarray(p, p + count), out);
          out += count;
          p += h + 1;
        } else if (h > 128) {
          if (p >= end) break;
          const count = Math.min(257 - h, n - out);
          plane.fill(bytes[p++], out, out + count);
          out += count;
        }
      }
      if (out < n) fail('RLE segment ' + (s + 1) + ' is short: ' + out + ' of ' + n + ' bytes');
      const sampleIndex = Math.floor(s / width);
      const shift = 8 * (width - 1 - (s % width));
      for (let i = 0; i < n; i++) raw[i * spp + sampleIndex] |= plane[i] << shift;
    }
    return raw;
  }

  // --- the WebAssembly codecs OHIF uses (and its pure-JS lossless JPEG), loaded when a file needs one ---

  const CODEC_DIR = 'upload/codecs/';
  /** The emscripten builds: a script defining a factory global, which loads the .wasm beside it. */
  const WASM_CODECS = {
    'jpeg-ls': { script: 'charlswasm_decode.js', factory: 'CharLSWASM', decoder: 'JpegLSDecoder', name: 'JPEG-LS' },
    jpeg2000: { script: 'openjpegwasm_decode.js', factory: 'OpenJPEGWASM', decoder: 'J2KDecoder', name: 'JPEG 2000' },
    htj2k: { script: 'openjphjs.js', factory: 'Module', decoder: 'HTJ2KDecoder', name: 'HTJ2K' },
  };
  // PS3.6 Table A-1: the encapsulated transfer syntaxes decoded here besides JPEG Baseline and RLE.
  const CODEC_BY_TRANSFER_SYNTAX = {
    '1.2.840.10008.1.2.4.57': 'jpeg-lossless',
    '1.2.840.10008.1.2.4.70': 'jpeg-lossless',
    '1.2.840.10008.1.2.4.80': 'jpeg-ls',
    '1.2.840.10008.1.2.4.81': 'jpeg-ls',
    '1.2.840.10008.1.2.4.90': 'jpeg2000',
    '1.2.840.10008.1.2.4.91': 'jpeg2000',
    '1.2.840.10008.1.2.4.201': 'htj2k',
    '1.2.840.10008.1.2.4.202': 'htj2k',
    '1.2.840.10008.1.2.4.203': 'htj2k',
  };
  const loading = {};

  /** The codec's module, loading its files once; a failed load is tried again next time. */
  function loadCodec(codec) {
    if (loading[codec]) return loading[codec];
    let promise;
    if (codec === 'jpeg-lossless') promise = import(new URL(CODEC_DIR + 'lossless.js', document.baseURI).href);
    else {
      const spec = WASM_CODECS[codec];
      promise = new Promise(function (resolve, reject) {
        const script = document.createElement('script');
        script.src = CODEC_DIR + spec.script;
        script.onload = function () { resolve(window[spec.factory]); };
        script.onerror = function () { reject(new Error('the ' + spec.name + ' decoder could not be loaded')); };
        document.head.appendChild(script);
      }).then(function (factory) {
        if (typeof factory !== 'function') fail('the ' + spec.name + ' decoder could not be loaded');
        return factory({ locateFile: function (file) { return CODEC_DIR + file; } });
      });
    }
    loading[codec] = promise;
    promise.catch(function () { delete loading[codec]; });
    return promise;
  }

  /** The decoded bytes must be the frame the header describes: otherwise rectangles would land elsewhere. */
  function checkSize(a, width, height, components) {
    const spp = a.SamplesPerPixel || 1;
    if (width !== a.Columns || height !== a.Rows || components !== spp) {
      fail('the decoder gave ' + width + ' × ' + height + ' × ' + components + ', the header says ' + a.Columns + ' × ' + a.Rows + ' × ' + spp);
    }
  }

  /** Frame bytes through a WebAssembly codec: resolves { raw, planar }. */
  function wasmSamples(codec, bytes, a) {
    const spec = WASM_CODECS[codec];
    return loadCodec(codec).then(function (module) {
      const decoder = new module[spec.decoder]();
      try {
        decoder.getEncodedBuffer(bytes.length).set(bytes);
        try {
          decoder.decode();
        } catch (e) {
          fail('the ' + spec.name + ' decoder refused it' + (e && e.message ? ' (' + e.message + ')' : ''));
        }
        const info = decoder.getFrameInfo();
        checkSize(a, info.width, info.height, info.componentCount);
        const decoded = new Uint8Array(decoder.getDecodedBuffer()); // a copy: the view dies with the decoder
        const raw = info.bitsPerSample > 8 ? new Uint16Array(decoded.buffer, 0, decoded.length >> 1) : decoded;
        // CharLS keeps the stream's layout for interleave mode none (0): planar.
        const planar = codec === 'jpeg-ls' && info.componentCount > 1 && decoder.getInterleaveMode() === 0;
        return { raw: raw, planar: planar };
      } finally {
        decoder.delete();
      }
    });
  }

  /** PS3.5 A.4.1 processes 14 (SV1): the pure-JS decoder OHIF uses for lossless JPEG. */
  function losslessSamples(bytes, a) {
    return loadCodec('jpeg-lossless').then(function (module) {
      const decoder = new module.Decoder();
      const size = a.BitsAllocated > 8 ? 2 : 1;
      let out;
      try {
        out = decoder.decode(bytes.buffer, bytes.byteOffset, bytes.length, size);
      } catch (e) {
        fail('the lossless JPEG decoder refused it (' + (e && e.message ? e.message : e) + ')');
      }
      checkSize(a, decoder.xDim, decoder.yDim, decoder.numComp);
      const buffer = out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength);
      return { raw: size === 2 ? new Uint16Array(buffer) : new Uint8Array(buffer), planar: false };
    });
  }

  function couldNot(e) {
    return 'could not decode this frame: ' + (e && e.message ? e.message : String(e));
  }

  /** JPEG Baseline through the browser's own decoder. */
  function browserJpeg(bytes, a) {
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

  /**
   * Frame `k` (0-based) as ImageData, resolved; or a string saying why there is no preview (rectangles
   * can still be typed in). Never rejects.
   */
  function frameImage(parsed, k) {
    const a = parsed.attributes;
    if (!parsed.pixel) return Promise.resolve('no pixel data');
    if (!a.Rows || !a.Columns) return Promise.resolve('no Rows or Columns');
    if (k < 0 || k >= a.NumberOfFrames) return Promise.resolve('no such frame');
    if (!parsed.pixel.fragments) {
      return Promise.resolve().then(function () {
        const raw = nativeSamples(parsed, k);
        return typeof raw === 'string' ? raw : render(a, raw, a.PlanarConfiguration === 1);
      }).catch(couldNot);
    }
    const ts = parsed.transferSyntax;
    // JPEG Extended with 8-bit samples is a JPEG the browser reads; 12-bit samples it cannot.
    const eightBit = ts === JPEG_EXTENDED && a.BitsAllocated === 8;
    const codec = ts === JPEG_BASELINE || eightBit ? JPEG_BASELINE : ts === RLE_LOSSLESS ? ts : CODEC_BY_TRANSFER_SYNTAX[ts];
    if (!codec) return Promise.resolve(ts === JPEG_EXTENDED ? 'no preview for 12-bit JPEG Extended' : 'no preview for this encoding');
    const bytes = encodedFrame(parsed, k);
    if (!bytes) return Promise.resolve('no preview: the frames cannot be told apart');
    if (codec === JPEG_BASELINE) return browserJpeg(bytes, a);
    const pi = (a.PhotometricInterpretation || '').trim();
    // JPEG 2000 and HTJ2K undo their own colour transform (YBR_ICT, YBR_RCT): the samples come out RGB.
    const colour = pi === 'YBR_ICT' || pi === 'YBR_RCT' ? 'RGB' : undefined;
    return Promise.resolve()
      .then(function () {
        if (codec === RLE_LOSSLESS) return { raw: decodeRle(bytes, a), planar: false };
        if (codec === 'jpeg-lossless') return losslessSamples(bytes, a);
        return wasmSamples(codec, bytes, a);
      })
      .then(function (decoded) { return render(a, decoded.raw, decoded.planar, colour); }, couldNot)
      .catch(couldNot);
  }

  // A browser's window; in Node (the unit tests) the global object.
  (typeof window !== 'undefined' ? window : globalThis).DeidDicom = { parse: parse, frameImage: frameImage, decodeRle: decodeRle, render: render };
})();
