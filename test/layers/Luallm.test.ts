import { describe, expect, it } from "@effect/vitest"
import { NodeHttpClient } from "@effect/platform-node"
import { Context, Effect, Layer } from "effect"
import { chmodSync, readFileSync, writeFileSync } from "node:fs"
import { type AgentConfig, defaultConfig } from "../../src/core/config.ts"
import { AppConfigFrom } from "../../src/layers/Config.ts"
import { Luallm, LuallmCalls, LuallmLive, type LuallmStatus, LuallmTest, normalizeBaseUrl } from "../../src/layers/Luallm.ts"
import { openAiServer } from "../support/openaiServer.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

const configIn = (dir: string, change: (config: AgentConfig) => AgentConfig = (c) => c): AgentConfig =>
  change(defaultConfig({ home: dir, cwd: dir, builtinSkillsDir: `${dir}/skills` }))

const withLuallm = (luallm: Partial<AgentConfig["luallm"]>, rest: Partial<AgentConfig> = {}) => (config: AgentConfig): AgentConfig => ({
  ...config,
  ...rest,
  luallm: { ...config.luallm, ...luallm }
})

const liveLuallm = (config: AgentConfig) =>
  Effect.map(
    Layer.build(LuallmLive.pipe(Layer.provide(AppConfigFrom(config)), Layer.provide(Layer.merge(NodeHttpClient.layer, TestPlatform)))),
    Context.get(Luallm)
  )

const writeExecutable = (file: string, script: string) => {
  writeFileSync(file, `#!/bin/sh\n${script}\n`)
  chmodSync(file, 0o755)
}

/** A fake `luallm` that logs its arguments to calls.log and prints status.json for `status`. */
const fakeLuallm = (dir: string, status: unknown) => {
  writeFileSync(`${dir}/status.json`, typeof status === "string" ? status : JSON.stringify(status))
  writeExecutable(
    `${dir}/luallm`,
    `dir="$(dirname "$0")"\necho "$*" >> "$dir/calls.log"\ncase "$1" in status) cat "$dir/status.json" ;; esac`
  )
  return `${dir}/luallm`
}

const status = (servers: LuallmStatus["servers"], lastUsed: string | null = null): LuallmStatus => ({
  version: "1.0",
  last_used: lastUsed,
  servers
})
const running = (model: string, port: number) => ({ model, port, pid: 4242, state: "running" as const, started_at: "2026-01-01T00:00:00Z" })
const stopped = (model: string, port: number) => ({ model, port, pid: null, state: "stopped" as const })

