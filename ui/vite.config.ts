import { defineConfig, type ProxyOptions } from "vite";

// `npm run dev` serves the UI with hot reload and forwards the API to a running `hoist server`
// (HOIST_API, default http://127.0.0.1:7070), so the page talks to it as it does when embedded.
const api = process.env.HOIST_API ?? "http://127.0.0.1:7070";

// A stopped server answers 502, as a reverse proxy would (Vite's default is a 500), so the page
// shows "Cannot reach the Hoist server" in development too.
const toApi: ProxyOptions = {
  target: api,
  changeOrigin: false,
  configure: (proxy) =>
    proxy.on("error", (_err, _req, res) => {
      if ("writeHead" in res && !res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
      res.end("the Hoist server does not answer");
    }),
};

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
    proxy: { "/v1": toApi, "/openapi.json": toApi },
  },
  // `vite preview` (the built dist/) talks to the same server.
  preview: {
    proxy: { "/v1": toApi, "/openapi.json": toApi },
  },
});
