import { readFileSync } from "node:fs";
import { expect, test, type Page } from "@playwright/test";

const password = process.env.LEMUR_PASSWORD ?? "";
const shots = process.env.LEMUR_SCREENSHOTS ?? "test-results/screens";

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

async function screenshots(page: Page, name: string) {
  for (const [width, height, device] of [
    [1280, 800, "desktop"],
    [390, 844, "phone"],
  ] as const) {
    await page.setViewportSize({ width, height });
    await page.screenshot({ path: `${shots}/${name}-${device}.png`, fullPage: true });
  }
  await page.setViewportSize({ width: 1280, height: 800 });
}

test("sign in, find, read and download a certificate, view its key, reload, sign out", async ({
  page,
  baseURL,
}) => {
  const problems = watch(page, new URL(baseURL ?? "").origin);

  await page.goto("/certificates?field=cn&q=lemur");
  await expect(page.getByRole("button", { name: "Sign in" })).toBeVisible();
  await screenshots(page, "login");
  await page.getByLabel("Username or email").fill("lemur");
  await page.getByLabel("Password").fill("not the password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("alert")).toContainText("invalid username or password");
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();

  // The deep link kept its search: the appliance's own certificate, found by CN.
  await expect(page.getByRole("heading", { name: "Certificates" })).toBeVisible();
  await expect(page.getByRole("searchbox", { name: "Search text" })).toHaveValue("lemur");
  const row = page.getByRole("link", { name: "lemur.test" }).first();
  await expect(row).toBeVisible();
  await screenshots(page, "certificates");

  // By DNS name, and nothing for a name no certificate has; the back button returns.
  const search = page.getByRole("searchbox", { name: "Search text" });
  await page.getByLabel("Find by").selectOption("san");
  await search.fill("lemur.test");
  await page.getByRole("button", { name: "Search", exact: true }).click();
  await expect(page).toHaveURL(/field=san&q=lemur\.test/);
  await expect(row).toBeVisible();
  await search.fill("nothing-here.example");
  await page.getByRole("button", { name: "Search", exact: true }).click();
  await expect(page.getByText("No certificate matches")).toBeVisible();
  await page.goBack();
  await expect(page).toHaveURL(/field=san&q=lemur\.test/);
  await expect(search).toHaveValue("lemur.test");

  await row.click();
  await expect(page.getByRole("heading", { name: "lemur.test" })).toBeVisible();
  await expect(page.getByText("127.0.0.1")).toBeVisible();
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "Download certificate" }).click(),
  ]);
  const pem = readFileSync(await download.path(), "utf8");
  expect(pem).toMatch(/^-----BEGIN CERTIFICATE-----/);

  // The screenshot before the key is shown: artifacts hold no key.
  await screenshots(page, "certificate");
  await page.getByRole("button", { name: "Show private key" }).click();
  await expect(page.getByText("recorded in the audit log")).toBeVisible();
  await expect(page.getByLabel("Private key")).toContainText("PRIVATE KEY");

  // A reload on the deep link: still signed in (the cookie), same screen.
  await page.reload();
  await expect(page.getByRole("heading", { name: "lemur.test" })).toBeVisible();

  await page.getByRole("link", { name: "Authorities" }).click();
  await expect(page.getByRole("cell", { name: "appliance", exact: true })).toBeVisible();
  await screenshots(page, "authorities");

  await page.getByRole("button", { name: "Log out" }).click();
  await expect(page.getByRole("button", { name: "Sign in" })).toBeVisible();
  await page.goto("/certificates");
  await expect(page.getByRole("button", { name: "Sign in" })).toBeVisible();

  expect(problems).toEqual([]);
});
