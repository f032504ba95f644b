/**
 * `luallm-agent log`: the audit log (with its rotated files), newest last.
 * `--tail N` the last N lines, `--task ID` one task's lines, `--json` the raw JSONL.
 */
import { Command as Cli, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import { sanitizeForTerminal } from "../../core/terminalText.ts"
import { type AuditEntry, readAuditLog } from "../../layers/Audit.ts"
import { AppConfig } from "../../layers/Config.ts"
import { provideConfig } from "../runtime.ts"
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
    tail: Options.integer("tail").pipe(Options.withDescription("Only the last N lines"), Options.optional),
    task: Options.text("task").pipe(Options.withDescription("Only the lines of this task id (a prefix is enough)"), Options.optional),
    json: Options.boolean("json").pipe(Options.withDescription("Print the raw JSONL lines"))
  },
  ({ json, tail, task }) =>
    Effect.gen(function*() {
      const { config } = yield* AppConfig
      const { bad, entries } = yield* readAuditLog({ path: config.audit.path, maxFiles: config.audit.max_files })
      const forTask = Option.match(task, {
        onNone: () => entries,
        onSome: (id) => entries.filter((entry) => entry.task_id?.startsWith(id) === true)
      })
      const shown = Option.match(tail, { onNone: () => forTask, onSome: (n) => forTask.slice(Math.max(0, forTask.length - n)) })
      for (const entry of shown) yield* Console.log(json ? JSON.stringify(entry) : formatEntry(entry))
      if (shown.length === 0 && !json) yield* Console.log(dim(`(no audit lines${Option.isSome(task) ? " for that task" : ""} in ${config.audit.path})`))
      for (const line of bad) {
        yield* Console.error(warn(`${line.file}:${line.line} is not a valid audit line: ${sanitizeForTerminal(line.text)}`))
      }
    }).pipe(provideConfig)
).pipe(Cli.withDescription("Show the audit log (--tail N, --task ID, --json)"))
