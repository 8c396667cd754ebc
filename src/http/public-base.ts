// The base URL that the links the gateway builds (RetrieveURL, BulkDataURI, STOW's Retrieve URLs) and
// the `Forwarded` header it sends the PACS start with. In order:
//   1. `server.publicUrl`, when configured (as Orthanc's `DicomWeb.Host`/`PublicRoot`);
//   2. from a peer listed in `server.trustedProxies` only: RFC 7239 `Forwarded` (host, proto), then the
//      de-facto `X-Forwarded-Host` / `X-Forwarded-Proto`;
//   3. the request's own Host header (RFC 9110 7.2) and the connection's scheme.
// Forwarding headers from any other peer are ignored: they would let a caller choose where links point.
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';

export interface PublicBaseOptions {
  /** `server.publicUrl`; absent: derived per request. */
  readonly publicUrl?: string;
  /** Whether a peer address is a trusted proxy (`server.trustedProxies`). */
  readonly trusted: (address: string | undefined) => boolean;
  /** `server.basePath`, appended to a derived origin. */
  readonly basePath: string;
}

export interface PublicBase {
  /** Scheme, authority and DICOMweb base path, without a trailing slash: `https://pacs.example.org/dicom-web`. */
  readonly url: string;
  /** The authority links carry (host[:port]), for `Forwarded: host=`. */
  readonly host: string;
  readonly proto: 'http' | 'https';
}

/** RFC 3986 3.2.2 host (a registered name, IPv4 or a bracketed IPv6 literal) and an optional port. */
const HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}))(:[0-9]{1,5})?$/;

/** The fixed base, if `publicUrl` is set: computed once. */
function configuredBase(publicUrl: string): PublicBase {
  const url = new URL(publicUrl);
  return {
    url: `${url.origin}${url.pathname.replace(/\/+$/, '')}`,
    host: url.host,
    proto: url.protocol === 'https:' ? 'https' : 'http',
  };
}

/** The request's public base, or undefined when no usable host is known (no or a malformed Host). */
export function publicBaseResolver(options: PublicBaseOptions): (req: IncomingMessage) => PublicBase | undefined {
  if (options.publicUrl !== undefined) {
    const fixed = configuredBase(options.publicUrl);
    return () => fixed;
  }
  return (req) => {
    const forwarded = options.trusted(req.socket.remoteAddress) ? viaTrustedProxies(req.headers, req.socket.remoteAddress, options.trusted) : {};
    const host = forwarded.host ?? hostHeader(req.headers.host);
    if (host === undefined) return undefined;
    const proto = forwarded.proto ?? ((req.socket as Partial<TLSSocket>).encrypted ? 'https' : 'http');
    return { url: `${proto}://${host}${options.basePath}`, host, proto };
  };
}

/**
 * RFC 7239 `Forwarded: host=…;proto=…` naming the gateway as the caller reached it, so the PACS builds
 * RetrieveURLs that point back here. The host is sent unquoted although RFC 7239 4 quotes a value with
 * `:`, because Orthanc copies the quotes into its URLs.
 */
export function forwardedHeader(base: PublicBase): string {
  return `host=${base.host};proto=${base.proto}`;
}

function hostHeader(value: string | undefined): string | undefined {
  return value !== undefined && HOST.test(value) ? value : undefined;
}

function protoValue(value: string | undefined): 'http' | 'https' | undefined {
  const lower = value?.toLowerCase();
  return lower === 'http' || lower === 'https' ? lower : undefined;
}

/**
 * Host and proto as the outermost trusted proxy received the request. Each proxy appends its element
 * (RFC 7239 4), so the last one is the connected peer's; walking leftwards, an element counts only
 * while the node that added it is trusted: the peer for the last, the previous element's `for` for each
 * one before (RFC 7239 8.1: earlier values can be forged by the client). X-Forwarded-Host/-Proto are
 * read the same way, with X-Forwarded-For naming the hops. `Forwarded` wins where both say something.
 */
