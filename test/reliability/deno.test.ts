/**
 * Deno compatibility, checked by Deno itself: `deno check` (the `deno` npm package ships the
 * binary) type-checks the pure core and the library entry against Deno's own globals, with
 * `effect` resolved from node_modules (deno.json: `nodeModulesDir: "manual"`).
 */
import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { readdirSync } from "node:fs"
import { join } from "node:path"

const root = join(import.meta.dirname, "..", "..")
const deno = join(root, "node_modules", ".bin", "deno")
const coreFiles = readdirSync(join(root, "src", "core")).filter((file) => file.endsWith(".ts")).map((file) => `src/core/${file}`)

describe("Deno", () => {
  it("deno check passes on src/core and the library entry", () => {
    const result = spawnSync(deno, ["check", ...coreFiles, "src/index.ts"], { cwd: root, encoding: "utf8", timeout: 120_000 })
    expect(result.error).toBeUndefined()
    expect(`${result.stdout}${result.stderr}`).not.toMatch(/error/i)
    expect(result.status).toBe(0)
  }, 150_000)
})
