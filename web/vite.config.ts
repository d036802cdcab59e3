/// <reference types="vitest/config" />
// Vite builds the dashboard into dist/, which the control plane embeds and
// serves itself. `npm run dev` proxies the API (and its WebSocket) to a
// control plane on 127.0.0.1:8080.
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

const target = process.env.SOVEREIGN_API ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    // Everything is bundled: the dashboard must work air-gapped.
    assetsInlineLimit: 4096,
    chunkSizeWarningLimit: 400,
  },
  server: {
    host: "127.0.0.1",
    port: 5173,
    proxy: {
      "/api": { target, changeOrigin: false, ws: true },
    },
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
    setupFiles: ["src/test/setup.ts"],
    restoreMocks: true,
  },
});
