/**
 * The request-target as a path and query (RFC 9112 3.2.1 origin-form), or undefined when it has none.
 *
 * RFC 9112 3.2.2: a server must accept the absolute-form (`GET http://host/dicom-web/studies`). Express
 * routes on its path, but `req.originalUrl` keeps the whole target; relayed as-is, a target such as
 * `http://x@evil.example/dicom-web/studies` would put the caller's authority into the upstream URL.
 * Reducing every target to its origin-form before routing makes what is routed, what is relayed and
 * what is logged the same thing.
 */
export function originForm(target: string | undefined): string | undefined {
  if (!target) return undefined;
  if (target.startsWith('/')) return target;
  if (!/^https?:\/\//i.test(target)) return undefined; // authority-form, asterisk-form, garbage
  try {
    const url = new URL(target);
    return `${url.pathname}${url.search}`;
  } catch {
    return undefined;
  }
}

/** The request's path as the caller wrote it (after `originForm`), without the query. */
export function rawPathOf(req: { readonly originalUrl: string }): string {
  const at = req.originalUrl.indexOf('?');
  return at >= 0 ? req.originalUrl.slice(0, at) : req.originalUrl;
}

/** The request's raw query string without '?', or ''. */
export function rawQueryOf(req: { readonly originalUrl: string }): string {
  const at = req.originalUrl.indexOf('?');
  return at >= 0 ? req.originalUrl.slice(at + 1) : '';
}
