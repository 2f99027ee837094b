import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test, type Locator, type Page } from "@playwright/test";
import type { AxeResults } from "axe-core";

const password = process.env.LEMUR_PASSWORD ?? "";
const shots = process.env.LEMUR_SCREENSHOTS ?? "test-results/screens";
const work = mkdtempSync(join(tmpdir(), "lemur-ui-"));

// axe-core's own source, evaluated in the page through DevTools (which the page's CSP does not
// govern), so the page is checked as it runs under its real policy.
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core"), "utf8");

/** Everything the page did that the appliance forbids: CSP violations, other origins. */
function watch(page: Page, origin: string): string[] {
  const problems: string[] = [];
  page.on("console", (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) {
      problems.push(`CSP: ${message.text()}`);
    }
  });
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (url.protocol.startsWith("http") && url.origin !== origin) {
      problems.push(`request to another origin: ${request.url()}`);
    }
  });
  return problems;
}

/** axe-core's serious and critical violations on the page as it is now. */
async function accessibilityProblems(page: Page): Promise<string[]> {
  const loaded = await page.evaluate(() => "axe" in window);
  if (!loaded) await page.evaluate(axeSource);
  const results = await page.evaluate(() =>
    (window as unknown as { axe: { run: () => Promise<AxeResults> } }).axe.run(),
  );
  return results.violations
    .filter((violation) => violation.impact === "serious" || violation.impact === "critical")
    .map(
      (violation) =>
        `${violation.id} (${violation.impact}): ${violation.help}: ` +
        violation.nodes.map((node) => node.target.join(" ")).join(", "),
    );
}

/**
 * The screen as it is, at desktop and phone width: a screenshot of each, no serious or critical
 * accessibility violation at either (nor in the dark colour scheme), and nothing wider than a
 * phone's screen.
 */
async function screen(page: Page, name: string) {
  for (const [width, height, device] of [
    [1280, 800, "desktop"],
    [375, 812, "phone"],
  ] as const) {
    await page.setViewportSize({ width, height });
    expect(await accessibilityProblems(page), `axe on ${name} (${device})`).toEqual([]);
    const overflow = await page.evaluate(
      () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
    );
    expect(overflow, `${name} is wider than the ${device} screen`).toBeLessThanOrEqual(0);
    await page.screenshot({ path: `${shots}/${name}-${device}.png`, fullPage: true });
  }
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.emulateMedia({ colorScheme: "dark" });
  expect(await accessibilityProblems(page), `axe on ${name} (dark)`).toEqual([]);
  await page.emulateMedia({ colorScheme: "light" });
}

/** The text of a file the page offers for download when `click` is done. */
async function downloaded(page: Page, click: () => Promise<void>, name: string): Promise<string> {
  const [download] = await Promise.all([page.waitForEvent("download"), click()]);
  const text = readFileSync(await download.path(), "utf8");
  writeFileSync(join(work, name), text);
  return text;
}

function openssl(...args: string[]): string {
  return execFileSync("openssl", args, { cwd: work, encoding: "utf8" });
}

/**
 * `openssl req` with a new P-256 key in `key` for a name: a CSR (`-new`) or a self-signed
 * certificate (`-x509`) in `out`, valid for `name` as CN and DNS name.
 */
function opensslRequest(
  mode: "-new" | "-x509",
  name: string,
  key: string,
  out: string,
  ...rest: string[]
) {
  openssl(
    "req",
    mode,
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    key,
    "-subj",
    `/CN=${name}`,
    "-addext",
    `subjectAltName=DNS:${name}`,
    "-out",
    out,
    ...rest,
  );
}

/** A date `days` from today, as a date input takes it (UTC). */
function dayFromNow(days: number): string {
  return new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10);
}

