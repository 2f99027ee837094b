import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// Static files for nginx (and `lemur dev`): hashed assets under /assets, which nginx caches for a
// year; no inline script or style, so the appliance's Content-Security-Policy holds.
export default defineConfig({
  plugins: [svelte()],
  build: {
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: "es2022",
  },
  server: {
    // `npm run dev` against `./dev run`: the API on the same origin, as nginx gives it. Its
    // certificate comes from the dev CA, which Node does not know; the hop is loopback only.
    proxy: { "/api": { target: "https://127.0.0.1:8443", secure: false } },
  },
});
