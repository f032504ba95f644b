/**
 * The configuration's shape, its defaults and the pure steps of loading it:
 * defaults ← file ← environment, then one Schema decode that names every bad key.
 * The I/O (finding and reading the file, resolving symlinks) is in `src/layers/Config.ts`.
 */
import { Either, Schema } from "effect"
import { type Json, type JsonObject, parseJsonText, previewValue } from "./jsonText.ts"
import { parseIssues } from "./schemaIssues.ts"
import { normalizePath } from "./pathGlob.ts"

/** A message that replaces the inner ones too: "expected X, got Y" whatever part failed. */
const expected = (what: string) => ({
  message: (issue: { readonly actual: unknown }) => ({ message: `expected ${what}, got ${previewValue(issue.actual)}`, override: true })
})

const PositiveInt = Schema.Number.pipe(Schema.int(), Schema.positive()).annotations(expected("a positive integer"))
const NonNegativeInt = Schema.Number.pipe(Schema.int(), Schema.nonNegative()).annotations(expected("a whole number ≥ 0"))
const PathString = Schema.String.pipe(Schema.minLength(1)).annotations(expected("a non-empty path"))
const OptionalString = Schema.NullOr(Schema.String).annotations(expected("a string or null"))
const Flag = Schema.Boolean.annotations(expected("true or false"))

/** A scheme written before `://` (`ftp://`, `http://`), to swap for `http://` in the fix. */
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//

/** How a server address that is not an http(s) URL should be written: `localhost:8089` → `http://localhost:8089`. */
export const httpUrlFix = (value: string): string | null => {
  const rest = value.trim().replace(SCHEME, "").replace(/^\/+/, "")
  return rest === "" || /\s/.test(rest) ? null : `http://${rest}`
}

/**
 * A server address: `http://` or `https://`, then a host. Anything else is refused at load,
 * with the same address written as it should be (a string without a scheme would otherwise
 * reach the HTTP client and fail there, far from the key that caused it).
 */
const httpUrlMessage = {
  message: (issue: { readonly actual: unknown }) => {
    const fix = typeof issue.actual === "string" ? httpUrlFix(issue.actual) : null
    const how = fix === null ? `write it like "http://127.0.0.1:8080"` : `write it as ${JSON.stringify(fix)}`
    return { message: `expected an http:// or https:// URL, got ${previewValue(issue.actual)}; ${how}`, override: true }
  }
}
const HttpUrl = Schema.String.pipe(Schema.pattern(/^https?:\/\/[^/\s]+/)).annotations(httpUrlMessage)
/** A secret: never echoed back in a message (`config` masks it too). */
const SecretString = Schema.NullOr(Schema.String).annotations({
  message: (issue: { readonly actual: unknown }) => ({ message: `expected a string or null, got a ${typeof issue.actual}`, override: true })
})

/**
 * Where tasks and the audit log are kept: `"file"` (in `state_dir` and `audit.path`, the
 * default) or a PostgreSQL URL (`postgres://user:password@host:5432/db`) shared by processes.
 */
export const StoreSpec = Schema.String.pipe(
  Schema.filter((spec) => spec === "file" || /^postgres(ql)?:\/\/\S+$/.test(spec))
).annotations(expected(`"file" or a postgres:// URL`))

/** The URL of a PostgreSQL store, or `null` for the file store. */
export const postgresUrl = (spec: string): string | null => (spec === "file" ? null : spec)

/** A store URL fit to print: the password, if any, is replaced by `***`. */
export const describeStore = (spec: string): string => spec.replace(/^(postgres(?:ql)?:\/\/[^:@/]*:)[^@/]*@/, "$1***@")

/** How much human involvement an action needs (SPEC part 1). */
export const Tier = Schema.Literal("auto", "prompt", "human").annotations(expected(`"auto", "prompt" or "human"`))
export type Tier = typeof Tier.Type

