// `Idempotency-Key`s for the requests that make something: the same request sent again (after
// an answer was lost to the network, say) carries the same key, so the daemon hands back what the
// first one made instead of making a second certificate. A changed request gets a new key.

export class IdempotencyKeys {
  #last: { body: string; key: string } | undefined;

  /** The key for `body`: the previous one if the body is the same as last time. */
  for(body: unknown): string {
    const text = JSON.stringify(body);
    if (this.#last?.body !== text) this.#last = { body: text, key: crypto.randomUUID() };
    return this.#last.key;
  }

  /** Forgets the last body (it may hold a private key) once the request is done with. */
  clear(): void {
    this.#last = undefined;
  }
}
