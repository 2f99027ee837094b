import { test, type Page } from "@playwright/test";
import { signIn } from "./session";

// The certificates screen on a big inventory, timed in the browser: run by the inventory
// benchmark (daemon/lemur/benches/inventory.rs) once it has built its million certificates,
// which prints these figures beside their targets. Skipped in the ordinary test run.
const inventory = Number(process.env.LEMUR_BENCH_INVENTORY ?? "0");
const samples = Number(process.env.LEMUR_BENCH_SAMPLES ?? "10");

test.skip(!inventory, "run by the inventory benchmark (LEMUR_BENCH_INVENTORY)");

/**
 * The list is shown: a count, not "Loading…", and a first row whose common name holds `term`.
 * Checked at every animation frame (an `expect` retries with growing pauses, which would be
 * timed too).
 */
async function listed(page: Page, term = "") {
  await page.waitForFunction(
    (term) => {
      const summary = document.querySelector("p.summary")?.textContent ?? "";
      const row = document.querySelector("table tbody tr")?.textContent ?? "";
      return /^\s*[\d,]+ certificates?/.test(summary) && row.includes(term);
    },
    term,
    { polling: "raf" },
  );
}

function report(what: string, times: number[]) {
  times.sort((a, b) => a - b);
  const at = (p: number) => times[Math.min(times.length - 1, Math.floor((times.length * p) / 100))];
  // One line per figure, which the benchmark reads.
  console.log(`LEMUR_FIGURE ${what} p50=${at(50)} max=${at(100)} samples=${times.length}`);
}

test("the certificates screen on a big inventory", async ({ page }) => {
  test.setTimeout(120_000 + samples * 10_000);
  await signIn(page);
  const firstPage: number[] = [];
  for (let i = 0; i < samples; i++) {
    const started = performance.now();
    await page.goto("/certificates");
    await listed(page);
    firstPage.push(Math.round(performance.now() - started));
  }
  report("first_page", firstPage);

  const filterChange: number[] = [];
  const search = page.getByRole("searchbox", { name: "Search text" });
  for (let i = 0; i < samples; i++) {
    const term = i % 2 === 0 ? "foo" : "team07";
    await search.fill(term);
    const started = performance.now();
    await search.press("Enter");
    await listed(page, term);
    filterChange.push(Math.round(performance.now() - started));
  }
  report("filter_change", filterChange);
});
