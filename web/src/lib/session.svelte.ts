// Who is signed in. The token itself stays in the daemon's HttpOnly cookie, out of reach of
// scripts; the UI only learns whether the cookie still signs it in (`/auth/me`).
import { api, describe, whenSessionEnds, type Schemas } from "./api";

type Me = Schemas["Me"];

class Session {
  me = $state<Me | null>(null);
  checked = $state(false);
  expired = $state(false);

  /** Asks the daemon who the cookie signs in, if anyone. */
  async check(): Promise<void> {
    const { data } = await api.GET("/auth/me");
    this.me = data ?? null;
    this.checked = true;
  }

  /** Signs in; the error message when refused. */
  async login(username: string, password: string): Promise<string | null> {
    const { error, response } = await api.POST("/auth/login", { body: { username, password } });
    if (!response.ok) {
      return response.status === 429
        ? `Too many attempts: wait ${response.headers.get("retry-after") ?? "a while"} seconds.`
        : describe(error, "Sign-in failed.");
    }
    this.expired = false;
    await this.check();
    return null;
  }

  async logout(): Promise<void> {
    await api.POST("/auth/logout");
    this.me = null;
  }
}

export const session = new Session();

whenSessionEnds(() => {
  if (session.me) session.expired = true;
  session.me = null;
});
