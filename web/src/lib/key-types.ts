// The key types the daemon generates in the HSM, by Lemur's names. The API does not list them
// (its refusal of another names these), so they are kept here.
export const KEY_TYPES = [
  { value: "ECCPRIME256V1", label: "ECDSA P-256 (ECCPRIME256V1)" },
  { value: "ECCSECP384R1", label: "ECDSA P-384 (ECCSECP384R1)" },
  { value: "RSA2048", label: "RSA 2048 (RSA2048)" },
  { value: "RSA3072", label: "RSA 3072 (RSA3072)" },
  { value: "RSA4096", label: "RSA 4096 (RSA4096)" },
] as const;