export const ConfigSchema = Schema.Struct({
  luallm: Schema.Struct({
    /** The luallm CLI; a bare name is looked up on PATH. */
    binary: PathString,
    /** Model to use, overriding discovery and the model policy. */
    model: OptionalString,
    /** luallm's state file, read when `luallm status --json` is unavailable. */
    state_file: PathString
  }),
  llm: Schema.Struct({
    /** An OpenAI-compatible server (`http://host:port` or `http://host:port/v1`); skips discovery. */
    base_url: Schema.NullOr(HttpUrl).annotations(httpUrlMessage),
    /** Sent as `Authorization: Bearer …`; `config` shows only whether it is set and where from. */
    api_key: SecretString,
    /** Several servers (with base_url, if set): each call goes to a healthy one serving its model, with a free slot. */
    endpoints: Schema.Array(HttpUrl),
    /** Whether structured answers are requested as a JSON schema the server enforces: where supported (`auto`), always, never. */
    constrained: Schema.Literal("auto", "on", "off").annotations(expected(`"auto", "on" or "off"`)),
    /** The model's context in tokens, for servers that do not report it (llama-server's /props does); 0: unknown. */
    context_tokens: NonNegativeInt,
    /** The longest answer asked for, per kind of call. */
    max_tokens: Schema.Struct({ plan: PositiveInt, code: PositiveInt, node: PositiveInt }),
    /** How often a refused connection, 429 or 5xx is asked again. */
    max_retries: NonNegativeInt,
    /** The longest wait before asking again (a server's Retry-After is capped to it). */
    retry_max_seconds: PositiveInt
  }),
  /** Globs of paths skills may touch; a skill's own `paths` must also match. */
  allowed_paths: Schema.Array(PathString),
  skills: Schema.Struct({
    /** Promoted, human-approved skills. */
    allowed_dir: PathString,
    /** Drafts written by the agent, untrusted until approved. */
    agent_dir: PathString,
    /** The skills shipped with luallm-agent (trusted, read-only). */
    builtin_dir: PathString
  }),
  state_dir: PathString,
  store: StoreSpec,
  audit: Schema.Struct({
    path: PathString,
    max_size_mb: Schema.Number.pipe(Schema.positive()).annotations(expected("a positive number of megabytes")),
    max_files: NonNegativeInt
  }),
  limits: Schema.Struct({
    max_task_steps: PositiveInt,
    max_plan_retries: NonNegativeInt,
    max_skill_retries: NonNegativeInt,
    /** The longest silence from the model: no byte of its answer for this long ends the call. */
    llm_timeout_seconds: PositiveInt,
    /** The longest one model call may take, however steadily it streams. */
    llm_call_max_seconds: PositiveInt,
    /** The most tokens (prompt + answer) all model calls of one task may use. */
    max_task_tokens: PositiveInt,
    skill_timeout_seconds: PositiveInt,
    skill_memory_mb: PositiveInt,
    max_parallel_nodes: PositiveInt,
    /** The most nodes a plan may have: every node is a model call or a sandboxed run. */
    max_plan_nodes: PositiveInt,
    /** Tasks one process drives at once (they share the LLM and the sandbox); more wait their turn. */
    max_concurrent_tasks: PositiveInt
  }),
  model_policy: Schema.Struct({
    planning: OptionalString,
    code: OptionalString,
    default: OptionalString,
    /** Whether the agent may start a model itself instead of pausing in `model_wait`. */
    auto_start: Flag
  }),
  /**
   * Runners of the task cluster (`luallm-agent worker`, a Postgres store): where a runner listens
   * and how the runners share the tasks. Every runner and client of one store must agree on
   * `shards`; the rest is per runner.
   */
  cluster: Schema.Struct({
    /** The address a runner listens on and registers for the others to reach it (127.0.0.1: one machine). */
    host: Schema.String.pipe(Schema.minLength(1)).annotations(expected("a host name or IP address")),
    /** The runner's port; 0 picks a free one. */
    port: Schema.Number.pipe(Schema.int(), Schema.between(0, 65535)).annotations(expected("a port number from 0 to 65535")),
    /** How many shards the tasks are spread over; the same for every runner and client of the store. */
    shards: PositiveInt,
    /** How long a silent runner keeps its shards: after it, they move to the others (a third of it is the heartbeat). */
    lease_seconds: Schema.Number.pipe(Schema.int(), Schema.greaterThanOrEqualTo(3)).annotations(expected("a whole number of seconds ≥ 3")),
    /** How often one runner pings the others; an unanswered runner loses its shards without waiting for the lease. */
    health_check_seconds: PositiveInt
  }),
  approval_tiers: Schema.Struct({
    task_confirmation: Tier,
    /** Promotion of drafted code always needs a human; the schema refuses anything else. */
    skill_promotion: Schema.Literal("human").annotations(expected(`"human" (skill promotion always needs a human)`)),
    model_start: Tier,
    /** Granting a skill the host `exec` capability (shell_safe). */
    skill_exec: Tier
  })
})
export type AgentConfig = typeof ConfigSchema.Type

