// The "issue a certificate" wizard's draft, its steps, and the request it makes
// (`POST /certificates`).
import type { AltName } from "./alt-names";
import { filledNames } from "./alt-names";
import type { Schemas } from "./api";
import { emptySubject, SUBJECT_FIELDS, subjectRequest, type SubjectDraft } from "./subject";
import { defaultValidity, VALIDITY_FIELDS, validityRequest, type Validity } from "./validity";

export type KeySource = "generate" | "csr";

export interface CertificateDraft {
  /** The authority's id, as the select holds it ("" until chosen). */
  authority: string;
  commonName: string;
  owner: string;
  description: string;
  subject: SubjectDraft;
  names: AltName[];
  keySource: KeySource;
  keyType: string;
  csr: string;
  validity: Validity;
  notify: boolean;
}

export function emptyDraft(owner: string, authority = ""): CertificateDraft {
  return {
    authority,
    commonName: "",
    owner,
    description: "",
    subject: emptySubject(),
    names: [],
    keySource: "generate",
    keyType: "ECCPRIME256V1",
    csr: "",
    validity: defaultValidity(),
    notify: true,
  };
}

/** The wizard's steps and the request fields each shows, so a refusal opens the right one. */
export const STEPS = [
  { id: "authority", title: "Authority", fields: ["authority"] },
  {
    id: "subject",
    title: "Subject",
    fields: ["commonName", "owner", "description", ...SUBJECT_FIELDS],
  },
  { id: "names", title: "Names", fields: ["extensions.subAltNames"] },
  { id: "key", title: "Key", fields: ["keySource", "keyType", "csr"] },
  { id: "validity", title: "Validity", fields: [...VALIDITY_FIELDS, "notify"] },
  { id: "review", title: "Review", fields: [] },
] as const;

export type StepId = (typeof STEPS)[number]["id"];

export const FIELDS: readonly string[] = STEPS.flatMap((step) => step.fields);

/** The step that shows the request field `field`. */
export function stepOf(field: string): StepId | undefined {
  return STEPS.find((step) => (step.fields as readonly string[]).includes(field))?.id;
}

export function certificateRequest(draft: CertificateDraft): Schemas["CreateCertificate"] {
  const names = filledNames(draft.names);
  const fromCsr = draft.keySource === "csr";
  return {
    authority: { id: draft.authority === "" ? null : Number(draft.authority) },
    commonName: draft.commonName.trim(),
    owner: draft.owner.trim(),
    description: draft.description.trim(),
    ...subjectRequest(draft.subject),
    extensions: names.length > 0 ? { subAltNames: { names } } : {},
    // One or the other: the daemon generates a key only when there is no CSR.
    csr: fromCsr ? draft.csr : null,
    keyType: fromCsr ? null : draft.keyType,
    ...validityRequest(draft.validity),
    notify: draft.notify,
  };
}
