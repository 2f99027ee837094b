// The "new authority" form's draft and the request it makes (`POST /authorities`): a root, or a
// sub-CA under a parent, its key generated in the HSM.
import type { Schemas } from "./api";
import { emptySubject, SUBJECT_FIELDS, subjectRequest, type SubjectDraft } from "./subject";
import { defaultValidity, VALIDITY_FIELDS, validityRequest, type Validity } from "./validity";

export type AuthorityType = "root" | "subca";

export interface AuthorityDraft {
  type: AuthorityType;
  /** The parent's id for a sub-CA, as the select holds it. */
  parent: string;
  name: string;
  commonName: string;
  owner: string;
  description: string;
  keyType: string;
  validity: Validity;
  subject: SubjectDraft;
  plugin: string;
  cabCompliant: boolean;
  defaultValidityDays: number | null;
  maxIssuanceDays: number | null;
  crlUrl: string;
  issuerUrl: string;
  /** One domain a line (or separated by commas or spaces); empty for any. */
  permittedDomains: string;
}

export function emptyAuthority(owner: string, type: AuthorityType, parent: string): AuthorityDraft {
  return {
    type,
    parent,
    name: "",
    commonName: "",
    owner,
    description: "",
    keyType: "ECCSECP384R1",
    validity: defaultValidity(),
    subject: emptySubject(),
    plugin: "",
    cabCompliant: false,
    defaultValidityDays: null,
    maxIssuanceDays: null,
    crlUrl: "",
    issuerUrl: "",
    permittedDomains: "",
  };
}

/** The request fields the form shows, in screen order. */
export const AUTHORITY_FIELDS = [
  "type",
  "parent",
  "name",
  "commonName",
  "owner",
  "description",
  "keyType",
  ...VALIDITY_FIELDS,
  ...SUBJECT_FIELDS,
  "defaultValidityDays",
  "maxIssuanceDays",
  "cabCompliant",
  "crlUrl",
  "issuerUrl",
  "permittedDomains",
  "plugin.slug",
  "plugin.pluginOptions",
];

const optional = (text: string) => (text.trim() === "" ? null : text.trim());

export function authorityRequest(draft: AuthorityDraft): Schemas["CreateAuthority"] {
  const domains = draft.permittedDomains.split(/[\s,]+/).filter((domain) => domain !== "");
  return {
    type: draft.type,
    parent: draft.type === "subca" && draft.parent !== "" ? { id: Number(draft.parent) } : null,
    name: draft.name.trim(),
    commonName: draft.commonName.trim(),
    owner: draft.owner.trim(),
    description: draft.description.trim(),
    keyType: draft.keyType,
    ...validityRequest(draft.validity),
    ...subjectRequest(draft.subject),
    plugin: draft.plugin ? { slug: draft.plugin } : null,
    cabCompliant: draft.cabCompliant,
    defaultValidityDays: draft.defaultValidityDays,
    maxIssuanceDays: draft.maxIssuanceDays,
    crlUrl: optional(draft.crlUrl),
    issuerUrl: optional(draft.issuerUrl),
    permittedDomains: domains.length > 0 ? domains : null,
  };
}
