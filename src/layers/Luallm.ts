/**
 * The `Luallm` service: which models run, on which port, and how to start and stop them.
 * Discovery asks `luallm status --json` and falls back to luallm's state file; when
 * `llm.base_url` is set, discovery is skipped and every model is served from that URL.
 * The logic (model choice, endpoints, waiting for readiness) is one implementation over a
 * small backend: the luallm CLI and HTTP in the Live layer, memory in the Test layer.
 */
import { Command, CommandExecutor, FileSystem, HttpClient } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import {
  Context,
  Data,
  Duration,
  Effect,
  Either,
  Layer,
  Option,
  Ref,
  Schedule,
  Schema,
  Stream
} from "effect"
import { fromJsonText } from "../core/jsonText.ts"
import { formatParseError } from "../core/schemaIssues.ts"
import { AppConfig, type AppConfigShape, type ModelPurpose } from "./Config.ts"

export const LuallmServer = Schema.Struct({
  model: Schema.String,
  /** `null` when luallm could not tell which port the server took. */
  port: Schema.optionalWith(Schema.NullOr(Schema.Int), { default: () => null }),
  pid: Schema.optionalWith(Schema.NullOr(Schema.Int), { default: () => null }),
  state: Schema.Literal("running", "stopped"),
  started_at: Schema.optional(Schema.NullOr(Schema.String))
})
export type LuallmServer = typeof LuallmServer.Type

/** luallm is written in Lua, whose JSON encoder writes an empty server list as `{}`. */
const EmptyLuaTable = Schema.transform(
  Schema.Record({ key: Schema.String, value: Schema.Never }),
  Schema.Array(LuallmServer),
  { strict: true, decode: () => [], encode: () => ({}) }
)

/** `luallm status --json` and `state.json`; unknown fields are ignored. */
export const LuallmStatus = Schema.Struct({
  version: Schema.optional(Schema.Union(Schema.String, Schema.Number)),
  last_used: Schema.optional(Schema.NullOr(Schema.String)),
  servers: Schema.Union(Schema.Array(LuallmServer), EmptyLuaTable)
})
export type LuallmStatus = typeof LuallmStatus.Type

/** A server that answers: running, with a known port. */
export interface RunningModel {
  readonly model: string
  readonly port: number
  readonly baseUrl: string
}

export class LuallmNotFound extends Data.TaggedError("LuallmNotFound")<{
  readonly binary: string
  /** The state file that was tried as well, when discovering. */
  readonly stateFile: string | null
}> {
  override get message() {
    const where = this.binary.includes("/") ? this.binary : `${this.binary} (looked up on PATH)`
    const also = this.stateFile === null ? "" : ` and its state file ${this.stateFile} does not exist`
    return `The luallm CLI ${where} was not found${also}. Install luallm and start a model (\`luallm start <model>\`), set luallm.binary to its path, or set llm.base_url (LUALLM_AGENT_LLM_BASE_URL) to an OpenAI-compatible server.`
  }
}

export class LuallmStatusInvalid extends Data.TaggedError("LuallmStatusInvalid")<{
  /** The command or file the status came from. */
  readonly source: string
  readonly reason: string
}> {
  override get message() {
    return `${this.source} did not hold a valid luallm status: ${this.reason}\nExpected {"version", "last_used", "servers": [{"model", "port", "pid", "state": "running" | "stopped"}]}. Check that luallm.binary is the luallm CLI and luallm.state_file its state file, or update luallm.`
  }
}

export class LuallmCommandFailed extends Data.TaggedError("LuallmCommandFailed")<{
  readonly command: string
  /** `null` when it did not finish in time. */
  readonly exitCode: number | null
  readonly output: string
}> {
  override get message() {
    const how = this.exitCode === null ? "did not finish in time" : `exited with ${this.exitCode}`
    const output = this.output.trim() === "" ? "" : `: ${this.output.trim().slice(0, 500)}`
    return `\`${this.command}\` ${how}${output}. Run it yourself to see the problem, or check luallm.binary.`
  }
}

export class ModelNotRunning extends Data.TaggedError("ModelNotRunning")<{
  readonly model: string
  readonly running: ReadonlyArray<string>
  readonly startCommand: string
}> {
  override get message() {
    const running = this.running.length === 0 ? "no model is running" : `running: ${this.running.join(", ")}`
    return `The model "${this.model}" is not running (${running}). Start it with \`${this.startCommand}\`, or pick a running model with --model or luallm.model.`
  }
}

