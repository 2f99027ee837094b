// The screens and their addresses, in one place: the app picks a screen from the path, and links
// are built here rather than spelt out in each screen.

export type Route =
  | { screen: "dashboard" }
  | { screen: "certificates" }
  | { screen: "certificate"; id: number }
  | { screen: "issue" }
  | { screen: "upload" }
  | { screen: "pending" }
  | { screen: "pendingCertificate"; id: number }
  | { screen: "authorities" }
  | { screen: "authority"; id: number }
  | { screen: "newAuthority" }
  | { screen: "appliance" }
  | { screen: "notFound" };

export const paths = {
  dashboard: "/dashboard",
  certificates: "/certificates",
  certificate: (id: number) => `/certificates/${id}`,
  issue: "/certificates/new",
  upload: "/certificates/upload",
  pending: "/pending",
  pendingCertificate: (id: number) => `/pending/${id}`,
  authorities: "/authorities",
  authority: (id: number) => `/authorities/${id}`,
  newAuthority: "/authorities/new",
  appliance: "/appliance",
} as const;

/** The screen at `path` (`/` is the dashboard's: the landing screen). */
export function route(path: string): Route {
  const trimmed = path.length > 1 ? path.replace(/\/+$/, "") : path;
  switch (trimmed) {
    case "/":
    case paths.dashboard:
      return { screen: "dashboard" };
    case paths.certificates:
      return { screen: "certificates" };
    case paths.issue:
      return { screen: "issue" };
    case paths.upload:
      return { screen: "upload" };
    case paths.pending:
      return { screen: "pending" };
    case paths.authorities:
      return { screen: "authorities" };
    case paths.newAuthority:
      return { screen: "newAuthority" };
    case paths.appliance:
      return { screen: "appliance" };
  }
  const certificate = trimmed.match(/^\/certificates\/(\d+)$/)?.[1];
  if (certificate) return { screen: "certificate", id: Number(certificate) };
  const pending = trimmed.match(/^\/pending\/(\d+)$/)?.[1];
  if (pending) return { screen: "pendingCertificate", id: Number(pending) };
  const authority = trimmed.match(/^\/authorities\/(\d+)$/)?.[1];
  if (authority) return { screen: "authority", id: Number(authority) };
  return { screen: "notFound" };
}

/** The main navigation's entry for a screen, so detail screens light up their list's link. */
export function section(screen: Route["screen"]): string | null {
  switch (screen) {
    case "dashboard":
      return paths.dashboard;
    case "certificates":
    case "certificate":
      return paths.certificates;
    case "issue":
      return paths.issue;
    case "upload":
      return paths.upload;
    case "pending":
    case "pendingCertificate":
      return paths.pending;
    case "authorities":
    case "authority":
    case "newAuthority":
      return paths.authorities;
    case "appliance":
      return paths.appliance;
    case "notFound":
      return null;
  }
}
