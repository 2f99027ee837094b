// How long a certificate (or an authority) is valid, as a form asks it: the issuer's default, a
// number of years, or dates; and as the API takes it (`validityYears`, or `validityStart` with
// `validityEnd`, or neither for the default).

export type ValidityMode = "default" | "years" | "dates";

export interface Validity {
  mode: ValidityMode;
  years: number | null;
  /** A date (YYYY-MM-DD, UTC), or empty for now. */
  start: string;
  /** A date (YYYY-MM-DD, UTC). */
  end: string;
}

export interface ValidityRequest {
  validityYears?: number | null;
  validityStart?: string | null;
  validityEnd?: string | null;
}

export function defaultValidity(): Validity {
  return { mode: "default", years: null, start: "", end: "" };
}

/**
 * The request's validity fields. A start left empty is now (the API takes both dates or
 * neither); an empty end or year count is sent as it is, for the daemon to refuse by name.
 */
export function validityRequest(validity: Validity, now = new Date()): ValidityRequest {
  switch (validity.mode) {
    case "default":
      return {};
    case "years":
      return { validityYears: validity.years };
    case "dates":
      return {
        validityStart: validity.start || now.toISOString(),
        validityEnd: validity.end,
      };
  }
}

/** The request fields a validity form shows, in screen order. */
export const VALIDITY_FIELDS = ["validity", "validityYears", "validityStart", "validityEnd"];
