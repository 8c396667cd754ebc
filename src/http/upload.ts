import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import { Router, type NextFunction, type Request, type Response } from 'express';
import helmet from 'helmet';
import multer from 'multer';
import { treatmentFor, type RoleOptions } from '../auth/role.ts';
import type { TokenVerifier } from '../auth/token.ts';
import { DeidError, PixelWithheldError } from '../deid/errors.ts';
import { DicomError } from '../dicom/errors.ts';
import { DeidentificationUnavailableError, DicomwebError, OcrBusyError } from '../dicomweb/errors.ts';
import { savingSession, type SavingSession } from '../dicomweb/deidentified-view.ts';
import { FailureReason, storePart, type StowView } from '../dicomweb/stow.ts';
import { previewUpload, type UploadPreview } from '../dicomweb/upload-preview.ts';
import type { TextDetector } from '../pixel/text-detection.ts';
import { streamLifetime } from '../dicomweb/stream-lifetime.ts';
import type { AuditTrail } from '../store/audit-trail.ts';
import { auditTransaction } from './audit.ts';
import { authenticate } from './auth.ts';
import { HttpRequestError } from './errors.ts';
import { MAX_REDACTIONS_BYTES, NO_REDACTIONS, parseRedactions, rectanglesFor, type UploadRedactions } from './upload-redactions.ts';
import { callerOf, requestState, setRoute } from './request-context.ts';

const ASSETS = new URL('./upload-page/', import.meta.url);
const asset = (name: string) => readFileSync(new URL(name, ASSETS));

/**
 * The decoders the page loads when a picked file needs one (dicom.js): the WebAssembly builds OHIF uses
 * and its pure-JS lossless JPEG decoder, served from node_modules under `/upload/codecs/<name>`. A fixed
 * allow-list of package exports: the request's path only picks a key, never names a file.
 */
const CODEC_FILES: Readonly<Record<string, string>> = Object.freeze({
  'charlswasm_decode.js': '@cornerstonejs/codec-charls/decodewasmjs',
  'charlswasm_decode.wasm': '@cornerstonejs/codec-charls/decodewasm',
  'openjpegwasm_decode.js': '@cornerstonejs/codec-openjpeg/decodewasmjs',
  'openjpegwasm_decode.wasm': '@cornerstonejs/codec-openjpeg/decodewasm',
  'openjphjs.js': '@cornerstonejs/codec-openjph/wasmjs',
  'openjphjs.wasm': '@cornerstonejs/codec-openjph/wasm',
  'lossless.js': 'jpeg-lossless-decoder-js/release/lossless.js',
});

/** Each codec file's path on disk, or null when its package is not installed (then it is a 404). */
function codecPaths(): Map<string, string | null> {
  const require = createRequire(import.meta.url);
  const paths = new Map<string, string | null>();
  for (const [name, specifier] of Object.entries(CODEC_FILES)) {
    try {
      paths.set(name, require.resolve(specifier));
    } catch {
      paths.set(name, null);
    }
  }
  return paths;
}

/**
 * The page's Content-Security-Policy: helmet's defaults (as app.ts applies them everywhere) with one
 * source more, `script-src 'wasm-unsafe-eval'`, to compile the codecs' WebAssembly; never `'unsafe-eval'`
 * (these emscripten builds make no functions from strings). Only the page's document needs it: a
 * policy governs the document that loads scripts, not the scripts' own responses.
 */
const uploadPagePolicy = helmet.contentSecurityPolicy({
  useDefaults: true,
  directives: { 'script-src': ["'self'", "'wasm-unsafe-eval'"] },
});

/** What the page shows for each PS3.18 I.2.2 Failure Reason `storePart` gives. */
const REASONS: Record<number, string> = {
  [FailureReason.cannotUnderstand]: 'not a DICOM file the gateway can de-identify (0xC000)',
  [FailureReason.dataSetDoesNotMatchSopClass]: 'the file lacks the identifiers its SOP Class needs (0xA900)',
  [FailureReason.processingFailure]: 'not stored: the gateway or the PACS failed while processing it; try again later (0x0110)',
  [FailureReason.sopClassNotSupported]: 'not application/dicom (0x0122)',
  [FailureReason.outOfResources]: 'not stored: the gateway is out of resources; try again later (0xA700)',
  [FailureReason.notAuthorized]: 'withheld by the pixel policy: not stored (0x0124)',
};

/** Why the pixel policy withheld a file, in words (`detail` names the criterion or filter, never a value). */
const WITHHELD: Record<PixelWithheldError['reason'], string> = {
  risky: 'its pixels may show identity (burned-in text) and no redaction rule covers it',
  filtered: 'a series filter excludes it',
  unredactable: 'its pixels must be redacted (by a rule or by your rectangles) but this layout or encoding cannot be',
};

/** The page's text for a refused file: its Failure Reason, and for a withheld one why, from the refusal's own error. */
function refusalText(reason: number | undefined, error: unknown): string {
  if (error instanceof PixelWithheldError) return `withheld by the pixel policy: ${WITHHELD[error.reason]} (${error.detail}); not stored (0x0124)`;
  if (error instanceof OcrBusyError) return 'not stored: OCR, which must read its burned-in text first, is busy; try again later (0xA700)';
  return REASONS[reason ?? 0] ?? `failure reason ${reason}`;
}

