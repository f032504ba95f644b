/**
 * The `AppConfig` service: the effective configuration (defaults ← file ← environment),
 * where each value came from, and the checks built on it (`isPathAllowed`, model policy,
 * approval tiers). Loading finds the file in SPEC order: `--config`,
 * `$LUALLM_AGENT_CONFIG`, `./luallm-agent.json`, `~/.config/luallm-agent/config.json`.
 */
import { FileSystem, Path } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Config, Context, Data, Effect, Either, Layer, Option } from "effect"
import {
  absolutizePaths,
  type AgentConfig,
  type ConfigEnvironment,
  type ConfigFileCandidate,
  configFileCandidates,
  configInside as configInsideWith,
  type ConfigIssue,
  type ConfigSource,
  decodeConfig,
  deepMerge,
  defaultConfig,
  describeSource,
  envOverrides,
  envVariableFor,
  leafKeys,
  fileSources,
  followStateDir,
  isJsonObject,
  type Json,
  type JsonObject,
  type Tier
} from "../core/config.ts"
import { parseJsonText } from "../core/jsonText.ts"
import { globBase, matchesAnyGlob, normalizePath } from "../core/pathGlob.ts"
import { builtinSkillsDir } from "../packageRoot.ts"

export class ConfigFileNotFound extends Data.TaggedError("ConfigFileNotFound")<{
  readonly path: string
  readonly via: string
}> {
  override get message() {
    return `The config file ${this.path} (given by ${this.via}) does not exist. Create it, or drop ${this.via} to use the defaults.`
  }
}

export class ConfigFileUnreadable extends Data.TaggedError("ConfigFileUnreadable")<{
  readonly path: string
  readonly reason: string
}> {
  override get message() {
    return `The config file ${this.path} is not valid: ${this.reason}. Fix the file so that it holds one JSON object.`
  }
}

export class ConfigInvalid extends Data.TaggedError("ConfigInvalid")<{
  readonly file: string | null
  readonly issues: ReadonlyArray<ConfigIssue>
}> {
  override get message() {
    const where = `The configuration${this.file === null ? "" : ` in ${this.file}`} is invalid`
    const describe = (issue: ConfigIssue) => `${issue.key}: ${issue.message} (from ${describeSource(issue.source)})`
    // `config` cannot load an invalid configuration either; `doctor` reports it as a failed check.
    const [only, ...others] = this.issues
    if (only !== undefined && others.length === 0) {
      return `${where}: ${describe(only)}. Fix it where it was set, then check with \`luallm-agent doctor\`.`
    }
    return [
      `${where}:`,
      ...this.issues.map((issue) => `  ${describe(issue)}`),
      "Fix these keys where they were set, then check with `luallm-agent doctor`."
    ].join("\n")
  }
}

export type ConfigError = ConfigFileNotFound | ConfigFileUnreadable | ConfigInvalid

export type ModelPurpose = "planning" | "code" | "default"
export type ApprovalAction = keyof AgentConfig["approval_tiers"]

/** A path after `~`, `..` and symlinks are resolved, with the verdict against a set of globs. */
export interface PathVerdict {
  readonly requested: string
  readonly resolved: string
  readonly allowed: boolean
}

export interface AppConfigShape {
  readonly config: AgentConfig
  /** Leaf key path (`limits.max_task_steps`) → where its value came from. */
  readonly sources: ReadonlyMap<string, ConfigSource>
  /** The file that was loaded, if any. */
  readonly file: Option.Option<string>
  /** Every place a config file was looked for (the loaded one among them): skills may not write them. */
  readonly configFiles: ReadonlyArray<ConfigFileCandidate>
  /** Resolves `~`, `..` and symlinks, then matches against `allowed_paths`. */
  readonly isPathAllowed: (path: string) => Effect.Effect<boolean>
  /** Resolves `path` and matches it against `globs` (themselves resolved); used by the sandbox. */
  readonly checkPath: (path: string, globs: ReadonlyArray<string>) => Effect.Effect<PathVerdict>
  readonly modelPolicy: (purpose: ModelPurpose) => Option.Option<string>
  readonly approvalTier: (action: ApprovalAction) => Tier
}

export class AppConfig extends Context.Tag("AppConfig")<AppConfig, AppConfigShape>() {}

/**
 * The real path of `path`: symlinks in its longest existing prefix are resolved, the part
 * that does not exist yet (a file about to be written) is kept as written.
 */
export const resolveRealPath = (
  fs: FileSystem.FileSystem,
  path: Path.Path,
  absolute: string
): Effect.Effect<string> =>
  fs.realPath(absolute).pipe(
    Effect.catchAll(() => {
      const parent = path.dirname(absolute)
      if (parent === absolute) return Effect.succeed(absolute)
      return resolveRealPath(fs, path, parent).pipe(Effect.map((real) => path.join(real, path.basename(absolute))))
    })
  )

