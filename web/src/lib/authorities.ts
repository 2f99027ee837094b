// The authorities, as the screens that list or choose them read them.
import { api } from "./api";

/** The most the API returns in one page: every authority an appliance has. */
const ALL = 1000;

export function readAuthorities() {
  return api.GET("/authorities", { params: { query: { count: ALL } } });
}