/** Where the defaults come from: the environment the process runs in. */
export interface ConfigEnvironment {
  readonly home: string
  readonly cwd: string
  readonly xdgStateHome?: string | undefined
  readonly xdgDataHome?: string | undefined
  readonly xdgCacheHome?: string | undefined
  /** Directory of the shipped `skills/`. */
  readonly builtinSkillsDir: string
}

/**
 * The keys whose default lives under `state_dir` (README: `<state_dir>/audit.jsonl`,
 * `<state_dir>/drafts`): they follow `state_dir` wherever it is set, unless set themselves.
 */
const underStateDir: ReadonlyArray<{ readonly key: ReadonlyArray<string>; readonly child: string }> = [
  { key: ["audit", "path"], child: "audit.jsonl" },
  { key: ["skills", "agent_dir"], child: "drafts" }
]

const joinUnder = (dir: string, child: string): string => `${dir.replace(/\/+$/, "")}/${child}`

export const defaultConfig = (env: ConfigEnvironment): AgentConfig => {
  const stateHome = env.xdgStateHome ?? `${env.home}/.local/state`
  const dataHome = env.xdgDataHome ?? `${env.home}/.local/share`
  const cacheHome = env.xdgCacheHome ?? `${env.home}/.cache`
  const stateDir = `${stateHome}/luallm-agent`
  return followStateDir({
    luallm: { binary: "luallm", model: null, state_file: `${cacheHome}/luallm/state.json` },
    llm: {
      base_url: null,
      api_key: null,
      endpoints: [],
      constrained: "auto",
      context_tokens: 0,
      max_tokens: { plan: 4096, code: 4096, node: 2048 },
      max_retries: 3,
      retry_max_seconds: 30
    },
    allowed_paths: [],
    skills: {
      allowed_dir: `${dataHome}/luallm-agent/skills`,
      agent_dir: "", // under state_dir: filled in by followStateDir
      builtin_dir: env.builtinSkillsDir
    },
    state_dir: stateDir,
    store: "file",
    audit: { path: "", /* under state_dir, likewise */ max_size_mb: 10, max_files: 5 },
    limits: {
      max_task_steps: 100,
      max_plan_retries: 3,
      max_skill_retries: 3,
      llm_timeout_seconds: 120,
      llm_call_max_seconds: 1800,
      max_task_tokens: 1_000_000,
      skill_timeout_seconds: 10,
      skill_memory_mb: 64,
      max_parallel_nodes: 4,
      max_plan_nodes: 200,
      max_concurrent_tasks: 4
    },
    model_policy: { planning: null, code: null, default: null, auto_start: false },
    cluster: { host: "127.0.0.1", port: 0, shards: 300, lease_seconds: 35, health_check_seconds: 60 },
    approval_tiers: { task_confirmation: "prompt", skill_promotion: "human", model_start: "prompt", skill_exec: "human" }
  }, new Map()).config
}

