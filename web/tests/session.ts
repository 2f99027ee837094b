import { expect, type Page } from "@playwright/test";

/** Signs in through the API the UI uses (the session cookie), not through the form. */
export async function signIn(page: Page) {
  await page.goto("/");
  const status = await page.evaluate(async (password) => {
    const response = await fetch("/api/1/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Requested-With": "lemur-web" },
      body: JSON.stringify({ username: "lemur", password }),
    });
    return response.status;
  }, process.env.LEMUR_PASSWORD ?? "");
  expect(status).toBe(200);
}
