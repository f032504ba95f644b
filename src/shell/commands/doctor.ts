/**
 * `luallm-agent doctor`: one ✓/✗ line per check, each ✗ with the fix; exit 1 when a
 * required check fails. Every check is an Effect that cannot fail: a failure is a result.
 */
import { Command as Cli, Options } from "@effect/cli"
import { FileSystem, Path } from "@effect/platform"
import { Console, Effect, Either, Option } from "effect"
import { sanitizeForTerminal } from "../../core/terminalText.ts"
import { AppConfig, type AppConfigShape } from "../../layers/Config.ts"
import { type EndpointInfo, Llm } from "../../layers/Llm.ts"
import { Luallm } from "../../layers/Luallm.ts"
import { ExitCodes, ExitWith } from "../exit.ts"
import { root } from "../root.ts"
import { configLayer, llmServices } from "../runtime.ts"
import { dim, fail, ok, printJson, warn } from "../ui.ts"

export interface CheckResult {
  readonly name: string
  /** A failed required check makes doctor exit 1; an optional one only warns. */
  readonly required: boolean
  readonly ok: boolean
  readonly detail: string
  /** What to do about it, for a failed check. */
  readonly fix?: string
}

const passed = (name: string, detail: string, required = true): CheckResult => ({ name, required, ok: true, detail })
const failed = (name: string, detail: string, fix: string, required = true): CheckResult => ({
  name,
  required,
  ok: false,
  detail,
  fix
})

/** Creates `dir` if needed and proves it writable by writing and removing a probe file. */
const checkWritableDir = (name: string, dir: string, key: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const probe = path.join(dir, `.doctor-probe-${Date.now()}`)
    yield* fs.makeDirectory(dir, { recursive: true })
    yield* fs.writeFileString(probe, "ok")
    yield* fs.remove(probe)
    return passed(name, dir)
  }).pipe(
    Effect.catchAll((error) =>
      Effect.succeed(failed(name, `${dir}: ${error.message}`, `Make ${dir} writable, or point ${key} at a writable directory.`))
    )
  )

/** Finds a command on PATH (or checks an explicit path) without running it. */
export const findExecutable = (binary: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const candidates = binary.includes("/")
      ? [binary]
      : (process.env["PATH"] ?? "").split(":").filter((dir) => dir !== "").map((dir) => path.join(dir, binary))
    for (const candidate of candidates) {
      const info = yield* fs.stat(candidate).pipe(Effect.option)
      if (info._tag === "Some" && info.value.type === "File" && (info.value.mode & 0o111) !== 0) return candidate
    }
    return undefined
  })

const checkLuallmBinary = (app: AppConfigShape) =>
  Effect.gen(function*() {
    const binary = app.config.luallm.binary
    const found = yield* findExecutable(binary)
    // With llm.base_url set, luallm is only needed to start and stop models.
    const required = app.config.llm.base_url === null
    return found === undefined
      ? failed(
        "luallm binary",
        `${binary} not found${binary.includes("/") ? "" : " on PATH"}`,
        `Install luallm, set luallm.binary to its path, or set llm.base_url (LUALLM_AGENT_LLM_BASE_URL) to an OpenAI-compatible server.`,
        required
      )
      : passed("luallm binary", found, required)
  })

/** Model names come from the server or luallm's state: printed only sanitised. */
const names = (models: ReadonlyArray<string>): string => sanitizeForTerminal(models.join(", "))

/** What a probe found at an endpoint: its kind, models, context and slots. */
const describeEndpoint = (info: EndpointInfo): string =>
  [
    info.kind + (info.version === null ? "" : ` ${info.version}`),
    `serves ${names(info.models) || "no listed model"}`,
    info.contextTokens === null ? "context unknown (set llm.context_tokens)" : `context ${info.contextTokens} tokens`,
    info.slots === null ? "slots unknown" : `${info.slots} slot${info.slots === 1 ? "" : "s"}`
  ].join(", ")

/**
 * Each endpoint the agent would use (`llm.endpoints`, `llm.base_url`, or luallm's running
 * servers), probed now, and which models run.
 */