const makeShape = (
  config: AgentConfig,
  sources: ReadonlyMap<string, ConfigSource>,
  file: Option.Option<string>,
  configFiles: ReadonlyArray<ConfigFileCandidate>,
  resolve: (absolute: string) => Effect.Effect<string>,
  env: Pick<ConfigEnvironment, "home" | "cwd">
): AppConfigShape => {
  const resolveGlob = (glob: string): Effect.Effect<string> => {
    const absolute = normalizePath(glob, env.cwd, env.home)
    const base = globBase(absolute)
    return resolve(base).pipe(Effect.map((realBase) => realBase + absolute.slice(base.length)))
  }
  const checkPath = (requested: string, globs: ReadonlyArray<string>): Effect.Effect<PathVerdict> =>
    Effect.gen(function*() {
      const resolved = yield* resolve(normalizePath(requested, env.cwd, env.home))
      const realGlobs = yield* Effect.forEach(globs, resolveGlob)
      return { requested, resolved, allowed: matchesAnyGlob(resolved, realGlobs) }
    })
  return {
    config,
    sources,
    file,
    configFiles,
    checkPath,
    isPathAllowed: (path) => checkPath(path, config.allowed_paths).pipe(Effect.map((verdict) => verdict.allowed)),
    modelPolicy: (purpose) =>
      Option.fromNullable(config.luallm.model ?? config.model_policy[purpose] ?? config.model_policy.default),
    approvalTier: (action) => config.approval_tiers[action]
  }
}

const readJsonObject = (fs: FileSystem.FileSystem, file: string) =>
  Effect.gen(function*() {
    const text = yield* fs.readFileString(file).pipe(
      Effect.mapError((error: PlatformError) => new ConfigFileUnreadable({ path: file, reason: error.message }))
    )
    const parsed = yield* Either.mapLeft(parseJsonText(text), (reason) => new ConfigFileUnreadable({ path: file, reason: `not JSON (${reason})` }))
    if (!isJsonObject(parsed)) {
      return yield* new ConfigFileUnreadable({ path: file, reason: "the top level is not a JSON object" })
    }
    return parsed
  })

/** A config file's keys, all or some: the settings an embedding app gives in code. */
export type ConfigSettings = {
  readonly [Key in keyof AgentConfig]?: AgentConfig[Key] extends ReadonlyArray<unknown> ? AgentConfig[Key]
    : { readonly [Leaf in keyof AgentConfig[Key]]?: AgentConfig[Key][Leaf] }
}

export interface LoadOptions {
  /** `--config` from the command line. */
  readonly configPath?: string | undefined
  /** Directory of the shipped skills; by default the installed package's own `skills/`. */
  readonly builtinSkillsDir?: string | undefined
  /**
   * Settings an embedding app gives in code, with a config file's keys (all or some): laid
   * over the defaults, the file and the environment, and validated like them.
   */
  readonly settings?: unknown
  /** `--store` from the command line: overrides `store` from the file, the environment and the app. */
  readonly store?: string | undefined
  /** Other command-line options that set a key (`worker --port` sets `cluster.port`), overriding it likewise. */
  readonly optionKeys?: ReadonlyArray<{ readonly key: ReadonlyArray<string>; readonly option: string; readonly value: Json }>
}

/** The app's settings as an object of config keys, with where each came from. */
const appSettings = (settings: unknown): Effect.Effect<{ readonly values: JsonObject; readonly keys: ReadonlyArray<string> }, ConfigInvalid> =>
  settings === undefined
    ? Effect.succeed({ values: {}, keys: [] })
    : isJsonObject(settings)
    ? Effect.succeed({ values: settings, keys: leafKeys(settings).map((key) => key.join(".")) })
    : new ConfigInvalid({
      file: null,
      issues: [{ key: "(settings)", message: `expected an object with a config file's keys, got ${JSON.stringify(settings) ?? String(settings)}`, source: { _tag: "app" } }]
    })

/** `value` under the key path `key`: `["cluster", "port"]`, 7400 → `{ cluster: { port: 7400 } }`. */
const nestedUnder = (key: ReadonlyArray<string>, value: Json): JsonObject => {
  const [head, ...rest] = key
  return head === undefined ? {} : { [head]: rest.length === 0 ? value : nestedUnder(rest, value) }
}

/** Finds the config file in SPEC order; a file named by `--config` or the environment must exist. */
const findConfigFile = (candidates: ReadonlyArray<ConfigFileCandidate>) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    for (const candidate of candidates) {
      if (yield* fs.exists(candidate.path).pipe(Effect.orElseSucceed(() => false))) return Option.some(candidate.path)
      if (candidate.named) return yield* new ConfigFileNotFound({ path: candidate.path, via: candidate.via })
    }
    return Option.none<string>()
  })

