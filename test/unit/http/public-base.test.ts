import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, test } from 'node:test';
import { addressMatcher, parseAddressRange, type AddressRange } from '../../../src/config/address-range.ts';
import { forwardedHeader, parseForwarded, publicBaseResolver } from '../../../src/http/public-base.ts';

const trust = (...ranges: string[]) => addressMatcher(ranges.map((r) => parseAddressRange(r) as AddressRange));

function request(peer: string, headers: Record<string, string | string[]>): IncomingMessage {
  return { socket: { remoteAddress: peer }, headers } as unknown as IncomingMessage;
}

describe('the public base URL of links', () => {
  test('RFC 7239 Forwarded is parsed as a list of elements, quoted strings included; malformed is undefined', () => {
    const parsed = parseForwarded(['for=192.0.2.60;proto=http;by=203.0.113.43', 'For="[2001:db8:cafe::17]:4711";HOST="pacs.example.org:8443"']);
    assert.deepEqual(
      parsed?.map((e) => Object.fromEntries(e)),
      [
        { for: '192.0.2.60', proto: 'http', by: '203.0.113.43' },
        { for: '[2001:db8:cafe::17]:4711', host: 'pacs.example.org:8443' },
      ],
    );
    assert.deepEqual(parseForwarded('host=a.example:8080;proto=https')?.map((e) => Object.fromEntries(e)), [{ host: 'a.example:8080', proto: 'https' }]);
    assert.deepEqual(parseForwarded('for="_gazonk", ;, for=unknown')?.length, 2);
    for (const bad of ['for', 'for=a;for=b', 'host="unterminated', 'host=a b', 'host=a"b"', 'x=1;;y']) {
      assert.equal(parseForwarded(bad), undefined, bad);
    }
  });

  test('server.publicUrl wins over every header, for the links and for Forwarded to the PACS', () => {
    const base = publicBaseResolver({ publicUrl: 'https://pacs.example.org/imaging/dicom-web/', trusted: trust('127.0.0.1'), basePath: '/dicom-web' });
    const got = base(request('127.0.0.1', { host: '127.0.0.1', 'x-forwarded-host': 'evil.example', forwarded: 'host=evil.example;proto=http' }));
    assert.deepEqual(got, { url: 'https://pacs.example.org/imaging/dicom-web', host: 'pacs.example.org', proto: 'https' });
    assert.equal(forwardedHeader(got as NonNullable<typeof got>), 'host=pacs.example.org;proto=https');
  });

  test('forwarding headers count from a trusted peer only; otherwise the Host header and the connection decide', () => {
    const base = publicBaseResolver({ trusted: trust('10.0.0.0/8', '::1'), basePath: '/dicom-web' });
    const headers = { host: 'gateway.internal:8080', 'x-forwarded-host': 'pacs.example.org', 'x-forwarded-proto': 'https' };
    assert.equal(base(request('10.1.2.3', headers))?.url, 'https://pacs.example.org/dicom-web');
    assert.equal(base(request('::ffff:10.1.2.3', headers))?.url, 'https://pacs.example.org/dicom-web');
    assert.equal(base(request('::1', headers))?.url, 'https://pacs.example.org/dicom-web');
    assert.equal(base(request('192.0.2.9', headers))?.url, 'http://gateway.internal:8080/dicom-web');
    assert.equal(base(request('192.0.2.9', { forwarded: 'host=evil.example;proto=https', host: '127.0.0.1' }))?.url, 'http://127.0.0.1/dicom-web');
    // Forwarded wins over X-Forwarded-*; a malformed Forwarded is not half-read.
    assert.equal(base(request('10.1.2.3', { ...headers, forwarded: 'host="ingress.example";proto=https' }))?.url, 'https://ingress.example/dicom-web');
    assert.equal(base(request('10.1.2.3', { ...headers, forwarded: 'host=a;host=b' }))?.url, 'https://pacs.example.org/dicom-web');
    // Values that are not a host or not http(s) are ignored, never put into a link.
    assert.equal(base(request('10.1.2.3', { host: 'gw:8080', 'x-forwarded-host': 'a/b@evil', 'x-forwarded-proto': 'javascript' }))?.url, 'http://gw:8080/dicom-web');
    assert.equal(base(request('192.0.2.9', { host: 'a b' })), undefined, 'no usable host');
  });

  test('along a chain, the outermost trusted proxy speaks; what the client wrote before it is not believed', () => {
    const base = publicBaseResolver({ trusted: trust('10.0.0.0/8'), basePath: '/dicom-web' });
    // client 198.51.100.7 → ingress 10.0.0.5 → balancer 10.0.0.9 → gateway; the client forged an element.
    const forwarded = 'host=evil.example;proto=http, for=198.51.100.7;host=pacs.example.org;proto=https, for=10.0.0.5;host=balancer.internal;proto=http';
    assert.equal(base(request('10.0.0.9', { host: 'gw', forwarded }))?.url, 'https://pacs.example.org/dicom-web');
    // The same with X-Forwarded-*: each proxy appended what it received.
    const x = { host: 'gw', 'x-forwarded-for': '198.51.100.7, 10.0.0.5', 'x-forwarded-host': 'evil.example, pacs.example.org, balancer.internal', 'x-forwarded-proto': 'http, https, http' };
    assert.equal(base(request('10.0.0.9', x))?.url, 'https://pacs.example.org/dicom-web');
    // One overwriting proxy (nginx `proxy_set_header X-Forwarded-Host $host`): its single value.
    assert.equal(base(request('10.0.0.9', { host: 'gw', 'x-forwarded-host': 'pacs.example.org', 'x-forwarded-proto': 'https' }))?.url, 'https://pacs.example.org/dicom-web');
  });
});
