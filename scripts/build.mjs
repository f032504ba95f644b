// Bundles the CLI (and the bench / soak runners) into CommonJS files under dist/.
// One bundled file starts several times faster than unbundled ESM (see README, Performance).
// Run by `prepare`, so `npm ci` leaves `npx luallm-agent` ready.
import { build } from "esbuild"
import { existsSync } from "node:fs"

const entries = {
  cli: "src/shell/main.ts",
  bench: "bench/main.ts",
  soak: "scripts/soak.ts"
}

await Promise.all(
  Object.entries(entries)
    .filter(([, file]) => existsSync(file))
    .map(([name, file]) =>
      build({
        entryPoints: [file],
        outfile: `dist/${name}.cjs`,
        bundle: true,
        platform: "node",
        format: "cjs",
        target: "node20",
        // QuickJS finds its .wasm next to its own files: load it from node_modules.
        external: ["quickjs-emscripten", "quickjs-emscripten-core", "@jitl/*"],
        // Sources use import.meta.url (to find the package root); give the bundle a real one.
        banner: { js: "const __import_meta_url = require('node:url').pathToFileURL(__filename).href;" },
        define: { "import.meta.url": "__import_meta_url" },
        sourcemap: "linked",
        logLevel: "warning"
      })
    )
)
