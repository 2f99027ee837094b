// The dashboard's figures: `GET /certificates/stats?metric=...`, Lemur's `{labels, values}`
// pairs, over the certificates the caller may see.
import { api, type Stats } from "./api";

/**
 * `expiring`: labels 7, 30 and 90 (days), values the live certificates expiring within them;
 * `expires_per_week`: 53 weeks from today, each labelled with its first day (ISO date);
 * `issued_per_day`: the last 30 days (UTC, oldest first), each labelled with its ISO date.
 */
export type Metric = "expiring" | "expires_per_week" | "issued_per_day";

export function readStats(metric: Metric) {
  return api.GET("/certificates/stats", { params: { query: { metric } } });
}

/** Each label with its count (the API sends them as two arrays in the same order). */
export function pairs(stats: Stats): { label: string; count: number }[] {
  return stats.items.labels.map((label, index) => ({
    label: String(label),
    count: stats.items.values[index] ?? 0,
  }));
}

/** The count under `label` (a number of days, say), or 0 when the daemon sent none. */
export function countOf(stats: Stats, label: string | number): number {
  return pairs(stats).find((pair) => pair.label === String(label))?.count ?? 0;
}
