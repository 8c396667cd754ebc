import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { accepts, acceptsPart, negotiate, OFFERED, parseAccept, parseMediaRange } from '../../../src/dicomweb/content-negotiation.ts';

const JSON_OFFERS = OFFERED.json;
const choose = (accept: string | undefined, offers: readonly string[]) => negotiate(parseAccept(accept), offers);

describe('content negotiation (RFC 9110 12.5.1, PS3.18 8.7)', () => {
  test('no Accept header accepts anything; the first offer wins', () => {
    assert.equal(choose(undefined, JSON_OFFERS), 'application/dicom+json');
    assert.ok(accepts(undefined, 'text/html'));
  });

  test('wildcards match, and the most specific range decides the quality', () => {
    assert.equal(choose('*/*', JSON_OFFERS), 'application/dicom+json');
    assert.equal(choose('application/*', JSON_OFFERS), 'application/dicom+json');
    assert.equal(choose('application/dicom+json;q=0, */*', JSON_OFFERS), 'application/json');
    assert.equal(choose('application/dicom+json;q=0, application/json;q=0, */*', JSON_OFFERS), undefined);
    assert.equal(choose('*/*;q=0', JSON_OFFERS), undefined);
    assert.equal(choose('application/*;q=0, application/json', JSON_OFFERS), 'application/json');
  });

  test('q-values order the offers; a malformed q is ignored, q=0 is not acceptable', () => {
    assert.equal(choose('application/json;q=0.4, application/dicom+json;q=0.9', JSON_OFFERS), 'application/dicom+json');
    assert.equal(choose('application/json, application/dicom+json;q=0.9', JSON_OFFERS), 'application/json');
    assert.equal(choose('application/json;q=1.5', JSON_OFFERS), 'application/json');
    assert.equal(choose('application/json;q=0.000', JSON_OFFERS), undefined);
    assert.equal(choose('application/json; Q=0', JSON_OFFERS), undefined);
  });

  test('the XML model, and media types nobody offers, are not acceptable for DICOM JSON', () => {
    for (const accept of ['multipart/related; type="application/dicom+xml"', 'application/dicom+xml', 'text/html', 'application/dicom', 'image/*', 'garbage', '']) {
      assert.equal(choose(accept, JSON_OFFERS), undefined, accept);
    }
  });

  test('multipart/related matches on its type parameter, quoted or not, case-insensitively', () => {
    const offers = OFFERED.instances;
    assert.ok(choose('multipart/related; type="application/dicom"', offers));
    assert.ok(choose('multipart/related; type=application/dicom; transfer-syntax=*', offers));
    assert.ok(choose('Multipart/Related; Type="Application/DICOM"', offers));
    assert.ok(choose('multipart/*', offers));
    assert.equal(choose('multipart/related; type="application/dicom+xml"', offers), undefined);
    assert.equal(choose('multipart/related; type="application/octet-stream"', offers), undefined);
    assert.equal(choose('multipart/related; type="application/dicom";q=0, */*', offers), undefined);
  });

  test('frames: a named Transfer Syntax must match what the answer declares; * accepts any (PS3.18 8.7.3.5.2)', () => {
    const ranges = parseAccept('multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1');
    assert.ok(accepts(ranges, 'multipart/related; type="application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"; boundary=x'));
    assert.ok(accepts(ranges, 'multipart/related; type="application/octet-stream"; boundary=x'), 'a Transfer Syntax not declared is not judged');
    assert.ok(!accepts(ranges, 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2; boundary=x'));
    assert.ok(!accepts(ranges, 'multipart/related; type="image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50"; boundary=x'));
    // OHIF's Accept: any Transfer Syntax, so the PACS may answer in the compressed one, under its own type.
    const ohif = parseAccept('multipart/related; type=application/octet-stream; transfer-syntax=*');
    assert.ok(accepts(ohif, 'multipart/related; type="image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.70"; boundary=x'));
    assert.ok(accepts(ohif, 'multipart/related; type="image/jls; transfer-syntax=1.2.840.10008.1.2.4.80"; boundary=x'));
    assert.ok(!accepts(ohif, 'multipart/related; type="application/dicom"; boundary=x'), 'not a whole instance');
    // Without the wildcard the part type is what was asked for.
    assert.ok(!accepts(parseAccept('multipart/related; type="application/octet-stream"'), 'multipart/related; type="image/jpeg"; boundary=x'));
    assert.ok(accepts(parseAccept('multipart/related; type="image/*"'), 'multipart/related; type="image/jpeg"; boundary=x'));
  });

  test('each part of a multipart answer is judged by its own Content-Type', () => {
    const ranges = parseAccept('multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1');
    assert.ok(acceptsPart(ranges, 'application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1'));
    assert.ok(acceptsPart(ranges, 'application/octet-stream'));
    assert.ok(!acceptsPart(ranges, 'application/octet-stream; transfer-syntax="1.2.840.10008.1.2"'));
    assert.ok(!acceptsPart(ranges, 'image/jpeg'));
    assert.ok(!acceptsPart(ranges, 'not a media type'));
    assert.ok(acceptsPart(parseAccept('multipart/related; type="application/dicom"; transfer-syntax=*'), 'application/dicom; transfer-syntax=1.2.840.10008.1.2.4.50'));
  });

  test('a quoted comma or semicolon does not split the header', () => {
    const [range] = parseAccept('multipart/related; type="application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1", text/html') ?? [];
    assert.deepEqual(range, { type: 'multipart', subtype: 'related', partType: 'application/octet-stream', transferSyntax: '1.2.840.10008.1.2.1', q: 1 });
    assert.equal(parseAccept('a/b, "x,y"/z, c/d')?.length, 2, 'an element that is not a media range is ignored');
    assert.equal(parseMediaRange('*/json'), undefined);
    assert.equal(parseMediaRange('text'), undefined);
  });
});
