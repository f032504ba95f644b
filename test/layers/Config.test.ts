import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Option } from "effect"
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { defaultConfig, describeSource } from "../../src/core/config.ts"
import { AppConfig, AppConfigFrom, configInside, loadConfig } from "../../src/layers/Config.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

const load = (env: Record<string, string>, configPath?: string) =>
  loadConfig({ configPath, builtinSkillsDir: "/pkg/skills" }).pipe(
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
  )

const writeJson = (file: string, value: unknown) => writeFileSync(file, JSON.stringify(value))

describe("config loading", () => {
  it.scoped("uses the defaults, under $HOME and the XDG directories, when there is no file", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const app = yield* load({ HOME: home })
      expect(Option.isNone(app.file)).toBe(true)
      expect(app.config.state_dir).toBe(`${home}/.local/state/luallm-agent`)
      expect(app.config.audit.path).toBe(`${home}/.local/state/luallm-agent/audit.jsonl`)
      expect(app.config.skills.allowed_dir).toBe(`${home}/.local/share/luallm-agent/skills`)
      expect(app.config.luallm.state_file).toBe(`${home}/.cache/luallm/state.json`)
      expect(app.config.limits.max_task_steps).toBe(100)
      const xdg = yield* load({ HOME: home, XDG_STATE_HOME: "/xdg/state", XDG_CACHE_HOME: "/xdg/cache" })
      expect(xdg.config.state_dir).toBe("/xdg/state/luallm-agent")
      expect(xdg.config.luallm.state_file).toBe("/xdg/cache/luallm/state.json")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("layers defaults ← file ← environment and records where each value came from", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const file = `${home}/custom.json`
      writeJson(file, { limits: { max_task_steps: 7, max_plan_retries: 1 }, llm: { base_url: "http://file:1" } })
      const app = yield* load({ HOME: home, LUALLM_AGENT_LIMITS_MAX_TASK_STEPS: "9", LUALLM_AGENT_CONFIG: file })
      expect(app.file).toEqual(Option.some(file))
      expect(app.config.limits.max_task_steps).toBe(9)
      expect(app.config.limits.max_plan_retries).toBe(1)
      expect(app.config.limits.max_skill_retries).toBe(3)
      expect(app.config.llm.base_url).toBe("http://file:1")
      expect(app.sources.get("limits.max_task_steps")).toEqual({ _tag: "env", variable: "LUALLM_AGENT_LIMITS_MAX_TASK_STEPS" })
      expect(app.sources.get("limits.max_plan_retries")).toEqual({ _tag: "file", file })
      expect(app.sources.get("limits.max_skill_retries")).toBeUndefined()
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("prefers --config over $LUALLM_AGENT_CONFIG over ./luallm-agent.json over ~/.config", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      mkdirSync(`${home}/.config/luallm-agent`, { recursive: true })
      writeJson(`${home}/.config/luallm-agent/config.json`, { limits: { max_task_steps: 1 } })
      writeJson(`${home}/env.json`, { limits: { max_task_steps: 2 } })
      writeJson(`${home}/flag.json`, { limits: { max_task_steps: 3 } })
      expect((yield* load({ HOME: home })).config.limits.max_task_steps).toBe(1)
      expect((yield* load({ HOME: home, LUALLM_AGENT_CONFIG: `${home}/env.json` })).config.limits.max_task_steps).toBe(2)
      const flagged = yield* load({ HOME: home, LUALLM_AGENT_CONFIG: `${home}/env.json` }, `${home}/flag.json`)
      expect(flagged.config.limits.max_task_steps).toBe(3)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("coerces environment values to the type of the key they override", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const app = yield* load({
        HOME: home,
        LUALLM_AGENT_LLM_BASE_URL: "http://127.0.0.1:8080",
        LUALLM_AGENT_MODEL_POLICY_AUTO_START: "true",
        LUALLM_AGENT_ALLOWED_PATHS: "/data/**:/tmp/x/*",
        LUALLM_AGENT_SKILLS_ALLOWED_DIR: "/opt/skills",
        LUALLM_AGENT_LLM_API_KEY: "12345"
      })
      expect(app.config.llm.base_url).toBe("http://127.0.0.1:8080")
      expect(app.config.llm.api_key).toBe("12345")
      expect(app.config.model_policy.auto_start).toBe(true)
      expect(app.config.allowed_paths).toEqual(["/data/**", "/tmp/x/*"])
      expect(app.config.skills.allowed_dir).toBe("/opt/skills")
      const json = yield* load({ HOME: home, LUALLM_AGENT_ALLOWED_PATHS: "[\"/a/**\", \"/b\"]" })
      expect(json.config.allowed_paths).toEqual(["/a/**", "/b"])
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("puts audit.path and skills.agent_dir under state_dir when only state_dir is set (file or env)", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      mkdirSync(`${home}/proj`)
      writeJson(`${home}/proj/c.json`, { state_dir: "./state" })
      const fromFile = yield* load({ HOME: home }, `${home}/proj/c.json`)
      expect(fromFile.config.audit.path).toBe(`${home}/proj/state/audit.jsonl`)
      expect(fromFile.config.skills.agent_dir).toBe(`${home}/proj/state/drafts`)
      expect(fromFile.sources.get("audit.path")).toEqual({ _tag: "follows", key: "state_dir" })
      expect(describeSource(fromFile.sources.get("skills.agent_dir") ?? { _tag: "default" })).toBe("default (follows state_dir)")

      const fromEnv = yield* load({ HOME: home, LUALLM_AGENT_STATE_DIR: "/srv/agent/" })
      expect(fromEnv.config.audit.path).toBe("/srv/agent/audit.jsonl")
      expect(fromEnv.config.skills.agent_dir).toBe("/srv/agent/drafts")

      // Without state_dir they stay plain defaults, under the default state dir.
      const plain = yield* load({ HOME: home })
      expect(plain.config.skills.agent_dir).toBe(`${home}/.local/state/luallm-agent/drafts`)
      expect(plain.sources.get("audit.path")).toBeUndefined()
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("keeps an explicitly set audit.path or skills.agent_dir when state_dir is set too", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      writeJson(`${home}/c.json`, { state_dir: "/srv/state", audit: { path: "/var/log/agent.jsonl" } })
      const app = yield* load({ HOME: home, LUALLM_AGENT_SKILLS_AGENT_DIR: "/srv/drafts" }, `${home}/c.json`)
      expect(app.config.audit.path).toBe("/var/log/agent.jsonl")
      expect(app.config.skills.agent_dir).toBe("/srv/drafts")
      expect(app.sources.get("audit.path")).toEqual({ _tag: "file", file: `${home}/c.json` })
      expect(app.sources.get("skills.agent_dir")).toEqual({ _tag: "env", variable: "LUALLM_AGENT_SKILLS_AGENT_DIR" })
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("resolves relative paths in a file against the file's directory, and ~ against $HOME", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      mkdirSync(`${home}/proj`)
      writeJson(`${home}/proj/c.json`, { state_dir: "./state", allowed_paths: ["data/**", "~/docs/*"] })
      const app = yield* load({ HOME: home }, `${home}/proj/c.json`)
      expect(app.config.state_dir).toBe(`${home}/proj/state`)
      expect(app.config.allowed_paths).toEqual([`${home}/proj/data/**`, `${home}/docs/*`])
    }).pipe(Effect.provide(TestPlatform)))
})

describe("config validation errors", () => {
  const invalid = (contents: unknown, env: Record<string, string> = {}) =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const file = `${home}/bad.json`
      writeFileSync(file, typeof contents === "string" ? contents : JSON.stringify(contents))
      const error = yield* Effect.flip(load({ HOME: home, ...env }, file))
      return { error, file }
    })

  it.scoped("names the key and the file for a wrong type", () =>
    Effect.gen(function*() {
      const { error, file } = yield* invalid({ limits: { max_task_steps: "ten" } })
      expect(error._tag).toBe("ConfigInvalid")
      expect(error.message).toContain(`limits.max_task_steps: expected a positive integer, got "ten" (from ${file})`)
      expect(error.message).toContain(`The configuration in ${file} is invalid`)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("reports every bad key, not just the first", () =>
    Effect.gen(function*() {
      const { error } = yield* invalid({
        limits: { max_task_steps: 0, max_parallel_nodes: 1.5, skill_memory_mb: -1 },
        audit: { max_files: -2, max_size_mb: "big" },
        approval_tiers: { task_confirmation: "sometimes" },
        model_policy: { auto_start: "yes" },
        allowed_paths: ["/ok", 3],
        llm: { base_url: 42 }
      })
      expect(error._tag).toBe("ConfigInvalid")
      if (error._tag !== "ConfigInvalid") return
      expect(error.issues.map((i) => i.key).sort()).toEqual([
        "allowed_paths[1]",
        "approval_tiers.task_confirmation",
        "audit.max_files",
        "audit.max_size_mb",
        "limits.max_parallel_nodes",
        "limits.max_task_steps",
        "limits.skill_memory_mb",
        "llm.base_url",
        "model_policy.auto_start"
      ])
      expect(error.message).toContain("approval_tiers.task_confirmation: expected \"auto\", \"prompt\" or \"human\", got \"sometimes\"")
      expect(error.message).toContain("model_policy.auto_start: expected true or false, got \"yes\"")
      expect(error.message).toContain("audit.max_files: expected a whole number ≥ 0, got -2")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("refuses a skill_promotion tier other than human", () =>
    Effect.gen(function*() {
      const { error } = yield* invalid({ approval_tiers: { skill_promotion: "auto" } })
      expect(error.message).toContain("approval_tiers.skill_promotion: expected \"human\" (skill promotion always needs a human), got \"auto\"")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("names an unknown key so a typo does not pass silently", () =>
    Effect.gen(function*() {
      const { error } = yield* invalid({ limits: { max_task_step: 5 } })
      expect(error.message).toContain("limits.max_task_step: unknown key")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("names the environment variable when the bad value came from the environment", () =>
    Effect.gen(function*() {
      const { error } = yield* invalid({}, { LUALLM_AGENT_LIMITS_LLM_TIMEOUT_SECONDS: "soon" })
      expect(error.message).toContain(
        "limits.llm_timeout_seconds: expected a positive integer, got \"soon\" (from $LUALLM_AGENT_LIMITS_LLM_TIMEOUT_SECONDS)"
      )
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("reports a file that is not JSON with the parser's reason", () =>
    Effect.gen(function*() {
      const { error, file } = yield* invalid("{ limits: ")
      expect(error._tag).toBe("ConfigFileUnreadable")
      expect(error.message).toContain(file)
      expect(error.message).toContain("not JSON")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("reports a file whose top level is not an object", () =>
    Effect.gen(function*() {
      const { error } = yield* invalid([1, 2])
      expect(error._tag).toBe("ConfigFileUnreadable")
      expect(error.message).toContain("the top level is not a JSON object")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("fails clearly when an explicitly named file does not exist", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const error = yield* Effect.flip(load({ HOME: home, LUALLM_AGENT_CONFIG: `${home}/nope.json` }))
      expect(error._tag).toBe("ConfigFileNotFound")
      expect(error.message).toContain(`${home}/nope.json (given by $LUALLM_AGENT_CONFIG) does not exist`)
      const viaFlag = yield* Effect.flip(load({ HOME: home }, `${home}/missing.json`))
      expect(viaFlag.message).toContain("given by --config")
    }).pipe(Effect.provide(TestPlatform)))
})

describe("settings from an embedding app", () => {
  const withEnv = (env: Record<string, string>) => Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

  it.scoped("lays the app's settings over the defaults, the file and the environment, and says they are the app's", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const file = `${home}/c.json`
      writeJson(file, { limits: { max_task_steps: 7, max_plan_retries: 1 } })
      const settings = { limits: { max_task_steps: 5 }, llm: { base_url: "http://127.0.0.1:9", api_key: "k" }, state_dir: "app-state" }
      const app = yield* loadConfig({ configPath: file, settings }).pipe(
        withEnv({ HOME: home, LUALLM_AGENT_LIMITS_MAX_TASK_STEPS: "9", LUALLM_AGENT_LLM_BASE_URL: "http://127.0.0.1:8" })
      )
      expect(app.config.limits.max_task_steps).toBe(5)
      expect(app.config.limits.max_plan_retries).toBe(1)
      expect(app.config.llm).toMatchObject({ base_url: "http://127.0.0.1:9", api_key: "k", constrained: "auto" }) // the other llm keys keep their defaults
      expect(app.config.state_dir).toBe(join(process.cwd(), "app-state"))
      expect(app.sources.get("limits.max_task_steps")).toEqual({ _tag: "app" })
      expect(app.sources.get("limits.max_plan_retries")).toEqual({ _tag: "file", file })
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("names the key and the app's settings for a bad value, and refuses settings that are not an object", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const bad = yield* Effect.flip(loadConfig({ settings: { limits: { max_task_steps: "ten" }, skills: { alowed_dir: "/x" } } }).pipe(withEnv({ HOME: home })))
      expect(bad._tag).toBe("ConfigInvalid")
      expect(bad.message).toContain(`limits.max_task_steps: expected a positive integer, got "ten" (from the app's settings)`)
      expect(bad.message).toContain("skills.alowed_dir: unknown key")
      const notObject = yield* Effect.flip(loadConfig({ settings: "/etc/agent.json" }).pipe(withEnv({ HOME: home })))
      expect(notObject._tag).toBe("ConfigInvalid")
      expect(notObject.message).toContain(`(settings): expected an object with a config file's keys, got "/etc/agent.json" (from the app's settings)`)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("finds the shipped skills in the package itself, whatever the working directory", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const shipped = join(import.meta.dirname, "..", "..", "skills")
      const app = yield* loadConfig({}).pipe(withEnv({ HOME: home }))
      expect(app.config.skills.builtin_dir).toBe(shipped)
      expect(existsSync(join(shipped, "read_file.js"))).toBe(true)
      const inside = configInside(home)
      expect(inside.skills).toEqual({ allowed_dir: `${home}/skills`, agent_dir: `${home}/drafts`, builtin_dir: shipped })
      expect(configInside(home, { builtinSkillsDir: "/opt/mine" }).skills.builtin_dir).toBe("/opt/mine")
    }).pipe(Effect.provide(TestPlatform)))
})

describe("isPathAllowed", () => {
  const appWith = (home: string, allowed: ReadonlyArray<string>) =>
    Effect.provide(
      AppConfig,
      AppConfigFrom(
        { ...defaultConfig({ home, cwd: home, builtinSkillsDir: "/pkg/skills" }), allowed_paths: allowed },
        { home, cwd: home }
      )
    )

  it.scoped("allows paths inside an allowed glob, including files not written yet, and refuses the rest", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      mkdirSync(`${home}/data/sub`, { recursive: true })
      const app = yield* appWith(home, [`${home}/data/**`])
      expect(yield* app.isPathAllowed(`${home}/data/sub/new.csv`)).toBe(true)
      expect(yield* app.isPathAllowed(`${home}/data`)).toBe(true)
      expect(yield* app.isPathAllowed(`${home}/other.csv`)).toBe(false)
      expect(yield* app.isPathAllowed("/etc/passwd")).toBe(false)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("resolves .. before matching, so traversal out of an allowed dir is refused", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      mkdirSync(`${home}/data`)
      writeFileSync(`${home}/secret.txt`, "s")
      const app = yield* appWith(home, [`${home}/data/**`])
      expect(yield* app.isPathAllowed(`${home}/data/../secret.txt`)).toBe(false)
      expect(yield* app.isPathAllowed(`${home}/data/x/../../data/ok.txt`)).toBe(true)
      const verdict = yield* app.checkPath(`${home}/data/../secret.txt`, app.config.allowed_paths)
      expect(verdict.resolved).toBe(`${home}/secret.txt`)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("follows symlinks, so a link inside an allowed dir pointing outside is refused", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      mkdirSync(`${home}/data`)
      mkdirSync(`${home}/outside`)
      writeFileSync(`${home}/outside/secret.txt`, "s")
      symlinkSync(`${home}/outside`, `${home}/data/escape`)
      symlinkSync(`${home}/outside/secret.txt`, `${home}/data/link.txt`)
      const app = yield* appWith(home, [`${home}/data/**`])
      expect(yield* app.isPathAllowed(`${home}/data/escape/secret.txt`)).toBe(false)
      expect(yield* app.isPathAllowed(`${home}/data/link.txt`)).toBe(false)
      expect(yield* app.isPathAllowed(`${home}/data/escape/new-file.txt`)).toBe(false)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("resolves symlinks in the allowed pattern too, so a linked allowed dir still matches", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      mkdirSync(`${home}/real`)
      symlinkSync(`${home}/real`, `${home}/alias`)
      const app = yield* appWith(home, [`${home}/alias/*`])
      expect(yield* app.isPathAllowed(`${home}/real/a.txt`)).toBe(true)
      expect(yield* app.isPathAllowed(`${home}/alias/a.txt`)).toBe(true)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("expands ~ in both the path and the pattern", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      mkdirSync(`${home}/data`)
      const app = yield* appWith(home, ["~/data/*"])
      expect(yield* app.isPathAllowed("~/data/a.csv")).toBe(true)
      expect(yield* app.isPathAllowed(`${home}/data/a.csv`)).toBe(true)
      expect(yield* app.isPathAllowed("~/data/deeper/a.csv")).toBe(false)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("allows nothing when allowed_paths is empty", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const app = yield* appWith(home, [])
      expect(yield* app.isPathAllowed(`${home}/anything`)).toBe(false)
    }).pipe(Effect.provide(TestPlatform)))
})

describe("model policy and tiers", () => {
  it.scoped("prefers luallm.model, then the purpose's policy, then the default policy", () =>
    Effect.gen(function*() {
      const base = defaultConfig({ home: "/h", cwd: "/", builtinSkillsDir: "/s" })
      const layer = (config: typeof base) => AppConfigFrom(config)
      const policy = { ...base.model_policy, planning: "planner", default: "general" }
      const plain = yield* Effect.provide(AppConfig, layer({ ...base, model_policy: policy }))
      expect(plain.modelPolicy("planning")).toEqual(Option.some("planner"))
      expect(plain.modelPolicy("code")).toEqual(Option.some("general"))
      const pinned = yield* Effect.provide(AppConfig, layer({ ...base, model_policy: policy, luallm: { ...base.luallm, model: "pinned" } }))
      expect(pinned.modelPolicy("planning")).toEqual(Option.some("pinned"))
      const none = yield* Effect.provide(AppConfig, layer(base))
      expect(Option.isNone(none.modelPolicy("code"))).toBe(true)
      expect(none.approvalTier("skill_promotion")).toBe("human")
      expect(none.approvalTier("task_confirmation")).toBe("prompt")
    }).pipe(Effect.provide(TestPlatform)))
})