/** Loads and validates the configuration; the pure merging lives in `core/config.ts`. */
export const loadConfig = (options: LoadOptions) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const optionalEnv = (name: string) => Config.option(Config.string(name)).pipe(Effect.orElseSucceed(() => Option.none<string>()))
    const home = Option.getOrElse(yield* optionalEnv("HOME"), () => "/")
    const env: ConfigEnvironment = {
      home,
      cwd: path.resolve("."),
      xdgStateHome: Option.getOrUndefined(yield* optionalEnv("XDG_STATE_HOME")),
      xdgDataHome: Option.getOrUndefined(yield* optionalEnv("XDG_DATA_HOME")),
      xdgCacheHome: Option.getOrUndefined(yield* optionalEnv("XDG_CACHE_HOME")),
      builtinSkillsDir: options.builtinSkillsDir ?? builtinSkillsDir
    }
    const defaults = defaultConfig(env)
    const envFile = yield* optionalEnv("LUALLM_AGENT_CONFIG")
    const configFiles = configFileCandidates({ flag: options.configPath, variable: Option.getOrUndefined(envFile) }, env)
    const file = yield* findConfigFile(configFiles)
    const fromFile: JsonObject = Option.isSome(file) ? yield* readJsonObject(fs, file.value) : {}

    // Environment lookups go through Effect's ConfigProvider so tests can supply a map.
    const variables = new Map<string, string>()
    for (const name of leafKeys(defaults).map(envVariableFor)) {
      const value = yield* optionalEnv(name)
      if (Option.isSome(value)) variables.set(name, value.value)
    }
    const fromEnv = envOverrides(defaults, (name) => variables.get(name))
    const fromApp = yield* appSettings(options.settings)

    const sources = new Map<string, ConfigSource>()
    if (Option.isSome(file)) for (const [key, source] of fileSources(file.value, fromFile)) sources.set(key, source)
    for (const [key, source] of fromEnv.sources) sources.set(key, source)
    for (const key of fromApp.keys) sources.set(key, { _tag: "app" })

    const optionKeys = [
      ...(options.store === undefined ? [] : [{ key: ["store"], option: "--store", value: options.store }]),
      ...(options.optionKeys ?? [])
    ]
    for (const { key, option } of optionKeys) sources.set(key.join("."), { _tag: "option", option })
    const fromOptions = optionKeys.reduce<JsonObject>((merged, { key, value }) => deepMerge(merged, nestedUnder(key, value)), {})
    const merged = deepMerge(
      deepMerge(deepMerge(deepMerge(defaults as unknown as JsonObject, fromFile), fromEnv.values), fromApp.values),
      fromOptions
    )
    const decoded = decodeConfig(merged, sources)
    if (Either.isLeft(decoded)) {
      return yield* new ConfigInvalid({ file: Option.getOrNull(file), issues: decoded.left })
    }
    const { config, sources: followed } = followStateDir(absolutizePaths(decoded.right, sources, env, (f) => path.dirname(f)), sources)
    const resolve = (absolute: string) => resolveRealPath(fs, path, absolute)
    return makeShape(config, followed, file, configFiles, resolve, env)
  })

/** The live layer: reads the file system and the environment. */
export const AppConfigLive = (options: LoadOptions = {}): Layer.Layer<AppConfig, ConfigError, FileSystem.FileSystem | Path.Path> =>
  Layer.effect(AppConfig, loadConfig(options))

/**
 * A layer over a given configuration, for tests and for apps that embed the agent.
 * Paths are resolved with the real file system so symlink checks still hold.
 */
export const AppConfigFrom = (
  config: AgentConfig,
  env: Pick<ConfigEnvironment, "home" | "cwd"> = { home: "/nonexistent-home", cwd: "/" }
): Layer.Layer<AppConfig, never, FileSystem.FileSystem | Path.Path> =>
  Layer.effect(
    AppConfig,
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const configFiles = configFileCandidates({}, env)
      return makeShape(config, new Map(), Option.none(), configFiles, (absolute) => resolveRealPath(fs, path, absolute), env)
    })
  )

/**
 * A configuration that keeps everything the agent writes inside `dir`, for an app that embeds
 * it: the core `configInside`, with the installed package's shipped skills as
 * `skills.builtin_dir` unless `options.builtinSkillsDir` names others.
 */
export const configInside = (dir: string, options: Parameters<typeof configInsideWith>[1] = {}): AgentConfig =>
  configInsideWith(dir, { ...options, builtinSkillsDir: options.builtinSkillsDir ?? builtinSkillsDir })

export { type AgentConfig, defaultConfig, type Tier } from "../core/config.ts"