/** The upload page is a store by another door: audited as STOW is, an Import (PS3.15 A.5.3, Data Import). */
const UPLOAD_ROUTE = { method: 'POST', path: '/upload', routeClass: 'store' } as const;
/**
 * The review before an upload receives the file as the upload does (stores nothing): audited under the
 * same event (Import), its route naming it, so the trail shows who sent the gateway which data, and when.
 */
const PREVIEW_ROUTE = { method: 'POST', path: '/upload/preview', routeClass: 'store' } as const;

interface FileResult {
  outcome: 'stored' | 'refused';
  studyInstanceUID?: string;
  sopInstanceUID?: string;
  reason?: string;
  /** A file the pixel policy withheld: why (`risky`, `filtered`, `unredactable`) and which criterion or filter. */
  withheld?: { reason: string; detail: string };
}

const sessions = new WeakMap<IncomingMessage, SavingSession>();

/** Per request: its `redactions` field, parsed once, and how many files have been read so far. */
interface RequestRedactions {
  readonly redactions: UploadRedactions;
  files: number;
}
const redactionsOf = new WeakMap<IncomingMessage, RequestRedactions>();

/**
 * The `redactions` field must come before every file (the page sends it first): a file is de-identified
 * as it arrives, so rectangles that come after it would come too late. Parsed at the first file; a field
 * seen only later refuses the request (checked once the form is read).
 */
function requestRedactions(req: Request): RequestRedactions {
  let state = redactionsOf.get(req);
  if (!state) {
    state = { redactions: parseRedactions((req.body as Record<string, unknown> | undefined)?.['redactions']), files: 0 };
    redactionsOf.set(req, state);
  }
  return state;
}

/**
 * A multer storage engine that never keeps the file: its stream goes through the de-identifying
 * rewriter into a temporary file that `storePart` deletes once the instance is forwarded or refused.
 */
class DeidentifyingStorage implements multer.StorageEngine {
  constructor(private readonly view: StowView) {}

  _handleFile(req: Request, file: Express.Multer.File, cb: (error?: unknown, info?: Partial<Express.Multer.File>) => void): void {
    let manual: ReturnType<typeof rectanglesFor>;
    try {
      const state = requestRedactions(req);
      manual = rectanglesFor(state.redactions, state.files++);
    } catch (error) {
      cb(error);
      return;
    }
    const session = sessions.get(req) ?? savingSession(this.view);
    sessions.set(req, session);
    // The caller leaving aborts the file in flight and its upstream store (one stream lifetime per request).
    const signal = req.res ? streamLifetime(req.res).signal : undefined;
    // The refusal's own error (storePart answers only its Failure Reason): a withheld file says why.
    let refusal: unknown;
    const view: StowView = {
      ...this.view,
      observeRefusal: (error) => {
        refusal = error;
        this.view.observeRefusal?.(error);
      },
    };
    storePart(view, session, { body: file.stream }, undefined, signal, manual).then(
      (result) => {
        const outcome: FileResult = result.stored
          ? { outcome: 'stored', studyInstanceUID: result.stored.study, sopInstanceUID: result.stored.sopInstance }
          : {
              outcome: 'refused',
              reason: refusalText(result.failed?.reason, refusal),
              ...(refusal instanceof PixelWithheldError ? { withheld: { reason: refusal.reason, detail: refusal.detail } } : {}),
            };
        cb(null, { outcome } as unknown as Partial<Express.Multer.File>);
      },
      (error: unknown) => cb(error),
    );
  }

  _removeFile(_req: Request, _file: Express.Multer.File, cb: (error: Error | null) => void): void {
    cb(null); // nothing is kept
  }
}

/** A multer storage engine for the review: the file streams through `previewUpload` and is never kept. */
class PreviewStorage implements multer.StorageEngine {
  constructor(
    private readonly view: StowView,
    private readonly textDetector: TextDetector | undefined,
  ) {}

  _handleFile(req: Request, file: Express.Multer.File, cb: (error?: unknown, info?: Partial<Express.Multer.File>) => void): void {
    const signal = req.res ? streamLifetime(req.res).signal : undefined;
    previewUpload(this.view, file.stream, { textDetector: this.textDetector, ...(signal ? { signal } : {}) }).then(
      (preview) => cb(null, { preview } as unknown as Partial<Express.Multer.File>),
      (error: unknown) =>
        cb(error instanceof DicomError || error instanceof DeidError ? new HttpRequestError('UPLOAD_PREVIEW_UNREADABLE', 'not a DICOM file the gateway can de-identify', { cause: error }) : error),
    );
  }

  _removeFile(_req: Request, _file: Express.Multer.File, cb: (error: Error | null) => void): void {
    cb(null);
  }
}

