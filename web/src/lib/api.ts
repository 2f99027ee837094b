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

/**
 * The client. The session is an HttpOnly cookie the daemon sets at login; every request says it
 * comes from the web UI, which the daemon requires of changes made with that cookie.
 */
export const api = createClient<paths>({
  baseUrl: "/api/1",
  credentials: "same-origin",
  headers: { "X-Requested-With": "lemur-web" },
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