function viaTrustedProxies(
  headers: IncomingHttpHeaders,
  peer: string | undefined,
  trusted: (address: string | undefined) => boolean,
): { host?: string; proto?: 'http' | 'https' } {
  const out: { host?: string; proto?: 'http' | 'https' } = {};
  const elements = parseForwarded(headers['forwarded']);
  let hop = peer;
  for (let i = (elements?.length ?? 0) - 1; i >= 0 && trusted(hop); i--) {
    const element = (elements as ForwardedElement[])[i] as ForwardedElement;
    const host = hostHeader(element.get('host'));
    const proto = protoValue(element.get('proto'));
    if (host !== undefined) out.host = host;
    if (proto !== undefined) out.proto = proto;
    hop = nodeAddress(element.get('for'));
  }
  // X-Forwarded-For lists the hops before the peer; the trusted ones at its end are the chain.
  const hops = list(headers['x-forwarded-for']);
  let depth = 1;
  while (depth <= hops.length && trusted(hops[hops.length - depth])) depth++;
  const pick = (values: string[]) => values[Math.max(0, values.length - depth)];
  out.host ??= hostHeader(pick(list(headers['x-forwarded-host'])));
  out.proto ??= protoValue(pick(list(headers['x-forwarded-proto'])));
  return out;
}

function list(value: string | string[] | undefined): string[] {
  return [value ?? []]
    .flat()
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean);
}

/** One forwarded-element: parameter names lower-cased (RFC 7239 4: case-insensitive), values unquoted. */
export type ForwardedElement = ReadonlyMap<string, string>;

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/**
 * An unquoted value: a token, or also `:` `[` `]`, which RFC 7239 4 asks to quote but proxies (and this
 * gateway, for Orthanc) send bare in `host=h:port` and `for=[v6]:port`; the value is validated after.
 */
const BARE_VALUE = /^[!#$%&'*+.^_`|~0-9A-Za-z:[\]-]+$/;

/**
 * RFC 7239 4: `Forwarded = 1#forwarded-element`, `forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )`,
 * `forwarded-pair = token "=" value`, `value = token / quoted-string` (RFC 9110 5.6.4). Several header
 * lines are one list. Undefined when absent or malformed anywhere (a repeated parameter in an element
 * included): a header that cannot be read is not half-trusted.
 */
export function parseForwarded(header: string | string[] | undefined): ForwardedElement[] | undefined {
  if (header === undefined) return undefined;
  const text = [header].flat().join(',');
  const elements: Map<string, string>[] = [];
  let element = new Map<string, string>();
  let i = 0;
  const skipSpace = () => {
    while (text[i] === ' ' || text[i] === '\t') i++;
  };
  while (i <= text.length) {
    skipSpace();
    if (i === text.length || text[i] === ',' || text[i] === ';') {
      // An empty pair (allowed by the grammar) or the end of an element.
    } else {
      const eq = text.indexOf('=', i);
      if (eq < 0) return undefined;
      const name = text.slice(i, eq).toLowerCase();
      if (!TOKEN.test(name) || element.has(name)) return undefined;
      i = eq + 1;
      let value = '';
      if (text[i] === '"') {
        i++;
        for (;;) {
          if (i >= text.length) return undefined;
          const c = text[i++] as string;
          if (c === '"') break;
          value += c === '\\' ? (text[i++] ?? '') : c;
        }
      } else {
        const start = i;
        while (i < text.length && !/[,; \t]/.test(text[i] as string)) i++;
        value = text.slice(start, i);
        if (!BARE_VALUE.test(value)) return undefined;
      }
      element.set(name, value);
      skipSpace();
    }
    if (i >= text.length) {
      if (element.size > 0) elements.push(element);
      break;
    }
    const separator = text[i++];
    if (separator === ',') {
      if (element.size > 0) elements.push(element);
      element = new Map();
    } else if (separator !== ';') return undefined;
  }
  return elements;
}

/** RFC 7239 6: `node = nodename [ ":" node-port ]`, IPv6 in brackets; `unknown` and obfuscated names are no address. */
function nodeAddress(node: string | undefined): string | undefined {
  if (node === undefined) return undefined;
  if (node.startsWith('[')) {
    const end = node.indexOf(']');
    return end > 0 ? node.slice(1, end) : undefined;
  }
  return node.split(':')[0];
}
