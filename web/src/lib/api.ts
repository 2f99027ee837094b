// The typed client of /api/1: paths, parameters and bodies come from the daemon's OpenAPI
// document (web/openapi.json), so a change of an API shape fails the UI's type-check, not a user.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type Certificate = Schemas["CertificateView"];
export type Authority = Schemas["AuthorityView"];
export type ErrorBody = Schemas["ErrorBody"];

/** Called when the daemon answers 401 to a signed-in screen: the session ended. */
let onSessionEnded: () => void = () => {};

export function whenSessionEnds(handler: () => void): void {
  onSessionEnded = handler;
}

const sessionGuard: Middleware = {
  onResponse({ request, response }) {
    if (response.status === 401 && !request.url.endsWith("/auth/login")) {
      onSessionEnded();
    }
    return response;
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

/** The message of an error body, naming the fields the daemon named. */
export function describe(error: ErrorBody | undefined, fallback = "The request failed."): string {
  if (!error) return fallback;
  const reasons = Object.entries(error.reasons ?? {}).map(([field, why]) => `${field}: ${why}`);
  return reasons.length > 0 ? reasons.join("; ") : error.message;
}
