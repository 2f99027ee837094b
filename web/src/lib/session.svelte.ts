// Who is signed in. The token itself stays in the daemon's HttpOnly cookie, out of reach of
// scripts; the UI only learns whether the cookie still signs it in (`/auth/me`).
import { api, describe, whenSessionEnds, type Schemas } from "./api";

type Me = Schemas["Me"];

class Session {
  me = $state<Me | null>(null);
  checked = $state(false);
  /** The session ended under a signed-in screen, which stays (hidden) until sign-in. */
  expired = $state(false);
  /** Why the sign-in screen is shown, when the UI itself ended the session (see `end`). */
  notice = $state<string | null>(null);
  /** The requests waiting for sign-in, told whether the same user came back. */
  #waiting: ((sameUser: boolean) => void)[] = [];

  readonly isAdmin = $derived(this.me?.roles.some((role) => role.name === "admin") ?? false);

  /** Asks the daemon who the cookie signs in, if anyone. */
  async check(): Promise<void> {
    const { data } = await api.GET("/auth/me").catch(() => ({ data: undefined }));
    this.me = data ?? null;
    this.checked = true;
  }

  /** Signs in; the error message when refused. */
  async login(username: string, password: string): Promise<string | null> {
    const previous = this.expired ? this.me?.id : undefined;
    const { error, response } = await api.POST("/auth/login", { body: { username, password } });
    if (!response.ok) {
      return response.status === 429
        ? `Too many attempts: wait ${response.headers.get("retry-after") ?? "a while"} seconds.`
        : describe(error, "Sign-in failed.");
    }
    await this.check();
    this.expired = false;
    this.notice = null;
    this.#resume(previous !== undefined && this.me?.id === previous);
    return null;
  }

  async logout(): Promise<void> {
    // keepalive: a page left right after the click must not cancel the request that ends the
    // session on the daemon.
    await api.POST("/auth/logout", { keepalive: true });
    this.me = null;
    this.expired = false;
    this.notice = null;
    this.#resume(false);
  }

  /**
   * Ends the session here, showing the sign-in with `notice`: the daemon no longer holds what
   * signed this user in (the appliance was restored from a backup). The daemon is asked to log
   * it out all the same, in case the backup holds this very session: a 401 is the likely answer.
   */
  async end(notice: string): Promise<void> {
    await api.POST("/auth/logout", { keepalive: true }).catch(() => undefined);
    this.me = null;
    this.expired = false;
    this.notice = notice;
    this.#resume(false);
  }

  /**
   * The daemon refused a request of a signed-in screen: show the sign-in, and resolve to true
   * when the same user is back (so the request may be sent again: someone else signing in must
   * not send what the first user typed).
   */
  ended(): Promise<boolean> {
    if (!this.me) return Promise.resolve(false);
    this.expired = true;
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  #resume(sameUser: boolean): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const resolve of waiting) resolve(sameUser);
  }
}

export const session = new Session();

whenSessionEnds(() => session.ended());
