/**
 * `luallm-agent log`: the audit log (the file with its rotated files, or the Postgres store's
 * table), newest last. `--tail N` the last N lines, `--task ID` one task's lines (an id or a
 * prefix of 4+ characters; the task may have been reset since), `--json` the raw entries.
 */
import { Command as Cli, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import { sanitizeForTerminal } from "../../core/terminalText.ts"
import { type AuditEntry, AuditReader } from "../../layers/Audit.ts"
import { matchTaskId } from "../../layers/State.ts"
import { provideAuditReader } from "../runtime.ts"
import { bold, dim, warn } from "../ui.ts"

/** One line for a human: time, event, short task id, then the data as compact JSON. */
export const formatEntry = (entry: AuditEntry): string => {
  const data = Object.keys(entry.data).length === 0 ? "" : ` ${JSON.stringify(entry.data)}`
  const task = entry.task_id === null ? "" : ` ${dim(entry.task_id.slice(0, 8))}`
  return `${dim(entry.ts)}${task} ${bold(entry.event)}${sanitizeForTerminal(data.length > 400 ? `${data.slice(0, 400)}…` : data)}`
}

export const logCommand = Cli.make(
  "log",
  {
    tail: Options.integer("tail").pipe(Options.withPseudoName("N"), Options.withDescription("Only the last N lines (default: all of them)"), Options.optional),
    task: Options.text("task").pipe(
      Options.withPseudoName("ID"),
      Options.withDescription("Only the lines of this task (its id; 4+ characters are enough; default: every task's)"),
      Options.optional
    ),
    json: Options.boolean("json").pipe(Options.withDescription("Print the lines as they are stored, one JSON object each"))
  },
  ({ json, tail, task }) =>
    Effect.gen(function*() {
      const reader = yield* AuditReader
      const read = yield* reader.read(Option.match(task, { onNone: () => ({}), onSome: (id) => ({ taskPrefix: id }) }))
      // A prefix must name one task: refuse one that matches several rather than mix their lines.
      const ids = [...new Set(read.entries.flatMap((entry) => (entry.task_id === null ? [] : [entry.task_id])))]
      const forTask = Option.isSome(task) && ids.length > 0
        ? Effect.map(matchTaskId(ids, task.value, "the audit log"), (id) => read.entries.filter((entry) => entry.task_id === id))
        : Effect.succeed(read.entries)
      const entries = yield* forTask
      const shown = Option.match(tail, { onNone: () => entries, onSome: (n) => entries.slice(Math.max(0, entries.length - n)) })
      for (const entry of shown) yield* Console.log(json ? JSON.stringify(entry) : formatEntry(entry))
      if (shown.length === 0 && !json) yield* Console.log(dim(`(no audit lines${Option.isSome(task) ? " for that task" : ""})`))
      for (const line of read.bad) {
        yield* Console.error(warn(`${line.file}:${line.line} is not a valid audit line: ${sanitizeForTerminal(line.text)}`))
      }
    }).pipe(provideAuditReader)
).pipe(Cli.withDescription("Show the audit log: every model call, skill run, state change and human decision"))
