import { defineConfig } from "astro/config";

// The sandbox sets HOST and PORT; the preview is reached through builder's gateway,
// so any host name is accepted.
export default defineConfig({
  server: {
    host: process.env.HOST ?? "127.0.0.1",
    port: Number(process.env.PORT ?? 4321),
    allowedHosts: true,
  },
  vite: { server: { strictPort: true } },
  telemetry: false,
});
