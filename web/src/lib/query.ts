// Query strings, built and read without reactivity (the router keeps the reactive state).

/** `a=1&b=2` from the entries that have a value. */
export function toQueryString(query: Record<string, string | number | undefined>): string {
  return new URLSearchParams(
    Object.entries(query)
      .filter(([, value]) => value !== undefined && value !== "")
      .map(([key, value]) => [key, String(value)]),
  ).toString();
}

/** The entries of `search` (`?a=1`). */
export function fromQueryString(search: string): Record<string, string> {
  return Object.fromEntries(new URLSearchParams(search));
}
