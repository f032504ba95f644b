/**
 * `worker [--host H] [--port N]`: a runner of the task cluster. It needs a Postgres store
 * (`--store postgres://…` or `store` in the config), listens on `cluster.host` (127.0.0.1 by
 * default) and a port (`--port`, `cluster.port`; 0, the default, takes a free one), registers
 * that address in the store's database, and drives the tasks of its shards with this machine's
 * config, skills and model until it is stopped (Ctrl-C or SIGTERM: its tasks keep their last
 * saved transition and move to the other runners). Each task's transitions are printed on
 * stderr, one line each.
 */
import { Command as Cli, Options } from "@effect/cli"
import { Clock, Console, Effect, FiberRef, Logger, LogLevel, Option } from "effect"
import type { ProgressListener } from "../../agent/progress.ts"
import { sanitizeForTerminal } from "../../core/terminalText.ts"
import { AppConfig } from "../../layers/Config.ts"
import { describeStore } from "../../core/config.ts"
import { type OptionKeys, provideWorker } from "../runtime.ts"

/** A runner's log line for a task's transition: when, which task, from where to where and why. */
const transitionLine = (taskId: string): ProgressListener => (progress) =>
  progress._tag === "Transition"
    ? Effect.flatMap(Clock.currentTimeMillis, (ms) =>
      Console.error(
        `${new Date(ms).toISOString()} task ${taskId.slice(0, 8)}: ${progress.from} → ${progress.to} (${sanitizeForTerminal(progress.reason).slice(0, 160)})`
      ))
    : Effect.void

/**
 * The engine's own news (it listens, it took shards) is said in the worker's first line: at the
 * default level only its warnings and errors are shown; `--log-level debug` shows everything.
 */
const quietEngine = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(FiberRef.get(FiberRef.currentMinimumLogLevel), (level) =>
    level === LogLevel.Info ? Logger.withMinimumLogLevel(effect, LogLevel.Warning) : effect)

export const workerCommand = Cli.make(
  "worker",
  {
    host: Options.text("host").pipe(
      Options.withPseudoName("ADDRESS"),
      Options.withDescription("The address to listen on and register, one the other runners can reach (default: cluster.host, 127.0.0.1)"),
      Options.optional
    ),
    port: Options.integer("port").pipe(Options.withPseudoName("PORT"), Options.withDescription("The port to listen on (default: cluster.port; 0 takes a free one)"), Options.optional)
  },
  ({ host, port }) => {
    const optionKeys: OptionKeys = [
      ...Option.toArray(Option.map(host, (value) => ({ key: ["cluster", "host"], option: "--host", value }))),
      ...Option.toArray(Option.map(port, (value) => ({ key: ["cluster", "port"], option: "--port", value })))
    ]
    return Effect.gen(function*() {
      // Loaded here, not at start-up: the engine is a large part of the bundle.
      const { TaskRunner } = yield* Effect.promise(() => import("../../layers/Cluster.ts"))
      const runner = yield* TaskRunner
      const { config } = yield* AppConfig
      const runners = yield* runner.runners
      yield* Console.error(
        `worker ${runner.address}: a runner of the task cluster in ${describeStore(config.store)} (${runners.length} registered now); ` +
          `up to ${config.limits.max_concurrent_tasks} tasks at a time. Ctrl-C or SIGTERM stops it; its tasks go on on the other runners.`
      )
      return yield* Effect.never
    }).pipe(provideWorker(optionKeys, transitionLine), quietEngine)
  }
).pipe(Cli.withDescription(
    "Run a runner of the task cluster on a Postgres store\nIt drives the tasks sent with `run` and continues those of runners that died, until Ctrl-C or SIGTERM."
  ))