const checkLlm = (app: AppConfigShape) =>
  Effect.gen(function*() {
    const llm = yield* Llm
    const luallm = yield* Luallm
    const model = Option.getOrUndefined(app.modelPolicy("default"))
    const start = model === undefined ? `${app.config.luallm.binary} start <model>` : luallm.startCommand(model)
    const fix = `Start a model with \`${start}\`, or set llm.base_url / llm.endpoints (LUALLM_AGENT_LLM_BASE_URL) to an OpenAI-compatible server.`
    const reports = yield* llm.endpoints.pipe(
      Effect.timeoutFail({ duration: "15 seconds", onTimeout: () => ({ message: "no answer within 15 s" }) }),
      Effect.either
    )
    const configured = app.config.llm.base_url !== null || app.config.llm.endpoints.length > 0
    const endpoints = Either.match(reports, {
      onLeft: (error) => [failed("LLM endpoints", error.message, fix)],
      onRight: (found) =>
        found.length === 0
          ? [failed("LLM endpoints", configured ? "none configured" : "luallm reports no running server", fix)]
          : found.map((report) =>
            report.info === null
              // The problem may quote the server's answer: printed only sanitised.
              ? failed(`LLM endpoint ${report.url}`, sanitizeForTerminal(report.problem ?? "no answer"), fix)
              : passed(`LLM endpoint ${report.url}`, describeEndpoint(report.info))
          )
    })
    const served = Either.match(reports, {
      onLeft: () => failed("models running", "unknown: no endpoint answered", fix),
      onRight: (found) => {
        const models = found.flatMap((report) => report.info?.models ?? [])
        return models.length > 0
          ? passed("models running", names([...new Set(models)]))
          : failed("models running", "no endpoint lists a model", "Load a model on the server, or point llm.base_url / llm.endpoints at one that has one.")
      }
    })
    return [...endpoints, served]
  }).pipe(
    Effect.provide(llmServices("live")),
    Effect.catchAll((error) => Effect.succeed([failed("LLM endpoints", error.message, "Fix the LLM settings as the message says.")]))
  )

/** Checks that need a loaded configuration, the LLM checks last. */
const configuredChecks = (app: AppConfigShape) =>
  Effect.all([
    checkWritableDir("state directory writable", app.config.state_dir, "state_dir"),
    Effect.flatMap(Path.Path, (path) =>
      checkWritableDir("audit directory writable", path.dirname(app.config.audit.path), "audit.path")),
    checkLuallmBinary(app)
  ]).pipe(Effect.zipWith(checkLlm(app), (local, llm) => [...local, ...llm]))

const printResults = (results: ReadonlyArray<CheckResult>) =>
  Effect.forEach(results, (result) => {
    if (result.ok) return Console.log(ok(`${result.name}: ${dim(result.detail)}`))
    const line = result.required ? fail(`${result.name}: ${result.detail}`) : warn(`${result.name}: ${result.detail}`)
    return Console.log(`${line}\n    fix: ${result.fix ?? "see the message above"}`)
  }, { discard: true })

export const doctorCommand = Cli.make(
  "doctor",
  { json: Options.boolean("json").pipe(Options.withDescription("Print the checks as JSON")) },
  ({ json }) =>
    Effect.gen(function*() {
      const options = yield* root
      const results = yield* Effect.gen(function*() {
        const app = yield* AppConfig
        const where = app.file._tag === "Some" ? app.file.value : "defaults and environment (no config file found)"
        return [passed("config valid", where), ...(yield* configuredChecks(app))]
      }).pipe(
        Effect.provide(configLayer(options)),
        Effect.catchAll((error) =>
          Effect.succeed([
            failed("config valid", error.message, "Fix the config as the message says, then run doctor again.")
          ])
        )
      )
      if (json) yield* printJson({ ok: results.every((r) => r.ok || !r.required), checks: results })
      else yield* printResults(results)
      if (results.some((r) => !r.ok && r.required)) return yield* new ExitWith({ code: ExitCodes.failure })
    })
).pipe(Cli.withDescription("Check the setup: configuration, directories, luallm and each model endpoint\nFor each endpoint: its kind, models, context size and slots. Each failed check says how to fix it."))
