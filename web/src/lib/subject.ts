// The optional subject fields (O, OU, L, ST, C) of certificates and authorities, as Lemur's API
// sends them at the top level of a request.
import type { Schemas } from "./api";

export type SubjectDraft = Required<{ [K in keyof Schemas["SubjectRequest"]]: string }>;

export function emptySubject(): SubjectDraft {
  return { organization: "", organizationalUnit: "", location: "", state: "", country: "" };
}

/** The fields that were filled in (empty ones take the appliance's defaults). */
export function subjectRequest(subject: SubjectDraft): Schemas["SubjectRequest"] {
  return Object.fromEntries(
    Object.entries(subject)
      .map(([field, value]) => [field, value.trim()])
      .filter(([, value]) => value !== ""),
  );
}

export const SUBJECT_FIELDS = Object.keys(emptySubject());