/**
 * A configuration that keeps everything it writes (state, audit log, promoted skills, drafts)
 * inside `dir`: for the demo, the tests, the benches and the soak.
 */
export const configInside = (
  dir: string,
  options: { readonly builtinSkillsDir?: string; readonly allowedPaths?: ReadonlyArray<string> } = {}
): AgentConfig => {
  const builtin = options.builtinSkillsDir ?? `${dir}/builtin`
  const base = defaultConfig({ home: dir, cwd: dir, builtinSkillsDir: builtin })
  return {
    ...base,
    state_dir: `${dir}/state`,
    audit: { ...base.audit, path: `${dir}/state/audit.jsonl` },
    skills: { allowed_dir: `${dir}/skills`, agent_dir: `${dir}/drafts`, builtin_dir: builtin },
    allowed_paths: options.allowedPaths ?? []
  }
}

/** A place the loading looks for a config file, and the rule that names it. */
export interface ConfigFileCandidate {
  readonly path: string
  /** `--config`, `$LUALLM_AGENT_CONFIG`, `./luallm-agent.json` or `~/.config/luallm-agent/config.json`. */
  readonly via: string
  /** Named by the user (flag or environment): it must exist, and the default places are not read. */
  readonly named: boolean
}

/**
 * Every place a config file is looked for, in SPEC order, whether or not a file is there: the
 * one named on the command line (which wins) or in the environment, then the two default
 * places. A file at any of them would be trusted by the next run, so no skill may write one
 * (SPEC part 18).
 */
export const configFileCandidates = (
  named: { readonly flag?: string | undefined; readonly variable?: string | undefined },
  env: Pick<ConfigEnvironment, "home" | "cwd">
): ReadonlyArray<ConfigFileCandidate> => [
  ...(named.flag === undefined ? [] : [{ path: normalizePath(named.flag, env.cwd, env.home), via: "--config", named: true }]),
  ...(named.variable === undefined ? [] : [{ path: normalizePath(named.variable, env.cwd, env.home), via: "$LUALLM_AGENT_CONFIG", named: true }]),
  { path: normalizePath("luallm-agent.json", env.cwd, env.home), via: "./luallm-agent.json", named: false },
  { path: normalizePath("~/.config/luallm-agent/config.json", env.cwd, env.home), via: "~/.config/luallm-agent/config.json", named: false }
]

/** Where one effective value came from, for `luallm-agent config` and `ConfigInvalid`. */
export type ConfigSource =
  | { readonly _tag: "default" }
  /** The default, placed under another key's value (`audit.path` under `state_dir`). */
  | { readonly _tag: "follows"; readonly key: string }
  | { readonly _tag: "file"; readonly file: string }
  | { readonly _tag: "env"; readonly variable: string }
  /** Settings an embedding app gave in code (`createAgent({ config })`). */
  | { readonly _tag: "app" }
  /** A command-line option (`--store`). */
  | { readonly _tag: "option"; readonly option: string }

export const describeSource = (source: ConfigSource): string => {
  switch (source._tag) {
    case "default":
      return "default"
    case "follows":
      return `default (follows ${source.key})`
    case "file":
      return source.file
    case "env":
      return `$${source.variable}`
    case "app":
      return "the app's settings"
    case "option":
      return source.option
  }
}

/** One problem with the configuration, addressed by its key path (`limits.max_task_steps`). */
export interface ConfigIssue {
  readonly key: string
  readonly message: string
  readonly source: ConfigSource
}

const isObject = (value: unknown): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** Every leaf key path of the defaults, e.g. `["limits", "max_task_steps"]`. */
export const leafKeys = (value: unknown, prefix: ReadonlyArray<string> = []): Array<ReadonlyArray<string>> =>
  isObject(value)
    ? Object.entries(value).flatMap(([key, child]) => leafKeys(child, [...prefix, key]))
    : [prefix]