export class NoModelAvailable extends Data.TaggedError("NoModelAvailable")<{
  readonly purpose: ModelPurpose
  readonly reason: string
  readonly binary: string
}> {
  override get message() {
    return `No model to use for ${this.purpose}: ${this.reason}. Start one with \`${this.binary} start <model>\`, or name one with --model, luallm.model or model_policy.${this.purpose} in the config.`
  }
}

export class ModelNotReady extends Data.TaggedError("ModelNotReady")<{
  readonly model: string
  readonly waitedSeconds: number
  readonly lastSeen: string
}> {
  override get message() {
    return `The model "${this.model}" was not ready after ${this.waitedSeconds}s (last seen: ${this.lastSeen}). Large models take a while to load: wait and try again, or look at its log with \`luallm logs ${this.model}\`.`
  }
}

/** Discovery and luallm CLI failures. */
export type LuallmError = LuallmNotFound | LuallmStatusInvalid | LuallmCommandFailed

export interface LuallmShape {
  /** luallm's view of its servers. */
  readonly status: Effect.Effect<LuallmStatus, LuallmError>
  readonly runningModels: Effect.Effect<ReadonlyArray<RunningModel>, LuallmError>
  /** `luallm.model` > model policy for `purpose` > the running `last_used` > the first running model. */
  readonly resolveModel: (purpose: ModelPurpose) => Effect.Effect<string, LuallmError | NoModelAvailable>
  /**
   * The base URL (`http://host:port`, no `/v1`) that serves `model`: `llm.base_url` when set,
   * else the port of its luallm server (matched exactly, else by luallm's own substring rule).
   */
  readonly endpoint: (model: string) => Effect.Effect<string, LuallmError | ModelNotRunning>
  readonly start: (model: string) => Effect.Effect<void, LuallmError>
  readonly stop: (model: string) => Effect.Effect<void, LuallmError>
  /** Polls the model's `/health` until it answers 200 (llama-server says 503 while loading). */
  readonly waitForReady: (model: string, timeout: Duration.DurationInput) => Effect.Effect<void, LuallmError | ModelNotReady>
  /** The shell command a human would type to start `model`. */
  readonly startCommand: (model: string) => string
}

export class Luallm extends Context.Tag("Luallm")<Luallm, LuallmShape>() {}

/** `http://host:port`, `http://host:port/` and `http://host:port/v1/` all become `http://host:port`. */
export const normalizeBaseUrl = (url: string): string => url.trim().replace(/\/+$/, "").replace(/\/v1$/, "")

const shellWord = (word: string): string => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`)

const runningServers = (status: LuallmStatus): ReadonlyArray<RunningModel> =>
  status.servers.flatMap((server) =>
    server.state === "running" && server.port !== null
      ? [{ model: server.model, port: server.port, baseUrl: `http://127.0.0.1:${server.port}` }]
      : []
  )

/**
 * luallm's own rule: the servers running exactly `model`, else those whose model name contains
 * it. Several servers of one model (on several ports) are all endpoints for it.
 */
export const serversFor = (running: ReadonlyArray<RunningModel>, model: string): ReadonlyArray<RunningModel> => {
  const exact = running.filter((server) => server.model === model)
  return exact.length > 0 ? exact : running.filter((server) => server.model.toLowerCase().includes(model.toLowerCase()))
}

const findRunning = (running: ReadonlyArray<RunningModel>, model: string): RunningModel | undefined => serversFor(running, model)[0]

/** What a `/health` probe saw. */
export type Health = { readonly ready: true } | { readonly ready: false; readonly seen: string }

/** What differs between the Live and Test layers; everything else is `makeLuallm`. */
interface LuallmBackend {
  readonly readStatus: Effect.Effect<LuallmStatus, LuallmError>
  readonly start: (model: string) => Effect.Effect<void, LuallmError>
  readonly stop: (model: string) => Effect.Effect<void, LuallmError>
  readonly health: (baseUrl: string) => Effect.Effect<Health>
}

const POLL_INTERVAL = Duration.millis(250)

