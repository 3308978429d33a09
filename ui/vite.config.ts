import { defineConfig } from "vite";

// `npm run dev` serves the UI with hot reload and forwards the API to a running `hoist server`
// (HOIST_API, default http://127.0.0.1:7070), so the page talks to it as it does when embedded.
const api = process.env.HOIST_API ?? "http://127.0.0.1:7070";

export default defineConfig({
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    target: "es2022",
    // The server embeds dist/ and answers with a CSP that allows no inline script: Vite's
    // module-preload polyfill is part of the entry chunk, not an inline tag.
    assetsInlineLimit: 0,
    sourcemap: false,
    reportCompressedSize: true,
  },
  server: {
    proxy: {
      "/v1": { target: api, changeOrigin: false },
      "/openapi.json": { target: api },
    },
  },
});
