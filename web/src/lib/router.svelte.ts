// The application's routes, from the address bar: every screen's state (filter, sort, page) is
// in the URL, so it can be shared and the back button works. Deep links reach index.html through
// nginx's fallback.

import { fromQueryString, toQueryString } from "./query";

class Location {
  path = $state(window.location.pathname);
  query = $state(new URLSearchParams(window.location.search));

  sync(): void {
    this.path = window.location.pathname;
    this.query = new URLSearchParams(window.location.search);
  }
}

export const location = new Location();

window.addEventListener("popstate", () => location.sync());

/** Goes to `path` (with `query`), adding a history entry unless `replace`. */
export function navigate(
  path: string,
  query: Record<string, string | number | undefined> = {},
  replace = false,
): void {
  const search = toQueryString(query);
  const url = search ? `${path}?${search}` : path;
  if (replace) window.history.replaceState(null, "", url);
  else window.history.pushState(null, "", url);
  location.sync();
}

/** Follows same-origin links without reloading the page. */
export function link(node: HTMLAnchorElement): void {
  node.addEventListener("click", (event) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey) return;
    if (node.origin !== window.location.origin) return;
    event.preventDefault();
    navigate(node.pathname, fromQueryString(node.search));
  });
}