const makeLuallm = (app: AppConfigShape, backend: LuallmBackend): LuallmShape => {
  const { config } = app
  const baseUrl = Option.map(Option.fromNullable(config.llm.base_url), normalizeBaseUrl)
  const startCommand = (model: string) => `${shellWord(config.luallm.binary)} start ${shellWord(model)}`
  const runningModels = Effect.map(backend.readStatus, runningServers)

  const endpoint = (model: string) =>
    Option.isSome(baseUrl) ? Effect.succeed(baseUrl.value) : Effect.flatMap(runningModels, (running) => {
      const server = findRunning(running, model)
      return server !== undefined
        ? Effect.succeed(server.baseUrl)
        : new ModelNotRunning({ model, running: running.map((r) => r.model), startCommand: startCommand(model) })
    })

  const resolveModel = Effect.fn("Luallm.resolveModel")(function*(purpose: ModelPurpose) {
    const configured = app.modelPolicy(purpose)
    if (Option.isSome(configured)) return configured.value
    const status = yield* backend.readStatus
    const running = runningServers(status)
    const chosen = running.find((server) => server.model === status.last_used) ?? running[0]
    if (chosen === undefined) {
      return yield* new NoModelAvailable({
        purpose,
        reason: "none is configured and luallm reports no running model",
        binary: config.luallm.binary
      })
    }
    return chosen.model
  })

  const waitForReady = Effect.fn("Luallm.waitForReady")(function*(model: string, timeout: Duration.DurationInput) {
    const lastSeen = yield* Ref.make("nothing yet")
    const observe = endpoint(model).pipe(
      Effect.flatMap(backend.health),
      Effect.catchTag("ModelNotRunning", () => Effect.succeed<Health>({ ready: false, seen: "not running in luallm status" }))
    )
    yield* observe.pipe(
      Effect.tap((health) => (health.ready ? Effect.void : Ref.set(lastSeen, health.seen))),
      Effect.repeat({ schedule: Schedule.spaced(POLL_INTERVAL), until: (health) => health.ready }),
      Effect.timeout(timeout),
      Effect.catchTag("TimeoutException", () =>
        Effect.flatMap(Ref.get(lastSeen), (seen) =>
          new ModelNotReady({ model, waitedSeconds: Duration.toSeconds(timeout), lastSeen: seen })))
    )
  })

  return {
    status: backend.readStatus,
    runningModels,
    resolveModel,
    endpoint,
    start: (model) => Effect.withSpan(backend.start(model), "Luallm.start"),
    stop: (model) => Effect.withSpan(backend.stop(model), "Luallm.stop"),
    waitForReady,
    startCommand
  }
}

const decodeStatus = (source: string, text: string) =>
  Schema.decodeUnknown(fromJsonText(LuallmStatus))(text).pipe(
    Effect.mapError((error) => new LuallmStatusInvalid({ source, reason: formatParseError(error) }))
  )

interface CliOutput {
  readonly exitCode: number
  readonly stdout: string
  readonly stderr: string
}

/** luallm answers at once (`start` launches a daemon and returns); a hung CLI must not hang us. */
const CLI_TIMEOUT = Duration.seconds(30)

const isNotFound = (error: PlatformError): boolean => error._tag === "SystemError" && error.reason === "NotFound"

/** The Live backend: the luallm CLI, its state file and the servers' `/health`. */
const liveBackend = Effect.gen(function*() {
  const { config } = yield* AppConfig
  const executor = yield* CommandExecutor.CommandExecutor
  const fs = yield* FileSystem.FileSystem
  const http = yield* HttpClient.HttpClient
  const binary = config.luallm.binary
  const stateFile = config.luallm.state_file
  const display = (args: ReadonlyArray<string>) => [binary, ...args].map(shellWord).join(" ")

  const execute = (args: ReadonlyArray<string>): Effect.Effect<Either.Either<CliOutput, PlatformError>, LuallmCommandFailed> =>
    Effect.scoped(Effect.gen(function*() {
      const process = yield* Command.start(Command.make(binary, ...args))
      const text = (stream: Stream.Stream<Uint8Array, PlatformError>) => stream.pipe(Stream.decodeText(), Stream.mkString)
      const [stdout, stderr, exitCode] = yield* Effect.all([text(process.stdout), text(process.stderr), process.exitCode], {
        concurrency: "unbounded"
      })
      return { exitCode: Number(exitCode), stdout, stderr }
    })).pipe(
      Effect.provideService(CommandExecutor.CommandExecutor, executor),
      Effect.either,
      Effect.timeoutFail({
        duration: CLI_TIMEOUT,
        onTimeout: () => new LuallmCommandFailed({ command: display(args), exitCode: null, output: "" })
      })
    )

  const failure = (
    args: ReadonlyArray<string>,
    outcome: Either.Either<CliOutput, PlatformError>,
    withStateFile: boolean
  ): Effect.Effect<never, LuallmNotFound | LuallmCommandFailed> =>
    Effect.fail(Either.match(outcome, {
      onLeft: (error) =>
        isNotFound(error)
          ? new LuallmNotFound({ binary, stateFile: withStateFile ? stateFile : null })
          : new LuallmCommandFailed({ command: display(args), exitCode: null, output: error.message }),
      onRight: (output) =>
        new LuallmCommandFailed({ command: display(args), exitCode: output.exitCode, output: output.stderr || output.stdout })
    }))

  const statusArgs = ["status", "--json"]
  const readStatus = Effect.gen(function*() {
    const outcome = yield* execute(statusArgs)
    if (Either.isRight(outcome) && outcome.right.exitCode === 0) {
      return yield* decodeStatus(`\`${display(statusArgs)}\``, outcome.right.stdout)
    }
    const hasStateFile = yield* fs.exists(stateFile).pipe(Effect.orElseSucceed(() => false))
    if (!hasStateFile) return yield* failure(statusArgs, outcome, true)
    const text = yield* fs.readFileString(stateFile).pipe(
      Effect.mapError((error) => new LuallmStatusInvalid({ source: stateFile, reason: error.message }))
    )
    return yield* decodeStatus(stateFile, text)
  }).pipe(Effect.withSpan("Luallm.status"))

  const run = (args: ReadonlyArray<string>) =>
    Effect.flatMap(execute(args), (outcome) =>
      Either.isRight(outcome) && outcome.right.exitCode === 0 ? Effect.void : failure(args, outcome, false))

  const health = (baseUrl: string): Effect.Effect<Health> =>
    http.get(`${baseUrl}/health`).pipe(
      Effect.flatMap((response) =>
        response.status === 200
          ? Effect.succeed<Health>({ ready: true })
          : Effect.map(response.text, (body): Health => ({ ready: false, seen: `HTTP ${response.status} ${body.slice(0, 200)}`.trim() }))
      ),
      Effect.timeout(Duration.seconds(5)),
      Effect.catchAll((error) => Effect.succeed<Health>({ ready: false, seen: `${baseUrl}/health: ${error.message}` })),
      Effect.scoped
    )

  return {
    readStatus,
    start: (model) => run(["start", model]),
    stop: (model) => run(["stop", model]),
    health
  } satisfies LuallmBackend
})

