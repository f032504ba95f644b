/**
 * `generate` writes the model's code only where the user allows files to be written
 * (allowed_paths, with `~`, `..` and symlinks resolved like skills' paths), never into what the
 * agent's trust rests on, and never over an existing file without `--force`. Every refusal
 * comes before the model is asked.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { configInside } from "../../src/core/config.ts"
import { ExitCodes } from "../../src/shell/exit.ts"
import { runCliAsync } from "../support/cli.ts"
import { openAiServer } from "../support/openaiServer.ts"

const code = "print(\"hello\")\n"

/** A home with a project directory, a config that allows `allowed`, and a loopback model that answers with code. */
const workspace = (allowed: (home: string) => ReadonlyArray<string>, auditPath?: (home: string) => string) =>
  Effect.gen(function*() {
    const home = realpathSync(mkdtempSync(join(tmpdir(), "luallm-agent-generate-")))
    const project = join(home, "proj")
    mkdirSync(project, { recursive: true })
    const server = yield* openAiServer({ reply: () => `Here it is:\n\`\`\`python\n${code}\`\`\`\nEnjoy.` })
    const inside = configInside(home, { allowedPaths: allowed(home) })
    const config = auditPath === undefined ? inside : { ...inside, audit: { ...inside.audit, path: auditPath(home) } }
    const configFile = join(home, "config.json")
    writeFileSync(configFile, JSON.stringify({ ...config, llm: { ...config.llm, base_url: server.url } }))
    const generate = (out: string, ...flags: ReadonlyArray<string>) =>
      Effect.promise(() =>
        runCliAsync(["--config", configFile, "generate", out, "print hello", "--model", "test-model", ...flags], { env: { HOME: home }, cwd: project })
      )
    return { home, project, config, configFile, server, generate }
  })

describe("generate and existing files", () => {
  it.scopedLive("refuses to replace a file without --force, before asking the model; --force replaces it", () =>
    Effect.gen(function*() {
      const ws = yield* workspace((home) => [`${home}/proj/**`])
      const target = join(ws.project, "hello.py")
      writeFileSync(target, "# mine\n")
      const refused = yield* ws.generate("hello.py")
      expect(refused.code).toBe(ExitCodes.failure)
      expect(refused.stderr.trim()).toBe(`error: ${target} already exists, so nothing was written. Pass --force to replace it, or choose another path.`)
      expect(readFileSync(target, "utf8")).toBe("# mine\n")
      expect(ws.server.chats()).toHaveLength(0)

      const forced = yield* ws.generate("hello.py", "--force")
      expect(forced.code).toBe(ExitCodes.ok)
      expect(forced.stdout).toContain(`wrote ${target}`)
      expect(readFileSync(target, "utf8")).toBe(code)
    }))

  it.scopedLive("writes a new file inside allowed_paths, with ~ expanded", () =>
    Effect.gen(function*() {
      const ws = yield* workspace((home) => [`${home}/proj/**`])
      const written = yield* ws.generate("~/proj/new/hello.py")
      expect(written.code).toBe(ExitCodes.ok)
      expect(readFileSync(join(ws.project, "new", "hello.py"), "utf8")).toBe(code)
    }))

  it.scopedLive("a link at the target is replaced with --force, never written through", () =>
    Effect.gen(function*() {
      const ws = yield* workspace((home) => [`${home}/proj/**`])
      const elsewhere = join(ws.home, "elsewhere.py")
      const link = join(ws.project, "dangling.py")
      symlinkSync(elsewhere, link)
      const refused = yield* ws.generate("dangling.py")
      expect(refused.code).toBe(ExitCodes.failure)
      expect(refused.stderr).toContain("already exists, so nothing was written")
      const forced = yield* ws.generate("dangling.py", "--force")
      expect(forced.code).toBe(ExitCodes.ok)
      expect(lstatSync(link).isFile()).toBe(true)
      expect(readFileSync(link, "utf8")).toBe(code)
      expect(existsSync(elsewhere)).toBe(false)
    }))
})

describe("generate and allowed_paths", () => {
  it.scopedLive("with no allowed_paths nothing is written, and the message says what to add", () =>
    Effect.gen(function*() {
      const ws = yield* workspace(() => [])
      const refused = yield* ws.generate("hello.py")
      expect(refused.code).toBe(ExitCodes.failure)
      expect(refused.stderr.trim()).toBe(
        `error: generate writes only inside allowed_paths, and hello.py (${ws.project}/hello.py) is not inside them: allowed_paths is empty. ` +
          `Choose a path inside them, or add its directory to allowed_paths in your config: "${ws.project}/**".`
      )
      expect(existsSync(join(ws.project, "hello.py"))).toBe(false)
      expect(ws.server.chats()).toHaveLength(0)
    }))

  it.scopedLive("resolves .. and symlinks before matching: an escape by either is refused", () =>
    Effect.gen(function*() {
      const ws = yield* workspace((home) => [`${home}/proj/**`])
      mkdirSync(join(ws.home, "outside"))
      symlinkSync(join(ws.home, "outside"), join(ws.project, "link"))
      for (const [out, resolved] of [["../secrets.py", join(ws.home, "secrets.py")], ["link/x.py", join(ws.home, "outside", "x.py")]] as const) {
        const refused = yield* ws.generate(out)
        expect(refused.code).toBe(ExitCodes.failure)
        expect(refused.stderr).toContain(`${out} (${resolved}) is not inside them: allowed_paths is ${ws.home}/proj/**`)
        expect(existsSync(resolved)).toBe(false)
      }
      expect(ws.server.chats()).toHaveLength(0)
    }))
})

describe("generate and luallm-agent's own files", () => {
  it.scopedLive("never writes a trust root, even when allowed_paths covers it, or through a link to one", () =>
    Effect.gen(function*() {
      // The audit log outside state_dir, so that its own rule (with its rotations) is what refuses.
      const ws = yield* workspace((home) => [`${home}/**`], (home) => `${home}/logs/audit.jsonl`)
      mkdirSync(ws.config.state_dir, { recursive: true })
      writeFileSync(join(ws.config.state_dir, "current_task.json"), "{}")
      symlinkSync(join(ws.config.state_dir, "current_task.json"), join(ws.project, "task.py"))
      const cases: ReadonlyArray<readonly [string, string]> = [
        [ws.configFile, `the config file (--config) (${ws.configFile})`],
        [join(ws.config.state_dir, "x.py"), `state_dir (${ws.config.state_dir})`],
        [`${ws.config.audit.path}.1`, `audit.path (${ws.config.audit.path})`],
        [join(ws.config.skills.allowed_dir, "csv_sum.js"), `skills.allowed_dir (${ws.config.skills.allowed_dir})`],
        [join(ws.config.skills.agent_dir, "csv_sum.js"), `skills.agent_dir (${ws.config.skills.agent_dir})`],
        [join(ws.project, "task.py"), `state_dir (${ws.config.state_dir})`]
      ]
      for (const [out, root] of cases) {
        const refused = yield* ws.generate(out, "--force")
        expect(refused.code).toBe(ExitCodes.failure)
        expect(refused.stderr).toContain(`error: generate never writes inside ${root}, which luallm-agent's trust rests on, whatever allowed_paths says`)
        expect(refused.stderr).toContain("Choose a path outside it.")
      }
      expect(readFileSync(join(ws.config.state_dir, "current_task.json"), "utf8")).toBe("{}")
      expect(ws.server.chats()).toHaveLength(0)
    }))
})
