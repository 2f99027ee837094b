// A large file a form sends with `upload` (a release bundle, a backup to restore): how much of it
// went out, and a way to stop it part way. The form says only that its request is on its way; a
// large one spends minutes going out, then more while the daemon checks what it got, and the
// screen tells the two apart (a bar and a cancel button, then a word that it is being checked).
import { upload, type Accepted, type Answer, type UploadBody, type UploadPath } from "./api";
import type { Form } from "./form.svelte";

/** What the form shows when the upload was cancelled: the daemon had not taken it up. */
const CANCELLED = { message: "The upload was cancelled: nothing changed.", code: "cancelled" };

export class Upload {
  /** How much of the body went out (0 to 1) while it is sent; null when nothing is. */
  sent = $state<number | null>(null);
  /** The form that sends it, whose `busy` covers the upload and the daemon's answer. */
  readonly form: Form;
  /** Whole percents, as the bar and the figure beside it show them. */
  readonly percent = $derived(Math.floor((this.sent ?? 0) * 100));
  /** The body is still going out: the time to show the bar and offer to cancel. */
  readonly uploading: boolean;
  /** All of it went out and the daemon has not answered yet: it is checking what it got. */
  readonly checking: boolean;
  /** Aborted when the screen goes. */
  readonly #alive: AbortSignal;
  /** Stops the upload under way, when the user cancels it; null when none is. */
  #cancelling: AbortController | null = null;

  /** `alive`: aborted when the screen goes, which ends an upload still under way. */
  constructor(form: Form, alive: AbortSignal) {
    this.form = form;
    this.#alive = alive;
    this.uploading = $derived(form.busy && this.sent !== null && this.sent < 1);
    this.checking = $derived(form.busy && this.sent !== null && this.sent >= 1);
  }

  /** Stops the upload under way; the form then says it was cancelled. */
  cancel(): void {
    this.#cancelling?.abort();
  }

  /**
   * Sends `body` to `path` as the form's request: its data when accepted, otherwise undefined,
   * the form showing why (`failure` when the daemon's refusal says nothing better). A cancelled
   * upload is a refusal of its own, not a daemon that could not be reached.
   */
  async send<P extends UploadPath>(
    path: P,
    body: UploadBody<P>,
    failure: string,
  ): Promise<Accepted<P> | undefined> {
    const cancel = new AbortController();
    this.#cancelling = cancel;
    this.sent = 0;
    try {
      return await this.form.submit(
        () =>
          upload(path, body, {
            onProgress: (part) => (this.sent = part),
            signal: AbortSignal.any([this.#alive, cancel.signal]),
          }).catch((error: unknown): Answer<Accepted<P>> => {
            if (cancel.signal.aborted) return { error: CANCELLED };
            throw error;
          }),
        failure,
      );
    } finally {
      this.#cancelling = null;
      this.sent = null;
    }
  }
}