/** The live layer: the luallm CLI (`luallm.binary`), its state file and HTTP. */
export const LuallmLive: Layer.Layer<
  Luallm,
  never,
  AppConfig | CommandExecutor.CommandExecutor | FileSystem.FileSystem | HttpClient.HttpClient
> = Layer.effect(Luallm, Effect.gen(function*() {
  return makeLuallm(yield* AppConfig, yield* liveBackend)
}))

/** A start or stop the Test layer was asked for. */
export interface LuallmCall {
  readonly action: "start" | "stop"
  readonly model: string
}

/** What the Test layer has been asked to do, for tests. */
export class LuallmCalls extends Context.Tag("LuallmCalls")<LuallmCalls, {
  readonly calls: Effect.Effect<ReadonlyArray<LuallmCall>>
}>() {}

/**
 * luallm in memory: `status` is the scripted state; `start` marks the model running on the
 * next free port from 8080 and `stop` marks it stopped, both recorded in `LuallmCalls`;
 * a running model (or `llm.base_url`) is healthy at once.
 */
export const LuallmTest = (initial: LuallmStatus): Layer.Layer<Luallm | LuallmCalls, never, AppConfig> =>
  Layer.effectContext(Effect.gen(function*() {
    const app = yield* AppConfig
    const status = yield* Ref.make(initial)
    const calls = yield* Ref.make<ReadonlyArray<LuallmCall>>([])
    const record = (call: LuallmCall) => Ref.update(calls, (all) => [...all, call])
    const nextPort = (current: LuallmStatus) => {
      const taken = new Set(current.servers.map((server) => server.port))
      let port = 8080
      while (taken.has(port)) port++
      return port
    }
    const backend: LuallmBackend = {
      readStatus: Ref.get(status),
      start: (model) =>
        Effect.zipRight(
          record({ action: "start", model }),
          Ref.update(status, (current) => ({
            ...current,
            last_used: model,
            servers: [
              { model, port: nextPort(current), pid: null, state: "running" as const },
              ...current.servers.filter((server) => server.model !== model)
            ]
          }))
        ),
      stop: (model) =>
        Effect.zipRight(
          record({ action: "stop", model }),
          Ref.update(status, (current) => {
            const target = findRunning(runningServers(current), model)?.model
            return {
              ...current,
              servers: current.servers.map((server) => server.model === target ? { ...server, state: "stopped" as const } : server)
            }
          })
        ),
      health: (url) =>
        Effect.map(Ref.get(status), (current): Health =>
          url === normalizeBaseUrl(app.config.llm.base_url ?? "") ||
            runningServers(current).some((server) => server.baseUrl === url)
            ? { ready: true }
            : { ready: false, seen: `nothing listens at ${url}` })
    }
    return Context.make(Luallm, makeLuallm(app, backend)).pipe(Context.add(LuallmCalls, { calls: Ref.get(calls) }))
  }))
