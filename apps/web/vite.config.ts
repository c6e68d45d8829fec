import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

export default defineConfig({
  plugins: [react()],
  server: {
    // The Director serves HTTPS with its own (self-signed) certificate; this dev server is the
    // browser's origin, so the proxy presents the Director's own origin to its cross-site check.
    proxy: {
      '/api': { target: 'https://127.0.0.1:8080', secure: false, changeOrigin: true, headers: { origin: 'https://127.0.0.1:8080' } },
      '/socket.io': { target: 'wss://127.0.0.1:8080', ws: true, secure: false, changeOrigin: true, headers: { origin: 'https://127.0.0.1:8080' } },
    },
  },
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true },
});
