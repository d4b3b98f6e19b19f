import tailwindcss from "@tailwindcss/vite";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The sandbox sets HOST and PORT; the preview is reached through builder's gateway,
// so any host name is accepted.
export default defineConfig({
  plugins: [react(), tailwindcss()],
  server: {
    host: process.env.HOST ?? "127.0.0.1",
    port: Number(process.env.PORT ?? 5173),
    strictPort: true,
    allowedHosts: true,
  },
});
