// `GET /healthcheck/details`: each of the daemon's checks with its error. A failing check is
// answered with 503 and the same body, so that answer is data too, not a failure to read.
import { api, isErrorBody, type Answer, type HealthDetails } from "./api";

function isHealthDetails(value: unknown): value is HealthDetails {
  return typeof value === "object" && value !== null && "healthy" in value && "hsm" in value;
}

export async function readHealth(): Promise<Answer<HealthDetails>> {
  const { data, error } = await api.GET("/healthcheck/details");
  if (data) return { data };
  if (isHealthDetails(error)) return { data: error };
  return { error: isErrorBody(error) ? error : undefined };
}
