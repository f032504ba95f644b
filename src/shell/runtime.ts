/**
 * The layers a command runs with, built from the global options (`--config`, `--llm`). A command
 * says what it needs (`AppConfig`, `Skills`, `Agent`, …) and the matching `provide*` gives it;
 * nothing here runs at import time, so `--help` stays fast.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Effect, Layer, Option } from "effect"
import { AgentDefault, agentWithApprover } from "../Agent.ts"
import type { ProgressListener } from "../agent/progress.ts"
import { ApprovalsLive } from "../layers/Approvals.ts"
import { type Approver, ApproverPause } from "../layers/Approver.ts"
import { AuditLive, AuditReaderLive } from "../layers/Audit.ts"
import { AppConfigLive, type LoadOptions } from "../layers/Config.ts"
import { llmLayerFor } from "../layers/Llm.ts"
import { LuallmLive } from "../layers/Luallm.ts"
import { SandboxLive } from "../layers/Sandbox.ts"
import { SkillRunnerLive } from "../layers/SkillRunner.ts"
import { SkillsLive } from "../layers/Skills.ts"
import { StateLive } from "../layers/State.ts"
import { builtinSkillsDir } from "../packageRoot.ts"
import { root } from "./root.ts"

export interface GlobalOptions {
  readonly config: Option.Option<string>
  readonly llm: Option.Option<string>
  readonly store: Option.Option<string>
  readonly on: "auto" | "cluster" | "local"
}

/** A command's own options that set config keys (`worker --port`). */
export type OptionKeys = NonNullable<LoadOptions["optionKeys"]>

/** Config and platform: enough for `config` and the first checks of `doctor`. */
export const configLayer = (options: GlobalOptions, optionKeys: OptionKeys = []) =>
  AppConfigLive({
    configPath: Option.getOrUndefined(options.config),
    builtinSkillsDir,
    store: Option.getOrUndefined(options.store),
    optionKeys
  }).pipe(Layer.provideMerge(NodeContext.layer))

/** Config, audit and platform. */
export const baseLayer = (options: GlobalOptions, optionKeys: OptionKeys = []) =>
  AuditLive.pipe(Layer.provideMerge(configLayer(options, optionKeys)))

/** Runs `effect` with the config layer built from the root command's options. */
export const provideConfig = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(root, (options) => Effect.provide(effect, configLayer(options)))

/** Config and the saved tasks: `tasks` and `status` (the audit log opens only if something is written). */
export const provideState = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(root, (options) => Effect.provide(effect, StateLive.pipe(Layer.provideMerge(baseLayer(options)))))

/** Config and the audit log to read: `log` and `stats`. */
export const provideAuditReader = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(root, (options) => Effect.provide(effect, AuditReaderLive.pipe(Layer.provideMerge(configLayer(options)))))

/**
 * The HTTP client, loaded when a command first needs it: initialising the HTTP stack
 * (undici comes with it) is the largest part of module start-up, and `--help` never uses it.
 * Import @effect/platform-node's modules by path, never its index: the index loads them all.
 */
export const httpClientLayer = Layer.unwrapEffect(
  Effect.map(Effect.promise(() => import("@effect/platform-node/NodeHttpClient")), (http) => http.layer)
)

/** `Llm` for a `--llm` value, with luallm discovery and HTTP; needs the config and the platform. */
export const llmServices = (spec: string) =>
  llmLayerFor(spec).pipe(Layer.provideMerge(LuallmLive), Layer.provideMerge(httpClientLayer))

/** The base layer plus the LLM picked by `--llm` (live by default). */
export const llmLayer = (options: GlobalOptions, optionKeys: OptionKeys = []) =>
  llmServices(Option.getOrElse(options.llm, () => "live")).pipe(Layer.provideMerge(baseLayer(options, optionKeys)))

/** Runs `effect` with the LLM layer built from the root command's options. */
export const provideLlm = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(root, (options) => Effect.provide(effect, llmLayer(options)))

/** The base layer plus the sandbox, the skill library and the runner (no LLM needed). */
export const skillsLayer = (options: GlobalOptions) =>
  SkillRunnerLive.pipe(Layer.provideMerge(SkillsLive), Layer.provideMerge(SandboxLive), Layer.provideMerge(baseLayer(options)))

/** Runs `effect` with the skills layer built from the root command's options. */
export const provideSkills = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(root, (options) => Effect.provide(effect, skillsLayer(options)))

/**
 * Runs `effect` with the agent and all its live services, the LLM picked by `--llm`, and the
 * agent's questions for a human going to `approver` (it may use the agent's services and the terminal).
 */
export const provideAgentWith = <EA, RA>(approver: Layer.Layer<Approver, EA, RA>) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(root, (options) => Effect.provide(effect, agentWithApprover(approver).pipe(Layer.provideMerge(llmLayer(options)))))

/** Runs `effect` with the agent and all its live services; a question for a human pauses the task. */
export const provideAgent = provideAgentWith(ApproverPause)

/** The task cluster's module, loaded when a command first needs it: the engine is a large part of the bundle. */
const clusterModule = Effect.promise(() => import("../layers/Cluster.ts"))

/**
 * Whether `command` acts on the task cluster: as `--on` says, by default when the store is
 * Postgres and a worker is registered in it.
 */
export const onCluster = (command: string) =>
  Effect.flatMap(root, (options) =>
    Effect.flatMap(clusterModule, (cluster) => cluster.useCluster(options.on, command)).pipe(Effect.provide(configLayer(options))))

/** A client of the task cluster, with the store (to choose a task and follow it) and the approvals. */
export const provideCluster = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(root, (options) =>
    Effect.provide(
      effect,
      Layer.mergeAll(Layer.unwrapEffect(Effect.map(clusterModule, (cluster) => cluster.TaskClusterLive)), StateLive, AuditReaderLive, ApprovalsLive).pipe(
        Layer.provideMerge(baseLayer(options))
      )
    ))

/**
 * A runner of the task cluster (`worker`) with the agent and all its live services, the LLM
 * picked by `--llm`; `optionKeys` are the worker's own options. `progress` gets each task's.
 */
export const provideWorker = (optionKeys: OptionKeys, progress: (taskId: string) => ProgressListener) =>
<A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(root, (options) =>
    Effect.provide(
      effect,
      Layer.unwrapEffect(Effect.map(clusterModule, (cluster) => cluster.TaskRunnerLive(progress))).pipe(
        Layer.provideMerge(AgentDefault),
        Layer.provideMerge(llmLayer(options, optionKeys))
      )
    ))
