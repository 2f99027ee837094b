// The "new authority" form's draft and the request it makes (`POST /authorities`): a root, or a
// sub-CA under a parent, its key generated in the HSM; or, with the offline issuer, a CA whose
// key is elsewhere, registered by its certificate.
import type { Schemas } from "./api";
import { emptySubject, SUBJECT_FIELDS, subjectRequest, type SubjectDraft } from "./subject";
import { defaultValidity, VALIDITY_FIELDS, validityRequest, type Validity } from "./validity";

export type AuthorityType = "root" | "subca";

/** The issuer whose authorities are registered by their certificate, their key elsewhere. */
export const OFFLINE_ISSUER = "offline-issuer";

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
  /** The CA certificate of an offline authority, PEM. */
  body: string;
  /** Its issuers, PEM, for a CA that is not a root. */
  chain: string;
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
    body: "",
    chain: "",
  };
}

/** The request fields the form shows, in screen order. */
export const AUTHORITY_FIELDS = [
  "plugin.slug",
  "plugin.pluginOptions",
  "body",
  "chain",
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
];

const optional = (text: string) => (text.trim() === "" ? null : text.trim());

export function authorityRequest(draft: AuthorityDraft): Schemas["CreateAuthority"] {
  const domains = draft.permittedDomains.split(/[\s,]+/).filter((domain) => domain !== "");
  const offline = draft.plugin === OFFLINE_ISSUER;
  return {
    body: offline ? draft.body : null,
    chain: offline ? optional(draft.chain) : null,
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