/** `LUALLM_AGENT_` + the key path upper-cased with `.` → `_`. */
export const envVariableFor = (key: ReadonlyArray<string>): string => `LUALLM_AGENT_${key.join("_").toUpperCase()}`

const getIn = (value: unknown, key: ReadonlyArray<string>): unknown =>
  key.reduce<unknown>((current, part) => (isObject(current) ? current[part] : undefined), value)

const setIn = (value: JsonObject, key: ReadonlyArray<string>, leaf: Json): JsonObject => {
  const [head, ...rest] = key
  if (head === undefined) return value
  const child = value[head]
  return { ...value, [head]: rest.length === 0 ? leaf : setIn(isObject(child) ? child : {}, rest, leaf) }
}

/** Keys whose values are secrets: `config` says whether they are set and where from, never what they are. */
export const secretKeys: ReadonlySet<string> = new Set(["llm.api_key"])

/** What `config` shows for a secret's value. */
export const maskedSecret = (value: unknown): string | null => (value === null || value === undefined ? null : "(set, hidden)")

/** The configuration with every secret's value replaced by `maskedSecret`. */
export const maskSecrets = (config: AgentConfig): JsonObject => {
  let out = config as unknown as JsonObject
  for (const key of secretKeys) {
    const path = key.split(".")
    out = setIn(out, path, maskedSecret(getIn(config, path)))
  }
  return out
}

/** Deep merge of plain objects; arrays and scalars in `override` replace. */
export const deepMerge = (base: JsonObject, override: JsonObject): JsonObject => {
  const out: Record<string, Json> = { ...base }
  for (const [key, value] of Object.entries(override)) {
    const current = out[key]
    out[key] = isObject(current) && isObject(value) ? deepMerge(current, value) : value
  }
  return out
}

/**
 * Turns an environment string into the type of the default it overrides, so that
 * `LUALLM_AGENT_LIMITS_MAX_TASK_STEPS=10` is a number and a typo stays a string that the
 * schema then names (`expected a positive integer, got "ten"`).
 */
const coerceEnv = (text: string, defaultValue: unknown): Json => {
  if (typeof defaultValue === "number") {
    const n = Number(text)
    return text.trim() !== "" && Number.isFinite(n) ? n : text
  }
  if (typeof defaultValue === "boolean") {
    const lower = text.trim().toLowerCase()
    return lower === "true" || lower === "1" ? true : lower === "false" || lower === "0" ? false : text
  }
  if (Array.isArray(defaultValue)) {
    const trimmed = text.trim()
    if (trimmed.startsWith("[")) {
      // Not JSON (or too deep): the PATH-style list below, which the schema then checks.
      const parsed = Either.getOrUndefined(parseJsonText(trimmed))
      if (Array.isArray(parsed)) return parsed.map((item) => (typeof item === "string" ? item : previewValue(item)))
    }
    return trimmed === "" ? [] : trimmed.split(":").filter((item) => item !== "")
  }
  return text
}

/** The environment's overrides as a partial config object, plus where each came from. */
export const envOverrides = (
  defaults: AgentConfig,
  lookup: (variable: string) => string | undefined
): { readonly values: JsonObject; readonly sources: ReadonlyMap<string, ConfigSource> } => {
  let values: JsonObject = {}
  const sources = new Map<string, ConfigSource>()
  for (const key of leafKeys(defaults)) {
    const variable = envVariableFor(key)
    const text = lookup(variable)
    if (text === undefined) continue
    values = setIn(values, key, coerceEnv(text, getIn(defaults, key)))
    sources.set(key.join("."), { _tag: "env", variable })
  }
  return { values, sources }
}

/** The leaf keys a file sets, for source tracking. */
export const fileSources = (file: string, contents: JsonObject): ReadonlyMap<string, ConfigSource> =>
  new Map(leafKeys(contents).map((key) => [key.join("."), { _tag: "file", file } as const]))

