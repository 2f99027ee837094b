// The typed client of /api/1: paths, parameters and bodies come from the daemon's OpenAPI
// document (web/openapi.json), so a change of an API shape fails the UI's type-check, not a user.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type Certificate = Schemas["CertificateView"];
export type Authority = Schemas["AuthorityView"];
export type Plugin = Schemas["PluginView"];
export type PluginOption = Schemas["PluginOptionView"];
export type HealthDetails = Schemas["HealthDetails"];
export type Stats = Schemas["Stats"];
export type ErrorBody = Schemas["ErrorBody"];

/**
 * Asked when the daemon answers 401 to a request made under a session: resolves to true once
 * the same user has signed in again (the request is then sent again), false otherwise.
 */
let onSessionEnded: () => Promise<boolean> = async () => false;

export function whenSessionEnds(handler: () => Promise<boolean>): void {
  onSessionEnded = handler;
}

/** Copies of the requests in flight, by openapi-fetch's request id, to send again after a 401. */
const inFlight = new Map<string, Request>();

/** Sign-in, sign-out and "who am I" answer 401 as an answer, not as a session that ended. */
function isSessionRequest(request: Request): boolean {
  return new URL(request.url).pathname.startsWith("/api/1/auth/");
}

/**
 * A request refused because the session ended waits while the user signs in again, then goes
 * out again: the screen that sent it, with whatever was typed into it, carries on where it was.
 */
const sessionGuard: Middleware = {
  onRequest({ request, id }) {
    if (!isSessionRequest(request)) inFlight.set(id, request.clone());
    return undefined;
  },
  async onResponse({ response, id }) {
    const retry = inFlight.get(id);
    inFlight.delete(id);
    if (response.status !== 401 || !retry) return response;
    return (await onSessionEnded()) ? fetch(retry) : response;
  },
  onError({ id }) {
    inFlight.delete(id);
    return undefined;
  },
};

/** Where the API is. */
export const BASE_URL = "/api/1";

/** What every request of the web UI says: that it comes from the web UI (see `api`). */
const HEADERS = { "X-Requested-With": "lemur-web" } as const;

/**
 * The client. The session is an HttpOnly cookie the daemon sets at login; every request says it
 * comes from the web UI, which the daemon requires of changes made with that cookie.
 */
export const api = createClient<paths>({
  baseUrl: BASE_URL,
  credentials: "same-origin",
  headers: HEADERS,
});
api.use(sessionGuard);

/** What the API answered: its data, or the error body of a refusal. */
export interface Answer<T> {
  data?: T;
  error?: unknown;
}

/** Whether `value` is the daemon's error body (a 502 from nginx, say, is not). */
export function isErrorBody(value: unknown): value is ErrorBody {
  return typeof value === "object" && value !== null && "message" in value && "code" in value;
}

/** The message of an error body, naming the fields the daemon named. */
export function describe(error: unknown, fallback = "The request failed."): string {
  if (!isErrorBody(error)) return fallback;
  const reasons = Object.entries(error.reasons ?? {}).map(([field, why]) => `${field}: ${why}`);
  return reasons.length > 0 ? reasons.join("; ") : error.message;
}

/** The message shown when a request got no answer at all (network down, daemon restarting). */
export const UNREACHABLE = "The daemon could not be reached. Check the connection and try again.";

/** The media type of raw bytes sent as they are (a release bundle), not as a form. */
const RAW = "application/octet-stream";

/**
 * What `upload` sends to `path`: a `FormData` to a path that takes a `multipart/form-data` form
 * (a restore), a `Blob` (a chosen file) to one that takes raw bytes (an upgrade's bundle).
 */
export type UploadBody<P extends keyof paths> = paths[P] extends {
  post: { requestBody: { content: infer C } };
}
  ? | ("multipart/form-data" extends keyof C ? FormData : never)
    | (typeof RAW extends keyof C ? Blob : never)
  : never;

/** The paths that take an upload, perhaps a large one (see `UploadBody`). */
export type UploadPath = {
  [P in keyof paths]: [UploadBody<P>] extends [never] ? never : P;
}[keyof paths];

/** What `path` answers when it accepts an upload: the JSON of its 2xx answers. */
export type Accepted<P extends keyof paths> = paths[P] extends { post: { responses: infer R } }
  ? {
      [S in keyof R]: S extends 200 | 201 | 202
        ? R[S] extends { content: { "application/json": infer J } }
          ? J
          : never
        : never;
    }[keyof R]
  : never;

export interface UploadOptions {
  /** Told how much of the body went out, from 0 to 1 (1 once all of it is sent). */
  onProgress?: (sent: number) => void;
  /** Stops the upload: the promise then rejects. */
  signal?: AbortSignal;
}

/**
 * POSTs `body` to `path` with XMLHttpRequest, which tells how much of a large upload went out
 * (fetch does not): a form as `multipart/form-data`, a file's raw bytes as
 * `application/octet-stream`, as the path takes it. Sent as `api` sends (same origin, so with
 * the session's cookie, and the web UI's header), and like it sent again once the same user
 * signs in again after a 401. Rejects when no answer came, or `signal` stopped it.
 */
export async function upload<P extends UploadPath>(
  path: P,
  body: UploadBody<P>,
  options: UploadOptions = {},
): Promise<Answer<Accepted<P>>> {
  for (;;) {
    const answer = await post(`${BASE_URL}${path}`, body, options);
    if (answer.status === 401 && (await onSessionEnded())) continue;
    return answer.status >= 200 && answer.status < 300
      ? { data: answer.body as Accepted<P> }
      : { error: answer.body };
  }
}

function post(
  url: string,
  body: FormData | Blob,
  { onProgress, signal }: UploadOptions,
): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    onProgress?.(0);
    const request = new XMLHttpRequest();
    request.open("POST", url);
    for (const [name, value] of Object.entries(HEADERS)) request.setRequestHeader(name, value);
    // A form's type names its boundary, which the browser sets; raw bytes are said to be raw
    // whatever the file's own type (often none, for a `.upgrade`).
    if (!(body instanceof FormData)) request.setRequestHeader("Content-Type", RAW);
    request.upload.onprogress = (event) => {
      if (event.lengthComputable && event.total > 0) onProgress?.(event.loaded / event.total);
    };
    request.upload.onload = () => onProgress?.(1);
    request.onload = () => resolve({ status: request.status, body: json(request.responseText) });
    request.onerror = () => reject(new Error(`no answer from ${url}`));
    request.ontimeout = request.onerror;
    request.onabort = () => reject(signal?.reason ?? new DOMException("stopped", "AbortError"));
    signal?.addEventListener("abort", () => request.abort(), { once: true });
    request.send(body);
  });
}

/** `text` read as JSON; undefined when it is not (a proxy's page, say). */
function json(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
