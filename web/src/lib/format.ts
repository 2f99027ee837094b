// Dates as people read them, in UTC (certificates are valid in UTC everywhere).
export function date(value: string | null | undefined): string {
  if (!value) return "—";
  const parsed = new Date(value);
  return Number.isNaN(parsed.getTime()) ? value : parsed.toISOString().slice(0, 10);
}

/** A moment as people read it, to the minute, in UTC: `2025-05-04 13:07 UTC`. */
export function dateTime(value: string | null | undefined): string {
  if (!value) return "—";
  const parsed = new Date(value);
  return Number.isNaN(parsed.getTime())
    ? value
    : `${parsed.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** Days from now until `value` (negative when past). */
export function daysUntil(value: string | null | undefined): number | null {
  if (!value) return null;
  const parsed = new Date(value).getTime();
  return Number.isNaN(parsed) ? null : Math.floor((parsed - Date.now()) / 86_400_000);
}

/** Offers `text` as a file named `name`. */
export function download(name: string, text: string, type = "application/x-pem-file"): void {
  downloadBlob(name, new Blob([text], { type }));
}

/** Offers `blob` as a file named `name`. */
export function downloadBlob(name: string, blob: Blob): void {
  const url = URL.createObjectURL(blob);
  const anchor = document.createElement("a");
  anchor.href = url;
  anchor.download = name;
  anchor.click();
  URL.revokeObjectURL(url);
}
