// Subject alternative names as a request sends them (`extensions.subAltNames.names`).

export const NAME_TYPES = [
  { value: "DNSName", label: "DNS name" },
  { value: "IPAddress", label: "IP address" },
  { value: "rfc822Name", label: "Email address" },
  { value: "uniformResourceIdentifier", label: "URI" },
] as const;

export type NameType = (typeof NAME_TYPES)[number]["value"];

export interface AltName {
  nameType: NameType;
  value: string;
}

/** The label of a name type, for reading back. */
export function nameTypeLabel(nameType: string): string {
  return NAME_TYPES.find((type) => type.value === nameType)?.label ?? nameType;
}

/** The names that were filled in, trimmed. */
export function filledNames(names: readonly AltName[]): AltName[] {
  return names
    .map((name) => ({ nameType: name.nameType, value: name.value.trim() }))
    .filter((name) => name.value !== "");
}
