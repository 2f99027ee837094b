// A form that sends one request: whether it is on its way, and what the daemon refused. The
// daemon checks every field (one set of rules, in the domain) and names the offending one in its
// error body's `reasons`, as the request names it (`owner`, `extensions.subAltNames`...): each
// message is shown next to the field that shows that part of the request, the rest above the
// form's buttons.
import { tick } from "svelte";
import { isErrorBody, UNREACHABLE, type Answer } from "./api";

/** The element id of the control for the request field `field`. */
export function fieldId(field: string): string {
  return `field-${field.replace(/[^A-Za-z0-9_-]/g, "-")}`;
}

/** The `aria-describedby` of the control `id`: its hint and its error, when it has them. */
export function describedBy(id: string, hint?: string, error?: string): string | undefined {
  return [hint && `${id}-hint`, error && `${id}-error`].filter(Boolean).join(" ") || undefined;
}

/** What every labelled field of a form takes (see `components/fields/`). */
export interface FieldProps {
  form?: Form;
  /** The request field it sets, as the daemon names it in errors. */
  name: string;
  label: string;
  hint?: string;
  required?: boolean;
}

export class Form {
  /** The daemon's message for each field of this form it refused. */
  errors = $state<Record<string, string>>({});
  /** What the daemon said that no field of this form shows. */
  message = $state<string | null>(null);
  busy = $state(false);
  readonly #fields: readonly string[];
  readonly #shows: Readonly<Record<string, string>>;

  /**
   * `fields`: the request fields this form shows, in the order they appear on screen. `shows`:
   * the form's field that shows a request field of another name (two forms of one screen that
   * both send a `passphrase` must not give their controls the same element id).
   */
  constructor(fields: readonly string[], shows: Readonly<Record<string, string>> = {}) {
    this.#fields = fields;
    this.#shows = shows;
  }

  /**
   * The field of this form that shows the daemon's field `named`: itself, or the nearest one it
   * lies under (`extensions.subAltNames.names.nameType` is shown by `extensions.subAltNames`).
   */
  fieldFor(named: string): string | undefined {
    const shown = this.#shown(named);
    return this.#fields
      .filter((field) => shown === field || shown.startsWith(`${field}.`))
      .sort((a, b) => b.length - a.length)[0];
  }

  /** The daemon's field `named` as this form names it (see the constructor's `shows`). */
  #shown(named: string): string {
    for (const [request, field] of Object.entries(this.#shows)) {
      if (named === request || named.startsWith(`${request}.`)) {
        return field + named.slice(request.length);
      }
    }
    return named;
  }

  /** The first field of this form, in screen order, with an error. */
  get firstError(): string | undefined {
    return this.#fields.find((field) => field in this.errors);
  }

  /** Sends the request; its data when accepted, otherwise the refusal is shown and undefined. */
  async submit<T>(send: () => Promise<Answer<T>>, failure: string): Promise<T | undefined> {
    this.busy = true;
    this.errors = {};
    this.message = null;
    try {
      const { data, error } = await send();
      if (data !== undefined) return data;
      this.#refused(error, failure);
    } catch {
      this.message = UNREACHABLE;
    } finally {
      this.busy = false;
    }
    return undefined;
  }

  /** Shows `message` against `field` (for checks made before anything is sent). */
  reject(field: string, message: string): void {
    this.refuse({ [field]: message });
  }

  /** Shows each message against its field (for checks made before anything is sent). */
  refuse(errors: Record<string, string>): void {
    this.errors = errors;
    this.message = null;
  }

  /**
   * Moves focus to the first field with an error once it is on screen, so it is read out; or,
   * when the current choices hide that field, to the first control marked invalid.
   */
  async focusFirstError(): Promise<void> {
    await tick();
    const first = this.firstError;
    if (!first) return;
    const control =
      document.getElementById(fieldId(first)) ??
      document.querySelector<HTMLElement>(".invalid input, .invalid select, .invalid textarea");
    control?.focus();
  }

  #refused(error: unknown, failure: string): void {
    if (!isErrorBody(error)) {
      this.message = failure;
      return;
    }
    const errors: Record<string, string> = {};
    const elsewhere: string[] = [];
    for (const [named, why] of Object.entries(error.reasons ?? {})) {
      const shown = this.#shown(named);
      const field = this.fieldFor(named);
      if (field) errors[field] = shown === field ? why : `${shown.slice(field.length + 1)}: ${why}`;
      else elsewhere.push(`${named}: ${why}`);
    }
    this.errors = errors;
    if (elsewhere.length > 0) this.message = elsewhere.join("; ");
    else if (Object.keys(errors).length === 0) this.message = error.message;
  }
}
