import { defineConfig } from "vitest/config";

// Fixed file names: kefu embeds dist/ in its binary by these names (api/src/desk.rs), so
// nothing is loaded from another host and the server needs no node at run time.
export default defineConfig({
  base: "/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    rollupOptions: {
      output: {
        entryFileNames: "assets/desk.js",
        chunkFileNames: "assets/desk-[name].js",
        assetFileNames: "assets/desk[extname]",
      },
    },
  },
  // The views' component tests: preact rendering into happy-dom, no browser.
  test: {
    include: ["tests/**/*.test.tsx"],
    environment: "happy-dom",
  },
  server: {
    // `npm run dev` against a local `kefu serve`.
    proxy: {
      "/graphql": { target: "http://127.0.0.1:8080", ws: true },
    },
  },
});
