/**
 * Bundles a test's own sandbox worker entry the way scripts/build.mjs bundles the real one, into
 * node_modules/.cache (never dist/, which is what the package ships), where its external
 * packages still resolve from the project's node_modules.
 */
import { buildSync } from "esbuild"
import { join } from "node:path"

const root = join(import.meta.dirname, "..", "..")

/** Bundles `entry` (relative to the package root) into node_modules/.cache/luallm-agent-test/<name>.cjs and returns its path. */
export const buildWorker = (entry: string, name: string): string => {
  const outfile = join(root, "node_modules", ".cache", "luallm-agent-test", `${name}.cjs`)
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