describe("luallm discovery", () => {
  it.scoped("reads `luallm status --json` from the configured binary, tolerating unknown fields", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const binary = fakeLuallm(dir, {
        version: "1.0",
        last_used: "qwen",
        servers: [{ ...running("qwen", 8081), stopped_at: null, exit_code: 0 }, stopped("llama", 8080)],
        future_field: true
      })
      const luallm = yield* liveLuallm(configIn(dir, withLuallm({ binary })))
      const models = yield* luallm.runningModels
      expect(models).toEqual([{ model: "qwen", port: 8081, baseUrl: "http://127.0.0.1:8081" }])
      expect(yield* luallm.endpoint("qwen")).toBe("http://127.0.0.1:8081")
      expect(readFileSync(`${dir}/calls.log`, "utf8").trim().split("\n")).toEqual(["status --json", "status --json"])
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("finds `luallm` on PATH when luallm.binary is a bare name", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      fakeLuallm(dir, status([running("mistral-7b-instruct.Q4_K_M", 9000)]))
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          const saved = process.env["PATH"]
          process.env["PATH"] = `${dir}:${saved ?? ""}`
          return saved
        }),
        (saved) => Effect.sync(() => (process.env["PATH"] = saved))
      )
      const luallm = yield* liveLuallm(configIn(dir, withLuallm({ binary: "luallm", state_file: `${dir}/absent.json` })))
      // luallm's own matching: a part of the name finds the running model.
      expect(yield* luallm.endpoint("mistral")).toBe("http://127.0.0.1:9000")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("falls back to the state file when the binary is missing, reading Lua's {} as no servers", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const stateFile = `${dir}/state.json`
      const config = configIn(dir, withLuallm({ binary: `${dir}/no-such-luallm`, state_file: stateFile }))
      writeFileSync(stateFile, JSON.stringify(status([running("phi", 8090)], "phi")))
      const luallm = yield* liveLuallm(config)
      expect((yield* luallm.status).servers.map((s) => s.model)).toEqual(["phi"])
      writeFileSync(stateFile, `{"version":"1.0","servers":{}}`)
      expect(yield* luallm.runningModels).toEqual([])
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("names the command when `luallm status --json` prints something that is not a status", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const binary = fakeLuallm(dir, "luallm: unknown flag --json")
      const error = yield* Effect.flip((yield* liveLuallm(configIn(dir, withLuallm({ binary })))).status)
      expect(error._tag).toBe("LuallmStatusInvalid")
      expect(error.message).toContain(`\`${binary} status --json\` did not hold a valid luallm status`)
      expect(error.message).toContain("Check that luallm.binary is the luallm CLI")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("names the file and the bad field when the state file has the wrong shape", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const stateFile = `${dir}/state.json`
      writeFileSync(stateFile, JSON.stringify({ servers: [{ model: "phi", port: 1, state: "sleeping" }] }))
      const config = configIn(dir, withLuallm({ binary: `${dir}/missing`, state_file: stateFile }))
      const error = yield* Effect.flip((yield* liveLuallm(config)).status)
      expect(error._tag).toBe("LuallmStatusInvalid")
      expect(error.message).toContain(`${stateFile} did not hold a valid luallm status`)
      expect(error.message).toContain("sleeping")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("without binary and state file fails with LuallmNotFound that says how to fix it", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const config = configIn(dir, withLuallm({ binary: `${dir}/missing`, state_file: `${dir}/state.json` }))
      const error = yield* Effect.flip((yield* liveLuallm(config)).runningModels)
      expect(error._tag).toBe("LuallmNotFound")
      expect(error.message).toBe(
        `The luallm CLI ${dir}/missing was not found and its state file ${dir}/state.json does not exist. Install luallm and start a model (\`luallm start <model>\`), set luallm.binary to its path, or set llm.base_url (LUALLM_AGENT_LLM_BASE_URL) to an OpenAI-compatible server.`
      )
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("reports a failing `luallm status` with its exit code and output when there is no state file", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      writeExecutable(`${dir}/luallm`, `echo "config file is broken" >&2\nexit 2`)
      const config = configIn(dir, withLuallm({ binary: `${dir}/luallm`, state_file: `${dir}/state.json` }))
      const error = yield* Effect.flip((yield* liveLuallm(config)).status)
      expect(error._tag).toBe("LuallmCommandFailed")
      expect(error.message).toBe(`\`${dir}/luallm status --json\` exited with 2: config file is broken. Run it yourself to see the problem, or check luallm.binary.`)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("with llm.base_url set, serves every model from it without asking luallm", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const base = configIn(dir)
      const config = configIn(dir, withLuallm({ binary: `${dir}/missing`, state_file: `${dir}/missing.json` }, {
        llm: { ...base.llm, base_url: "http://127.0.0.1:1234/v1/" }
      }))
      expect(yield* (yield* liveLuallm(config)).endpoint("anything")).toBe("http://127.0.0.1:1234")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("fails with ModelNotRunning and the exact start command for a model that is not running", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const binary = fakeLuallm(dir, status([running("qwen", 8081), stopped("llama", 8080)]))
      const error = yield* Effect.flip((yield* liveLuallm(configIn(dir, withLuallm({ binary })))).endpoint("llama"))
      expect(error._tag).toBe("ModelNotRunning")
      expect(error.message).toBe(
        `The model "llama" is not running (running: qwen). Start it with \`${binary} start llama\`, or pick a running model with --model or luallm.model.`
      )
    }).pipe(Effect.provide(TestPlatform)))
})

describe("luallm start, stop and readiness", () => {
  it.scoped("starts and stops models through the CLI", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const binary = fakeLuallm(dir, status([]))
      const luallm = yield* liveLuallm(configIn(dir, withLuallm({ binary })))
      yield* luallm.start("qwen")
      yield* luallm.stop("qwen")
      expect(readFileSync(`${dir}/calls.log`, "utf8")).toBe("start qwen\nstop qwen\n")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("reports a failing `luallm start` with its output", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      writeExecutable(`${dir}/luallm`, `echo "No model matches: qwen" \nexit 1`)
      const luallm = yield* liveLuallm(configIn(dir, withLuallm({ binary: `${dir}/luallm` })))
      const error = yield* Effect.flip(luallm.start("qwen"))
      expect(error._tag).toBe("LuallmCommandFailed")
      expect(error.message).toContain(`\`${dir}/luallm start qwen\` exited with 1: No model matches: qwen.`)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("gives the command a human would type, quoting names the shell would split", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const luallm = yield* liveLuallm(configIn(dir))
      expect(luallm.startCommand("mistral-7b.Q4_K_M")).toBe("luallm start mistral-7b.Q4_K_M")
      expect(luallm.startCommand("my model's")).toBe(`luallm start 'my model'\\''s'`)
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("waits while llama-server answers 503 on /health and returns once it answers 200", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const server = yield* openAiServer({ loadingHealthChecks: 2 })
      const binary = fakeLuallm(dir, status([running("qwen", server.port)]))
      const luallm = yield* liveLuallm(configIn(dir, withLuallm({ binary })))
      yield* luallm.waitForReady("qwen", "10 seconds")
      expect(server.received().filter((r) => r.path === "/health").length).toBe(3)
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("gives up with ModelNotReady saying what it saw last", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const binary = fakeLuallm(dir, status([]))
      const luallm = yield* liveLuallm(configIn(dir, withLuallm({ binary })))
      const error = yield* Effect.flip(luallm.waitForReady("qwen", "600 millis"))
      expect(error._tag).toBe("ModelNotReady")
      expect(error.message).toContain(`The model "qwen" was not ready after 0.6s (last seen: not running in luallm status).`)
    }).pipe(Effect.provide(TestPlatform)))
})

describe("model resolution", () => {
  const resolveWith = (config: (c: AgentConfig) => AgentConfig, initial: LuallmStatus) =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const layer = LuallmTest(initial).pipe(Layer.provide(AppConfigFrom(configIn(dir, config))))
      return yield* Effect.flatMap(Luallm, (luallm) => Effect.all([luallm.resolveModel("code"), luallm.resolveModel("planning")])).pipe(
        Effect.provide(layer)
      )
    })
  const policy = (p: Partial<AgentConfig["model_policy"]>) => (c: AgentConfig): AgentConfig => ({ ...c, model_policy: { ...c.model_policy, ...p } })
  const twoRunning = status([running("first", 8080), running("second", 8081)], "second")

  it.scoped("prefers luallm.model over everything", () =>
    Effect.gen(function*() {
      const chosen = yield* resolveWith((c) => policy({ code: "coder", default: "general" })(withLuallm({ model: "pinned" })(c)), twoRunning)
      expect(chosen).toEqual(["pinned", "pinned"])
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("then the model policy for the purpose, then its default", () =>
    Effect.gen(function*() {
      const chosen = yield* resolveWith(policy({ code: "coder", default: "general" }), twoRunning)
      expect(chosen).toEqual(["coder", "general"])
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("then the running last_used model, then the first running one", () =>
    Effect.gen(function*() {
      expect(yield* resolveWith((c) => c, twoRunning)).toEqual(["second", "second"])
      const lastUsedStopped = status([running("first", 8080), stopped("second", 8081)], "second")
      expect(yield* resolveWith((c) => c, lastUsedStopped)).toEqual(["first", "first"])
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("fails with NoModelAvailable when nothing is configured or running", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(resolveWith((c) => c, status([stopped("first", 8080)])))
      expect(error._tag).toBe("NoModelAvailable")
      expect(error.message).toBe(
        "No model to use for code: none is configured and luallm reports no running model. Start one with `luallm start <model>`, or name one with --model, luallm.model or model_policy.code in the config."
      )
    }).pipe(Effect.provide(TestPlatform)))
})

describe("the Test layer", () => {
  it.scoped("records start and stop, and a started model is running and ready", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const layer = LuallmTest(status([running("other", 8080)])).pipe(Layer.provide(AppConfigFrom(configIn(dir))))
      const { luallm, calls } = yield* Effect.all({ luallm: Luallm, calls: LuallmCalls }).pipe(Effect.provide(layer))
      yield* luallm.start("qwen")
      yield* luallm.waitForReady("qwen", "1 second")
      expect(yield* luallm.endpoint("qwen")).toBe("http://127.0.0.1:8081")
      yield* luallm.stop("qwen")
      expect((yield* Effect.flip(luallm.endpoint("qwen")))._tag).toBe("ModelNotRunning")
      expect(yield* calls.calls).toEqual([{ action: "start", model: "qwen" }, { action: "stop", model: "qwen" }])
    }).pipe(Effect.provide(TestPlatform)))
})

describe("normalizeBaseUrl", () => {
  it("accepts the base with or without /v1 and trailing slashes", () => {
    for (const url of ["http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/", " http://h:1/v1// "]) {
      expect(normalizeBaseUrl(url)).toBe("http://h:1")
    }
  })
})