/** A form error of ours passes as it is; busboy reports a broken form as a plain Error: that is the caller's bad input. */
function formError(error: unknown): unknown {
  const ours = error instanceof DicomwebError || error instanceof HttpRequestError || (error as { name?: unknown }).name === 'MulterError';
  return ours ? error : new HttpRequestError('UPLOAD_BAD_FORM', 'the upload form is malformed', { cause: error });
}

export interface UploadRoutesOptions {
  verify: TokenVerifier;
  roles: RoleOptions;
  view: StowView | undefined;
  /** Each upload request leaves one Import record, as a STOW does; absent: not recorded. */
  audit?: AuditTrail;
  /** Proposes text regions on the review's first frame (issue 18); absent: the review says OCR is unavailable. */
  textDetector?: TextDetector | undefined;
}

/**
 * `GET /upload`: a plain page built from our own assets; `POST /upload`: multipart/form-data, uploader
 * only, with an optional `redactions` field (upload-redactions.ts) before the files; `POST /upload/preview`:
 * one file, answered with what the upload would store (upload-preview.ts), nothing stored.
 */
export function uploadRoutes(options: UploadRoutesOptions): Router {
  const router = Router();
  const html = asset('index.html');
  const js = asset('app.js');
  const dicomJs = asset('dicom.js');
  const css = asset('style.css');
  router.get('/upload', uploadPagePolicy, (_req, res) => {
    res.type('html').send(html);
  });
  router.get('/upload/app.js', (_req, res) => {
    res.type('application/javascript').send(js);
  });
  router.get('/upload/dicom.js', (_req, res) => {
    res.type('application/javascript').send(dicomJs);
  });
  router.get('/upload/style.css', (_req, res) => {
    res.type('text/css').send(css);
  });
  const codecs = codecPaths();
  router.get('/upload/codecs/:name', (req, res, next) => {
    const path = Object.hasOwn(CODEC_FILES, req.params.name) ? codecs.get(req.params.name) : undefined;
    if (!path) return next();
    // The files change only with package-lock.json; the page asks for each once per load.
    res.sendFile(path, { maxAge: '1h', dotfiles: 'deny', headers: { 'content-type': path.endsWith('.wasm') ? 'application/wasm' : 'text/javascript; charset=utf-8' } });
  });
  const engine = options.view
    ? multer({
        storage: new DeidentifyingStorage(options.view),
        limits: { fileSize: options.view.maxPartBytes, files: 10_000, fields: 10, fieldSize: MAX_REDACTIONS_BYTES },
      })
    : undefined;
  const previewEngine = options.view
    ? multer({ storage: new PreviewStorage(options.view, options.textDetector), limits: { fileSize: options.view.maxPartBytes, files: 1, fields: 0 } })
    : undefined;
  /** Authenticated, audited, and only for a role whose stores are de-identified (the uploader). */
  const uploaderOnly = (route: typeof UPLOAD_ROUTE | typeof PREVIEW_ROUTE, ready: unknown) => [
    authenticate(options.verify, options.roles),
    (req: Request, res: Response, next: NextFunction) => {
      setRoute(res, route.path);
      auditTransaction(options.audit, route, req, res);
      try {
        if (treatmentFor(callerOf(res).role, 'store') !== 'deidentified' || !ready) {
          throw new DeidentificationUnavailableError('the upload page');
        }
        next();
      } catch (error) {
        next(error);
      }
    },
  ];
  router.post('/upload/preview', ...uploaderOnly(PREVIEW_ROUTE, previewEngine), (req: Request, res: Response, next: NextFunction) => {
    (previewEngine as multer.Multer).any()(req, res, (error?: unknown) => {
      if (error) return next(formError(error));
      const file = (req.files as Express.Multer.File[] | undefined)?.[0] as unknown as { preview: UploadPreview } | undefined;
      if (!file) return next(new HttpRequestError('UPLOAD_PREVIEW_NO_FILE', 'the review takes exactly one file'));
      res.json(file.preview);
    });
  });
  router.post(
    '/upload',
    ...uploaderOnly(UPLOAD_ROUTE, engine),
    (req: Request, res: Response, next: NextFunction) => {
      (engine as multer.Multer).any()(req, res, (error?: unknown) => {
        if (error) return next(formError(error));
        // A `redactions` field after a file came too late for it (see requestRedactions).
        const state = redactionsOf.get(req);
        const field = (req.body as Record<string, unknown> | undefined)?.['redactions'];
        if (field !== undefined && (!state || state.redactions === NO_REDACTIONS)) {
          if (state) return next(new HttpRequestError('UPLOAD_BAD_REDACTIONS', 'the redactions field must come before the files'));
          parseRedactions(field); // no file at all: still refuse a malformed field
        }
        const files = ((req.files as Express.Multer.File[] | undefined) ?? []).map((f) => (f as unknown as { outcome: FileResult }).outcome);
        // Nothing stored is a refused Import, as STOW's 409 is (PS3.15 A.5.1: 4, minor failure).
        if (!files.some((f) => f.outcome === 'stored')) requestState(res).auditOutcome = 4;
        res.json({ files });
      });
    },
  );
  return router;
}