/** Keys whose values are file-system paths, made absolute after merging. */
const pathKeys: ReadonlyArray<ReadonlyArray<string>> = [
  ["luallm", "state_file"],
  ["skills", "allowed_dir"],
  ["skills", "agent_dir"],
  ["skills", "builtin_dir"],
  ["state_dir"],
  ["audit", "path"]
]

/**
 * Makes path values absolute: `~` expands, relative paths resolve against the directory of
 * the file that set them (or the working directory for defaults and the environment).
 * `luallm.binary` stays as written when it is a bare command name looked up on PATH.
 */
export const absolutizePaths = (
  config: AgentConfig,
  sources: ReadonlyMap<string, ConfigSource>,
  env: Pick<ConfigEnvironment, "home" | "cwd">,
  dirname: (file: string) => string
): AgentConfig => {
  const baseFor = (key: string): string => {
    const source = sources.get(key)
    return source?._tag === "file" ? dirname(source.file) : env.cwd
  }
  const absolute = (key: string, path: string): string => normalizePath(path, baseFor(key), env.home)
  let out: JsonObject = config as unknown as JsonObject
  for (const key of pathKeys) {
    const value = getIn(config, key)
    if (typeof value === "string") out = setIn(out, key, absolute(key.join("."), value))
  }
  const binary = config.luallm.binary
  if (binary.includes("/") || binary.startsWith("~")) out = setIn(out, ["luallm", "binary"], absolute("luallm.binary", binary))
  const allowedBase = baseFor("allowed_paths")
  out = setIn(out, ["allowed_paths"], config.allowed_paths.map((glob) => normalizePath(glob, allowedBase, env.home)))
  return out as unknown as AgentConfig
}

/**
 * Places the keys that were not set under `state_dir` (`<state_dir>/audit.jsonl`,
 * `<state_dir>/drafts`), recording that they follow it when `state_dir` itself was set.
 * Runs after `absolutizePaths`, so they follow the resolved `state_dir`.
 */
export const followStateDir = (
  config: AgentConfig,
  sources: ReadonlyMap<string, ConfigSource>
): { readonly config: AgentConfig; readonly sources: ReadonlyMap<string, ConfigSource> } => {
  let out: JsonObject = config as unknown as JsonObject
  const followed = new Map(sources)
  for (const { child, key } of underStateDir) {
    if (sources.has(key.join("."))) continue
    out = setIn(out, key, joinUnder(config.state_dir, child))
    if (sources.has("state_dir")) followed.set(key.join("."), { _tag: "follows", key: "state_dir" })
  }
  return { config: out as unknown as AgentConfig, sources: followed }
}

/** Decodes the merged object, returning every problem addressed by key path. */
export const decodeConfig = (
  merged: unknown,
  sources: ReadonlyMap<string, ConfigSource>
): Either.Either<AgentConfig, ReadonlyArray<ConfigIssue>> =>
  Schema.decodeUnknownEither(ConfigSchema, { errors: "all", onExcessProperty: "error" })(merged).pipe(
    Either.mapLeft((error) =>
      parseIssues(error).map((issue): ConfigIssue => ({
        key: issue.path,
        message: issue.kind === "Unexpected" ? `${issue.message} (check its spelling: the README's Configuration table lists every key)` : issue.message,
        source: sourceOf(issue.path, sources)
      }))
    )
  )

/** The key that holds `key`: `limits.max_task_steps` → `limits`, `allowed_paths[1]` → `allowed_paths`. */
const parentKey = (key: string): string => key.replace(/(?:\[\d+\]|\.?[^.[\]]+)$/, "")

/** The source of a key, or of the nearest enclosing key that has one (arrays, objects). */
const sourceOf = (key: string, sources: ReadonlyMap<string, ConfigSource>): ConfigSource => {
  for (let k = key; k !== ""; k = parentKey(k)) {
    const found = sources.get(k)
    if (found !== undefined) return found
  }
  for (const [k, source] of sources) if (k.startsWith(`${key}.`)) return source
  return { _tag: "default" }
}

export const isJsonObject = isObject
export type { Json, JsonObject } from "./jsonText.ts"
