/** Bundles a test's own sandbox worker entry next to the real one, the way scripts/build.mjs does. */
import { buildSync } from "esbuild"
import { join } from "node:path"

const root = join(import.meta.dirname, "..", "..")

/** Bundles `entry` (relative to the package root) into dist/test/<name>.cjs and returns its path. */
export const buildWorker = (entry: string, name: string): string => {
  const outfile = join(root, "dist", "test", `${name}.cjs`)
  buildSync({
    entryPoints: [join(root, entry)],
    outfile,
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node20",
    external: ["quickjs-emscripten", "quickjs-emscripten-core", "@jitl/*"],
    supported: { "dynamic-import": false },
    logLevel: "warning"
  })
  return outfile
}
