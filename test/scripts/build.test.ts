/**
 * scripts/build.mjs builds only when dist/ is out of date. Each case runs the real script with
 * `--check` in a copy of the build's inputs, with the stamp of the build the global setup just
 * made and stand-ins for the files it wrote, then changes one thing.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"

const root = join(import.meta.dirname, "..", "..")

/** A directory holding the build's inputs and a dist/ that the stamp describes; removed after `use`. */
const withCopy = (use: (dir: string) => void) => {
  const dir = mkdtempSync(join(tmpdir(), "luallm-agent-build-"))
  try {
    for (const input of ["src", "bench", "scripts", "package.json", "package-lock.json", "tsconfig.json", "tsconfig.build.json"]) {
      cpSync(join(root, input), join(dir, input), { recursive: true })
    }
    const stamp = readFileSync(join(root, "dist", ".build.json"), "utf8")
    mkdirSync(join(dir, "dist"))
    writeFileSync(join(dir, "dist", ".build.json"), stamp)
    for (const output of (JSON.parse(stamp) as { outputs: ReadonlyArray<string> }).outputs) {
      mkdirSync(join(dir, dirname(output)), { recursive: true })
      writeFileSync(join(dir, output), "")
    }
    use(dir)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const check = (dir: string) => {
  const result = spawnSync(process.execPath, ["scripts/build.mjs", "--check"], { cwd: dir, encoding: "utf8" })
  return { status: result.status, said: result.stdout.trim() }
}

describe("the build's up-to-date check", () => {
  it("finds dist/ up to date when the inputs are the ones it was built from, even with new modification times", () =>
    withCopy((dir) => {
      expect(check(dir)).toEqual({ status: 0, said: "dist/ is up to date" })
      utimesSync(join(dir, "src", "Agent.ts"), new Date(), new Date(Date.now() + 60_000))
      expect(check(dir)).toEqual({ status: 0, said: "dist/ is up to date" })
    }))

  it("rebuilds after a changed, added or removed source, or a changed lock file", () => {
    const changed = "dist/ is out of date: the sources, the lock file or a configuration changed"
    withCopy((dir) => {
      appendFileSync(join(dir, "src", "core", "graph.ts"), "\n")
      expect(check(dir)).toEqual({ status: 1, said: changed })
    })
    withCopy((dir) => {
      writeFileSync(join(dir, "src", "layers", "NewService.ts"), "export {}\n")
      expect(check(dir)).toEqual({ status: 1, said: changed })
    })
    withCopy((dir) => {
      rmSync(join(dir, "bench", "main.ts"))
      expect(check(dir)).toEqual({ status: 1, said: changed })
    })
    withCopy((dir) => {
      writeFileSync(join(dir, "package-lock.json"), readFileSync(join(dir, "package-lock.json"), "utf8").replace("\"version\": \"0.1.0\"", "\"version\": \"0.1.1\""))
      expect(check(dir)).toEqual({ status: 1, said: changed })
    })
  })

  it("rebuilds when a file it wrote is gone, or when there is no stamp", () => {
    withCopy((dir) => {
      rmSync(join(dir, "dist", "cli.cjs"))
      expect(check(dir)).toEqual({ status: 1, said: "dist/ is out of date: dist/cli.cjs is missing" })
    })
    withCopy((dir) => {
      rmSync(join(dir, "dist", "types"), { recursive: true })
      expect(check(dir).said).toMatch(/^dist\/ is out of date: dist\/types\/\S+\.d\.ts is missing$/)
    })
    withCopy((dir) => {
      writeFileSync(join(dir, "dist", ".build.json"), "{ damaged")
      expect(check(dir)).toEqual({ status: 1, said: "dist/ is out of date: no dist/.build.json from an earlier build" })
    })
  })

  it("leaves an up-to-date dist/ alone: `prepare` after the tests' build writes nothing", () => {
    const before = statSync(join(root, "dist", "cli.cjs")).mtimeMs
    const result = spawnSync(process.execPath, ["scripts/build.mjs"], { cwd: root, encoding: "utf8" })
    expect(result.status).toBe(0)
    expect(result.stderr).toContain("dist/ is up to date")
    expect(statSync(join(root, "dist", "cli.cjs")).mtimeMs).toBe(before)
  })
})
