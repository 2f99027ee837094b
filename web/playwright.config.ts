import { defineConfig } from "@playwright/test";

// Run by the daemon's integration tests (daemon/lemur/tests/daemon/web.rs), which start the real
// daemon behind the real nginx and pass its address and the admin's password. Debian's Chromium,
// never a downloaded browser.
export default defineConfig({
  testDir: "tests",
  outputDir: "test-results",
  reporter: "list",
  workers: 1,
  timeout: 60_000,
  use: {
    baseURL: process.env.LEMUR_URL,
    // A step that cannot happen fails in seconds, not at the end of the whole test's time.
    actionTimeout: 15_000,
    // The daemon's own CA issued nginx's certificate; TLS itself is testssl.sh's to judge.
    ignoreHTTPSErrors: true,
    launchOptions: {
      executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    },
  },
});
