// One read from the API as a screen shows it: loading, its data, or why it failed. Every
// screen's lists and details go through this, so each says the same things the same way.
import { describe, UNREACHABLE, type Answer } from "./api";

export class Remote<T> {
  data = $state.raw<T | undefined>();
  error = $state<string | null>(null);
  loading = $state(true);
  /** Which call's answer to keep: a slow earlier answer must not replace a newer one. */
  #latest = 0;

  /** Runs `read`; `failure` is the message when the daemon's refusal says nothing better. */
  async load(read: () => Promise<Answer<T>>, failure: string): Promise<void> {
    const call = ++this.#latest;
    this.loading = true;
    let data: T | undefined;
    let error: string | null = null;
    try {
      const answer = await read();
      data = answer.data;
      if (data === undefined) error = describe(answer.error, failure);
    } catch {
      error = UNREACHABLE;
    }
    if (call !== this.#latest) return;
    this.loading = false;
    this.data = data;
    this.error = error;
  }
}
