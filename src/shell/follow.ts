/**
 * Follows a task that the cluster drives, for a terminal: its transitions, nodes and model
 * calls, and each runner that takes it up, read from the store's audit log while the answer is
 * awaited. The log is where a runner leaves them, so following survives a runner that dies and
 * the one that takes over. Shown where the agent's own progress is shown (see `progress.ts`).
 */
import { Effect, Fiber, Option, Schedule, Schema } from "effect"
import type { Progress } from "../agent/progress.ts"
import { TaskStateName } from "../core/task.ts"
import { type AuditEntry, AuditReader } from "../layers/Audit.ts"
import { describeProgress } from "./progress.ts"
import { dim } from "./ui.ts"

const TransitionData = Schema.Struct({ from: TaskStateName, to: TaskStateName, reason: Schema.String })
const NodeData = Schema.Struct({ node: Schema.String, action: Schema.String, error: Schema.optional(Schema.String) })
const LlmCallData = Schema.Struct({
  purpose: Schema.String,
  model: Schema.String,
  duration_ms: Schema.Number,
  prompt_tokens: Schema.Number,
  completion_tokens: Schema.Number
})
const DriveData = Schema.Struct({ runner: Schema.String, message: Schema.String })

/** What a terminal shows for an audit line of the task, if anything. */
export const describeEntry = (entry: AuditEntry): Option.Option<string> => {
  const as = <A, I>(schema: Schema.Schema<A, I>) => Schema.decodeUnknownOption(schema)(entry.data)
  const progress = (p: Progress) => describeProgress(p)
  switch (entry.event) {
    case "task.transition":
      return Option.map(as(TransitionData), (d) => progress({ _tag: "Transition", ...d }))
    case "node.complete":
    case "node.failed":
    case "node.skipped":
      return Option.map(as(NodeData), (d) =>
        progress({ _tag: "Node", id: d.node, action: d.action, status: entry.event.slice("node.".length), ...(d.error === undefined ? {} : { error: d.error }) }))
    case "llm.call":
      return Option.map(as(LlmCallData), (d) =>
        progress({ _tag: "LlmCall", purpose: d.purpose, model: d.model, latencyMs: d.duration_ms, tokens: d.prompt_tokens + d.completion_tokens }))
    case "cluster.drive":
      return Option.map(as(DriveData), (d) => dim(`runner ${d.runner} drives it (${d.message})`))
    default:
      return Option.none()
  }
}

/**
 * Runs `outcome` while the task's new audit lines go to `show` (every `every`, and once more
 * when it ends, so the last lines are not missed).
 */
export const followTask = <A, E, R>(
  taskId: string,
  outcome: Effect.Effect<A, E, R>,
  show: (line: string) => Effect.Effect<void>,
  every: Schedule.Schedule<unknown> = Schedule.spaced("500 millis")
) =>
  Effect.gen(function*() {
    const reader = yield* AuditReader
    // Lines of parallel nodes may commit out of order: each is shown once, whenever it appears.
    const seen = new Set<string>()
    let unreadable = false
    const showNew = reader.read({ taskPrefix: taskId }).pipe(
      Effect.flatMap(({ entries }) =>
        Effect.forEach(entries, (entry) => {
          const key = `${entry.ts}|${entry.event}|${JSON.stringify(entry.data)}`
          if (seen.has(key)) return Effect.void
          return Option.match(describeEntry(entry), { onNone: () => Effect.void, onSome: show }).pipe(
            Effect.zipRight(Effect.sync(() => seen.add(key)))
          )
        }, { discard: true })),
      // Following is a courtesy: a read that fails is said once, and tried again at the next tick.
      Effect.catchAll((error) => {
        if (unreadable) return Effect.void
        unreadable = true
        return show(dim(`(cannot show the task's progress: ${error.message})`))
      })
    )
    const poller = yield* Effect.fork(Effect.repeat(showNew, every))
    const result = yield* outcome.pipe(Effect.ensuring(Fiber.interrupt(poller)))
    yield* showNew
    return result
  })