async function signIn(page: Page) {
  await page.getByLabel("Username or email").fill("lemur");
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

test("every screen: sign in, dashboard, authorities, the issue wizard, CSRs, upload, search, sign out", async ({
  page,
  baseURL,
}) => {
  test.setTimeout(300_000);
  const problems = watch(page, new URL(baseURL ?? "").origin);

  await test.step("sign in from a deep link, refused once", async () => {
    await page.goto("/certificates?field=cn&q=lemur");
    await expect(page.getByRole("button", { name: "Sign in" })).toBeVisible();
    await screen(page, "login");
    await page.getByLabel("Username or email").fill("lemur");
    await page.getByLabel("Password").fill("not the password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByRole("alert")).toContainText("invalid username or password");
    await signIn(page);
  });

  const search = page.getByRole("searchbox", { name: "Search text" });
  const find = async (field: string, text: string) => {
    await page.getByLabel("Find by").selectOption(field);
    await search.fill(text);
    await page.getByRole("button", { name: "Search", exact: true }).click();
  };

  await test.step("the appliance's certificate, by CN and by DNS name; the back button", async () => {
    // The deep link kept its search: the appliance's own certificate, found by CN.
    await expect(page.getByRole("heading", { name: "Certificates" })).toBeVisible();
    await expect(search).toHaveValue("lemur");
    const row = page.getByRole("link", { name: "lemur.test" }).first();
    await expect(row).toBeVisible();
    await screen(page, "certificates");

    await find("san", "lemur.test");
    await expect(page).toHaveURL(/field=san&q=lemur\.test/);
    await expect(row).toBeVisible();
    await find("san", "nothing-here.example");
    await expect(page.getByText("No certificate matches")).toBeVisible();
    await screen(page, "certificates-none");
    await page.goBack();
    await expect(page).toHaveURL(/field=san&q=lemur\.test/);
    await expect(search).toHaveValue("lemur.test");

    await row.click();
    await expect(page.getByRole("heading", { name: "lemur.test" })).toBeVisible();
    await expect(page.getByText("127.0.0.1")).toBeVisible();
    const pem = await downloaded(
      page,
      () => page.getByRole("button", { name: "Download certificate" }).click(),
      "appliance.pem",
    );
    expect(pem).toMatch(/^-----BEGIN CERTIFICATE-----/);
    // The screenshot before the key is shown: artifacts hold no key.
    await screen(page, "certificate");
    await page.getByRole("button", { name: "Show private key" }).click();
    await expect(page.getByText("recorded in the audit log")).toBeVisible();
    await expect(page.getByLabel("Private key")).toContainText("PRIVATE KEY");
  });

  await test.step("the dashboard, before this test issues anything", async () => {
    await page.getByRole("link", { name: "Dashboard", exact: true }).click();
    await expect(page.getByRole("heading", { name: "Dashboard", level: 1 })).toBeVisible();
    const hsm = page.getByRole("listitem").filter({ hasText: "HSM token" });
    await expect(hsm).toContainText("OK");
    await expect(page.getByRole("listitem").filter({ hasText: "Entropy" })).toContainText("OK");
    // The token the daemon works in, and its session pool.
    await expect(page.getByRole("definition").filter({ hasText: "softhsm2" })).toContainText(
      "lemur",
    );
    await expect(page.getByRole("definition").filter({ hasText: "open of" })).toBeVisible();
  });

  const root = "ui-root";
  const sub = "ui-sub";

  await test.step("a root CA from the UI, refused once by name", async () => {
    await page.getByRole("link", { name: "Authorities", exact: true }).click();
    await expect(page.getByRole("cell", { name: "appliance", exact: true })).toBeVisible();
    await screen(page, "authorities");
    await page.getByRole("link", { name: "New authority" }).click();
    await expect(page.getByRole("heading", { name: "New authority" })).toBeVisible();
    await expect(page.getByLabel("Root CA")).toBeChecked();
    await screen(page, "authority-new");

    await page.getByRole("textbox", { name: "Name", exact: true }).fill("ui root!");
    await page.getByLabel("Common name").fill("UI Test Root CA");
    await page.getByLabel("Key type").selectOption("ECCPRIME256V1");
    await page.getByLabel("A number of years").check();
    await page.getByRole("spinbutton", { name: "Years" }).fill("5");
    await page.getByLabel("Longest validity (days)").fill("400");
    await page.getByRole("button", { name: "Create authority" }).click();
    // The daemon's message, next to the field it names, and that field focused.
    const name = page.getByRole("textbox", { name: "Name", exact: true });
    await expect(name).toHaveAccessibleDescription(/letters, digits/);
    await expect(name).toBeFocused();
    await expect(name).toHaveAttribute("aria-invalid", "true");
    await screen(page, "authority-new-refused");

    await name.fill(root);
    await page.getByRole("button", { name: "Create authority" }).click();
    await expect(page.getByRole("heading", { name: root, level: 1 })).toBeVisible();
    await expect(page.getByText("Root CA", { exact: true })).toBeVisible();
    await expect(page.getByText(/^pkcs11:/)).toBeVisible();
    await expect(page.getByText("400 days")).toBeVisible();
    const rootPem = await downloaded(
      page,
      () => page.getByRole("button", { name: "Download CA certificate" }).click(),
      "root.pem",
    );
    expect(openssl("x509", "-in", "root.pem", "-noout", "-subject")).toContain("UI Test Root CA");
    expect(rootPem).toMatch(/^-----BEGIN CERTIFICATE-----/);
    await screen(page, "authority-root");
  });

  await test.step("plugin options are rendered by type (a stand-in plugin list)", async () => {
    // The HSM issuer takes no options; a stand-in answer for the plugin list shows the form
    // renders every option type Lemur's plugins use.
    const isPlugins = (url: URL) => url.pathname === "/api/1/plugins";
    await page.route(isPlugins, (route) =>
      route.fulfill({
        json: {
          total: 1,
          items: [
            {
              slug: "stand-in-issuer",
              title: "Stand-in issuer",
              description: "Options of every type.",
              pluginOptions: [
                {
                  name: "region",
                  type: "str",
                  required: true,
                  helpMessage: "Where it runs.",
                  sensitive: false,
                },
                {
                  name: "apiKey",
                  type: "str",
                  required: true,
                  helpMessage: "Its key.",
                  sensitive: true,
                },
                {
                  name: "retries",
                  type: "int",
                  required: false,
                  helpMessage: "",
                  sensitive: false,
                  default: 3,
                },
                {
                  name: "staging",
                  type: "bool",
                  required: false,
                  helpMessage: "",
                  sensitive: false,
                  default: true,
                },
                {
                  name: "profile",
                  type: "select",
                  required: true,
                  helpMessage: "",
                  sensitive: false,
                  available: ["tls", "smime"],
                  default: "smime",
                },
                {
                  name: "template",
                  type: "textarea",
                  required: false,
                  helpMessage: "",
                  sensitive: false,
                },
              ],
            },
          ],
        },
      }),
    );
    await page.getByRole("link", { name: "Authorities", exact: true }).click();
    await page.getByRole("link", { name: "New authority" }).click();
    await expect(page.getByRole("textbox", { name: "region" })).toHaveAccessibleDescription(
      "Where it runs.",
    );
    await expect(page.getByLabel("apiKey")).toHaveAttribute("type", "password");
    await expect(page.getByRole("spinbutton", { name: "retries" })).toHaveValue("3");
    await expect(page.getByRole("checkbox", { name: "staging" })).toBeChecked();
    await expect(page.getByRole("combobox", { name: "profile" })).toHaveValue("smime");
    await expect(page.getByRole("textbox", { name: "template" })).toHaveJSProperty(
      "tagName",
      "TEXTAREA",
    );
    await expect(page.getByText("does not take plugin options")).toBeVisible();
    await expect(page.getByRole("button", { name: "Create authority" })).toBeDisabled();
    expect(await accessibilityProblems(page)).toEqual([]);
    await page.unroute(isPlugins);
  });

  await test.step("a sub-CA from the root's screen, refused once for outliving it", async () => {
    await page.getByRole("link", { name: "Authorities", exact: true }).click();
    await page.getByRole("link", { name: root }).click();
    await page.getByRole("link", { name: "Create a sub-CA under it" }).click();
    await expect(page.getByLabel("Subordinate CA")).toBeChecked();
    await expect(page.getByLabel("Parent authority")).toHaveValue(/\d+/);
    await page.getByRole("textbox", { name: "Name", exact: true }).fill(sub);
    await page.getByLabel("Common name").fill("UI Test Sub CA");
    await page.getByLabel("Key type").selectOption("ECCPRIME256V1");
    await page.getByLabel("Permitted domains").fill("example.test");
    await screen(page, "authority-new-subca");
    // Ten years by default, under a root of five: the daemon refuses, the form says where.
    await page.getByRole("button", { name: "Create authority" }).click();
    await expect(
      page.getByRole("group", { name: "Validity", exact: true }),
    ).toHaveAccessibleDescription(/inside the validity of parent authority ui-root/);
    await page.getByLabel("A number of years").check();
    await page.getByRole("spinbutton", { name: "Years" }).fill("3");
    await page.getByRole("button", { name: "Create authority" }).click();
    await expect(page.getByRole("heading", { name: sub, level: 1 })).toBeVisible();
    await expect(page.getByText("Subordinate CA of")).toBeVisible();
    await expect(page.getByRole("link", { name: root })).toBeVisible();
    await expect(page.getByText("only example.test and names under them")).toBeVisible();
    await screen(page, "authority-sub");
  });

  const issued = "www.example.test";

  await test.step("the wizard: a certificate with an HSM key, through every step", async () => {
    await page.getByRole("link", { name: "Issue from this authority" }).click();
    await expect(page.getByRole("heading", { name: "Issue a certificate" })).toBeVisible();
    await expect(page.getByLabel("Issuing authority")).toHaveValue(/\d+/);
    await expect(page.getByText("only example.test and names under them")).toBeVisible();
    await screen(page, "issue-1-authority");
    await page.getByRole("button", { name: "Next" }).click();

    await expect(page.getByRole("heading", { name: "Subject", level: 2 })).toBeFocused();
    await page.getByLabel("Common name").fill(issued);
    await page.getByLabel("Description").fill("Issued by the browser test");
    await screen(page, "issue-2-subject");
    await page.getByRole("button", { name: "Next" }).click();

    await page.getByRole("button", { name: "Add the common name" }).click();
    await page.getByRole("button", { name: "Add a name" }).click();
    await page.getByLabel("Name 2", { exact: true }).fill("api.other.test");
    await screen(page, "issue-3-names");
    await page.getByRole("button", { name: "Next" }).click();

    await expect(page.getByLabel("Generate a key in the HSM")).toBeChecked();
    await page.getByLabel("Key type").selectOption("ECCPRIME256V1");
    await screen(page, "issue-4-key");
    await page.getByRole("button", { name: "Next" }).click();

    await expect(page.getByText(/The authority's default \(\d+ days\)/)).toBeVisible();
    await screen(page, "issue-5-validity");
    await page.getByRole("button", { name: "Next" }).click();
    await expect(page.getByText("api.other.test")).toBeVisible();
    await screen(page, "issue-6-review");

    // A name outside the sub-CA's domains: the daemon refuses it, the wizard opens the step
    // that shows the names, with the message against them and the first one focused.
    await page.getByRole("button", { name: "Issue certificate" }).click();
    await expect(page.getByLabel("Name 1", { exact: true })).toBeFocused();
    const second = page.getByLabel("Name 2", { exact: true });
    await expect(second).toHaveAccessibleDescription(/outside the domains authority ui-sub/);
    await expect(page.getByRole("button", { name: /Names \(to fix\)/ })).toBeVisible();
    await screen(page, "issue-refused");
    await second.fill("api.example.test");
    await page.getByRole("button", { name: /Review/ }).click();

    // The session ends just before the request: sign in again, and the request goes through.
    await page.context().clearCookies();
    await page.getByRole("button", { name: "Issue certificate" }).click();
    await expect(page.getByText("Your session ended")).toBeVisible();
    await expect(page.getByLabel("Username or email")).toHaveValue("lemur");
    await screen(page, "session-ended");
    await signIn(page);
    await expect(page.getByRole("heading", { name: issued, level: 1 })).toBeVisible();
    await expect(page.getByText("api.example.test")).toBeVisible();
    await expect(page.getByRole("link", { name: sub })).toBeVisible();
  });

  await test.step("its PEM and chain, verified with openssl against the root", async () => {
    await downloaded(
      page,
      () => page.getByRole("button", { name: "Download certificate" }).click(),
      "issued.pem",
    );
    await downloaded(
      page,
      () => page.getByRole("button", { name: "Download chain" }).click(),
      "issued-chain.pem",
    );
    expect(
      openssl("verify", "-CAfile", "root.pem", "-untrusted", "issued-chain.pem", "issued.pem"),
    ).toContain("issued.pem: OK");
    const names = openssl("x509", "-in", "issued.pem", "-noout", "-ext", "subjectAltName");
    expect(names).toContain("DNS:www.example.test");
    expect(names).toContain("DNS:api.example.test");
    await screen(page, "certificate-issued");
    await page.getByRole("button", { name: "Show private key" }).click();
    await expect(page.getByLabel("Private key")).toContainText("PRIVATE KEY");
  });

  const fromCsr = "csr.example.test";

  await test.step("the wizard from a CSR, with dates", async () => {
    opensslRequest("-new", fromCsr, "csr.key", "request.csr");
    await page.getByRole("link", { name: "Issue", exact: true }).click();
    await page.getByLabel("Issuing authority").selectOption({ label: `${sub} (UI Test Sub CA)` });
    await page.getByRole("button", { name: "Next" }).click();
    // No common name: the CSR's is taken.
    await page.getByRole("button", { name: "Next" }).click();
    await page.getByRole("button", { name: "Next" }).click();
    await page.getByLabel("Use a certificate signing request (CSR)").check();
    await page.getByLabel("Or read it from a file").setInputFiles(join(work, "request.csr"));
    await expect(page.getByLabel("CSR (PEM)")).toHaveValue(/BEGIN CERTIFICATE REQUEST/);
    await screen(page, "issue-4-csr");
    await page.getByRole("button", { name: "Next" }).click();
    await page.getByLabel("Dates", { exact: true }).check();
    await page.getByLabel("End (UTC)").fill(dayFromNow(60));
    await screen(page, "issue-5-dates");
    await page.getByRole("button", { name: "Next" }).click();
    await expect(page.getByText("from the CSR").first()).toBeVisible();
    await page.getByRole("button", { name: "Issue certificate" }).click();
    await expect(page.getByRole("heading", { name: fromCsr, level: 1 })).toBeVisible();
    // The key stayed with whoever made the CSR.
    await expect(page.getByRole("button", { name: "Show private key" })).toHaveCount(0);
    await downloaded(
      page,
      () => page.getByRole("button", { name: "Download certificate" }).click(),
      "from-csr.pem",
    );
    const publicKey = (kind: string, file: string) =>
      openssl(kind, "-in", file, "-noout", "-pubkey").trim();
    expect(publicKey("x509", "from-csr.pem")).toBe(publicKey("req", "request.csr"));
  });

  await test.step("the issued certificate found by CN and by DNS name", async () => {
    await page.getByRole("link", { name: "Certificates", exact: true }).click();
    await find("cn", issued);
    await expect(page.getByRole("link", { name: issued })).toBeVisible();
    await find("san", "api.example.test");
    await expect(page.getByRole("link", { name: issued })).toBeVisible();
    await expect(page.getByRole("link", { name: fromCsr })).toHaveCount(0);
  });

  const uploaded = "uploaded.example.test";

  await test.step("upload a certificate made elsewhere, refused once", async () => {
    opensslRequest("-x509", uploaded, "uploaded.key", "uploaded.pem", "-days", "20");
    await page.getByRole("link", { name: "Upload", exact: true }).click();
    await expect(page.getByRole("heading", { name: "Upload a certificate" })).toBeVisible();
    await screen(page, "upload");
    const body = page.getByLabel("Certificate (PEM)");
    await body.fill("not a certificate");
    await page.getByRole("button", { name: "Upload", exact: true }).click();
    await expect(body).toBeFocused();
    await expect(body).toHaveAccessibleDescription(/./);
    await screen(page, "upload-refused");
    await body.fill(readFileSync(join(work, "uploaded.pem"), "utf8"));
    // Another key than the certificate's: refused next to the key.
    await page.getByLabel("Private key (PEM)").fill(readFileSync(join(work, "csr.key"), "utf8"));
    await page.getByRole("button", { name: "Upload", exact: true }).click();
    await expect(page.getByLabel("Private key (PEM)")).toHaveAccessibleDescription(
      /does not match/,
    );
    await page
      .getByLabel("Private key (PEM)")
      .fill(readFileSync(join(work, "uploaded.key"), "utf8"));
    await page.getByLabel("Description").fill("Made by openssl in the browser test");
    await page.getByRole("button", { name: "Upload", exact: true }).click();
    await expect(page.getByRole("heading", { name: uploaded, level: 1 })).toBeVisible();
    await expect(page.getByText("(uploaded)")).toBeVisible();
    await expect(page.getByRole("button", { name: "Show private key" })).toBeVisible();
  });

  await test.step("a reload on a deep link keeps the screen", async () => {
    const address = page.url();
    await page.reload();
    await expect(page.getByRole("heading", { name: uploaded, level: 1 })).toBeVisible();
    expect(page.url()).toBe(address);
    await page.getByRole("link", { name: "Authorities", exact: true }).click();
    await page.getByRole("link", { name: sub }).click();
    await page.reload();
    await expect(page.getByRole("heading", { name: sub, level: 1 })).toBeVisible();
  });

  const offline = "ui-offline";
  const ordered = "ordered.example.test";

  await test.step("an offline CA: registered, ordered from, its signature delivered", async () => {
    // openssl plays the CA whose key the appliance never holds.
    openssl(
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      "offline.key",
      "-subj",
      "/CN=UI Offline CA",
      "-days",
      "30",
      "-out",
      "offline.pem",
    );
    await page.getByRole("link", { name: "Authorities", exact: true }).click();
    await page.getByRole("link", { name: "New authority" }).click();
    await page.getByLabel("Plugin").selectOption({ label: "Offline Issuer" });
    await expect(page.getByLabel("Key type")).toBeHidden();
    await page.getByRole("textbox", { name: "Name", exact: true }).fill(offline);
    await page
      .getByLabel("CA certificate (PEM)")
      .fill(readFileSync(join(work, "offline.pem"), "utf8"));
    await screen(page, "authority-new-offline");
    await page.getByRole("button", { name: "Create authority" }).click();
    await expect(page.getByRole("heading", { name: offline, level: 1 })).toBeVisible();
    await expect(page.getByText("none: the key stays with the CA")).toBeVisible();

    await page.getByRole("link", { name: "Issue from this authority" }).click();
    await page.getByRole("button", { name: "Next" }).click();
    await page.getByLabel("Common name").fill(ordered);
    await page.getByRole("button", { name: "Next" }).click();
    await page.getByRole("button", { name: "Add the common name" }).click();
    await page.getByRole("button", { name: "Next" }).click();
    await page.getByLabel("Key type").selectOption("ECCPRIME256V1");
    await page.getByRole("button", { name: "Next" }).click();
    await page.getByRole("button", { name: "Next" }).click();
    await page.getByRole("button", { name: "Issue certificate" }).click();

    // An order, not a certificate: its request is taken to the CA.
    await expect(page.getByRole("heading", { name: ordered, level: 1 })).toBeVisible();
    await expect(page.getByText("Waiting for the CA")).toBeVisible();
    await screen(page, "pending-certificate");
    await downloaded(
      page,
      () => page.getByRole("button", { name: "Download request (CSR)" }).click(),
      "order.csr",
    );
    writeFileSync(
      join(work, "leaf.cnf"),
      "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n",
    );
    openssl(
      "x509",
      "-req",
      "-in",
      "order.csr",
      "-CA",
      "offline.pem",
      "-CAkey",
      "offline.key",
      "-CAcreateserial",
      "-days",
      "20",
      "-copy_extensions",
      "copy",
      "-extfile",
      "leaf.cnf",
      "-out",
      "ordered.pem",
    );
    await page.getByRole("link", { name: "Pending", exact: true }).click();
    await expect(page.getByRole("heading", { name: "Pending certificates" })).toBeVisible();
    await screen(page, "pending");
    await page.getByRole("link", { name: ordered }).click();

    // Something else than the CA's answer is refused next to the field; then the answer.
    const body = page.getByLabel("Certificate (PEM)");
    await body.fill(readFileSync(join(work, "offline.pem"), "utf8"));
    await page.getByRole("button", { name: "Deliver" }).click();
    await expect(body).toHaveAccessibleDescription(/another key/);
    await body.fill(readFileSync(join(work, "ordered.pem"), "utf8"));
    await page.getByRole("button", { name: "Deliver" }).click();
    await expect(page.getByRole("heading", { name: ordered, level: 1 })).toBeVisible();
    await expect(page.getByRole("link", { name: offline })).toBeVisible();
    // The key generated for the order came with it.
    await expect(page.getByRole("button", { name: "Show private key" })).toBeVisible();
    await page.getByRole("link", { name: "Pending", exact: true }).click();
    await expect(page.getByText("No certificate is waiting for its CA.")).toBeVisible();
  });

  await test.step("a session that ends while reading: sign in, and the screen loads", async () => {
    await page.context().clearCookies();
    await page.getByRole("link", { name: "Authorities", exact: true }).click();
    await expect(page.getByText("Your session ended")).toBeVisible();
    await signIn(page);
    await expect(page.getByRole("heading", { name: "Authorities", level: 1 })).toBeVisible();
    await expect(page.getByRole("link", { name: sub })).toBeVisible();
  });

  await test.step("the dashboard counts what was issued", async () => {
    await page.getByRole("link", { name: "Dashboard", exact: true }).click();
    const count = (locator: Locator) =>
      expect.poll(async () => Number(await locator.textContent({ timeout: 5_000 })));
    const within = (days: number) => page.locator(`dt:text-is("Within ${days} days") + dd`);
    // The upload ends in 20 days, the CSR's certificate in 60.
    await count(within(30)).toBeGreaterThanOrEqual(1);
    await count(within(90)).toBeGreaterThanOrEqual(2);
    const issuance = page.getByRole("figure", { name: /issued per day/ });
    await expect(issuance.getByText(/^[1-9]\d* in all$/)).toBeVisible();
    const expirations = page.getByRole("figure", { name: /expiring per week/ });
    await expect(expirations.getByText(/^[1-9]\d* in all$/)).toBeVisible();
    await issuance.getByText("Figures").click();
    // Today's row, the last: the root, the sub-CA and the two certificates issued above.
    await count(issuance.getByRole("row").last().getByRole("cell").last()).toBeGreaterThanOrEqual(
      4,
    );
    await expect(page.locator(".chart canvas").first()).toBeVisible();
    await screen(page, "dashboard");
  });

  await test.step("the appliance screen: a backup, refused off the appliance", async () => {
    await page.getByRole("link", { name: "Appliance", exact: true }).click();
    await expect(page.getByRole("heading", { name: "Appliance", level: 1 })).toBeVisible();
    const passphrase = page.getByRole("textbox", { name: "Passphrase", exact: true });
    await passphrase.fill("too short");
    await page.getByRole("button", { name: "Download a backup" }).click();
    await expect(passphrase).toHaveAccessibleDescription(/at least 12/);
    await passphrase.fill("a passphrase long enough");
    await page.getByRole("textbox", { name: "Passphrase again" }).fill("a passphrase long enough");
    await page.getByRole("button", { name: "Download a backup" }).click();
    // The test daemon is no appliance: the daemon says so, and what to use instead.
    await expect(page.getByText(/configuration has no \[backups\]/)).toBeVisible();
    await screen(page, "appliance");
  });

  await test.step("the appliance screen: a restore, refused off the appliance", async () => {
    const restore = page.getByRole("region", { name: "Restore", exact: true });
    const archive = restore.getByLabel("Backup archive");
    const passphrase = restore.getByLabel("Backup passphrase");
    const understood = restore.getByLabel(
      "I understand this replaces everything on this appliance",
    );
    const button = restore.getByRole("button", { name: "Restore", exact: true });
    // Nothing chosen, typed or ticked: each field says so, and the first one takes the focus.
    await button.click();
    await expect(archive).toHaveAccessibleDescription(/Choose the backup archive/);
    await expect(passphrase).toHaveAccessibleDescription(/Enter the passphrase/);
    await expect(understood).toHaveAccessibleDescription(/Tick this to confirm/);
    await expect(archive).toBeFocused();
    await archive.setInputFiles({
      name: "backup.lemur",
      mimeType: "application/octet-stream",
      buffer: Buffer.from("not a backup"),
    });
    await passphrase.fill("a passphrase long enough");
    await understood.check();
    await button.click();
    // The test daemon is no appliance: the daemon says so, above the form's button.
    await expect(restore.getByRole("alert")).toHaveText(/configuration has no \[backups\]/);
    await expect(archive).not.toHaveAttribute("aria-invalid");
    await expect(button).toBeEnabled();
    // Nor has it a last restore to show: its 409 shows nothing, not an error.
    await expect(restore.getByRole("heading", { name: "Last restore" })).toHaveCount(0);
    await expect(restore.locator(".error")).toHaveCount(1);
    await screen(page, "appliance-restore");
  });

  await test.step("the appliance screen: an upgrade, refused off the appliance", async () => {
    const upgrade = page.getByRole("region", { name: "Upgrade", exact: true });
    const bundle = upgrade.getByLabel("Release bundle");
    const button = upgrade.getByRole("button", { name: "Upgrade", exact: true });
    // The test daemon is no appliance: its 409 says so in a line, and nothing is under way.
    await expect(upgrade.getByText(/Upgrades are for the appliance image/)).toBeVisible();
    await expect(upgrade.getByRole("heading", { name: "Last upgrade" })).toHaveCount(0);
    // No bundle chosen: the field says so, and takes the focus.
    await button.click();
    await expect(bundle).toHaveAccessibleDescription(/Choose the release bundle/);
    await expect(bundle).toBeFocused();
    await bundle.setInputFiles({
      name: "lemur-hsm-9.9.9.upgrade",
      mimeType: "application/octet-stream",
      buffer: Buffer.from("not a bundle"),
    });
    await button.click();
    // The daemon refuses it before reading it, above the form's button.
    await expect(upgrade.getByRole("alert")).toHaveText(/takes no upgrades/);
    await expect(bundle).not.toHaveAttribute("aria-invalid");
    await expect(button).toBeEnabled();
    await expect(upgrade.getByRole("status")).toHaveCount(0);
    await screen(page, "appliance-upgrade");
  });

  await test.step("a page that does not exist", async () => {
    await page.goto("/no/such/page");
    await expect(page.getByRole("heading", { name: "Not found" })).toBeVisible();
    await screen(page, "not-found");
  });

  await test.step("log out; signing in at the root lands on the dashboard", async () => {
    await page.getByRole("button", { name: "Log out" }).click();
    await expect(page.getByRole("button", { name: "Sign in" })).toBeVisible();
    await signIn(page);
    await expect(page.getByRole("heading", { name: "Dashboard", level: 1 })).toBeVisible();
    await expect(page).toHaveURL(/\/dashboard$/);
    // Leaving at once: the session still ended on the daemon, so a deep link asks to sign in.
    await page.getByRole("button", { name: "Log out" }).click();
    await page.goto("/certificates");
    await expect(page.getByRole("button", { name: "Sign in" })).toBeVisible();
  });

  expect(problems).toEqual([]);
});
