// `GET /healthcheck/details`: each of the daemon's checks with its error. A failing check is
// answered with 503 and the same body, so that answer is data too, not a failure to read.
import { api, BASE_URL, isErrorBody, type Answer, type HealthDetails } from "./api";

function isHealthDetails(value: unknown): value is HealthDetails {
  return typeof value === "object" && value !== null && "healthy" in value && "hsm" in value;
}

export async function readHealth(): Promise<Answer<HealthDetails>> {
  const { data, error } = await api.GET("/healthcheck/details");
  if (data) return { data };
  if (isHealthDetails(error)) return { data: error };
  return { error: isErrorBody(error) ? error : undefined };
}

/** How long one look at `GET /healthcheck` may take before the daemon counts as down. */
const LOOK_MS = 5_000;

/**
 * Whether the daemon answers `GET /healthcheck` with `ok`: a plain, unauthenticated look, for
 * while it restarts (nginx answers 503 then, or nothing at all while it restarts too).
 */
export async function isUp(signal?: AbortSignal): Promise<boolean> {
  const timeout = AbortSignal.timeout(LOOK_MS);
  try {
    const response = await fetch(`${BASE_URL}/healthcheck`, {
      cache: "no-store",
      credentials: "omit",
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
    return response.ok;
  } catch {
    return false;
  }
}

/**
 * Waits `ms` between two looks at a daemon under way (an upgrade, a restart); no longer once
 * `signal` aborts, when the screen that looks goes.
 */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
