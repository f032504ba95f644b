/**
 * `luallm-agent stats [--json] [--since DATE]`: figures from the audit log and its rotated
 * files — LLM latency and tokens per model, skill-drafting success and retries, tasks by final
 * state, skill run and test timings. What each figure means is defined in `core/stats.ts`.
 */
import { Command as Cli, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import { describeStore } from "../../core/config.ts"
import { computeStats, parseSince, type Stats } from "../../core/stats.ts"
import { sanitizeForTerminal } from "../../core/terminalText.ts"
import { AuditReader } from "../../layers/Audit.ts"
import { AppConfig } from "../../layers/Config.ts"
import { provideAuditReader } from "../runtime.ts"
import { bold, dim, printJson, warn } from "../ui.ts"

const ms = (value: number | null): string => (value === null ? "—" : `${Math.round(value)} ms`)
const percent = (value: number | null): string => (value === null ? "—" : `${Math.round(value * 100)}%`)
const count = (value: number): string => value.toLocaleString("en-US")
/** Names come from the log (a model's, a skill's): printed only sanitised. */
const name = (text: string): string => sanitizeForTerminal(text)

/** An indented table: the first column left-aligned, the others (figures) right-aligned. */
const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): Array<string> => {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? "").length)))
  const line = (row: ReadonlyArray<string>) =>
    `  ${row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join("  ").trimEnd()}`
  return [dim(line(header)), ...rows.map(line)]
}

const llmSection = ({ llm }: Stats): Array<string> => {
  if (llm.calls.count === 0 && llm.errors === 0) return [`${bold("LLM calls")}: none`]
  const errors = llm.errors === 0 ? "" : ` (${count(llm.errors)} failed)`
  return [
    `${bold("LLM calls")}: ${count(llm.calls.count)}${errors}, avg ${ms(llm.calls.mean_ms)}, p95 ${ms(llm.calls.p95_ms)}; ` +
    `tokens: ${count(llm.prompt_tokens)} prompt + ${count(llm.completion_tokens)} completion`,
    ...table(
      ["model", "calls", "failed", "avg", "p95", "prompt tok", "completion tok", "cache hit", "tok/s"],
      llm.models.map((m) => [
        name(m.model),
        count(m.count),
        count(m.errors),
        ms(m.mean_ms),
        ms(m.p95_ms),
        count(m.prompt_tokens),
        count(m.completion_tokens),
        percent(m.cache_hit_rate),
        m.tokens_per_second === null ? "—" : m.tokens_per_second.toFixed(1)
      ])
    )
  ]
}

const draftSection = ({ drafts }: Stats): Array<string> => {
  if (drafts.started === 0) return [`${bold("Skill drafts")}: none`]
  const retries = drafts.retries_per_skill === null ? "—" : drafts.retries_per_skill.toFixed(2)
  return [
    `${bold("Skill drafts")}: ${count(drafts.started)} started, ${count(drafts.reached_approval)} reached approval ` +
    `(${percent(drafts.success_rate)}); ${count(drafts.reworks)} ${drafts.reworks === 1 ? "rework" : "reworks"}, ${retries} retries per skill`,
    ...table(
      ["skill", "task", "reworks", "approval"],
      drafts.skills.map((d) => [name(d.skill), name(d.task_id.slice(0, 8)), count(d.reworks), d.reached_approval ? "requested" : "not reached"])
    )
  ]
}

const taskSection = ({ tasks }: Stats): Array<string> => [
  `${bold("Tasks")}: ${count(tasks.total)}` +
  (tasks.total === 0
    ? ""
    : ` (${tasks.complete} complete, ${tasks.failed} failed, ${tasks.declined} declined, ${tasks.paused} paused, ${tasks.unfinished} unfinished)`)
]

const skillSection = (title: string, failures: string, rows: ReadonlyArray<{
  readonly skill: string
  readonly count: number
  readonly failures: number
  readonly mean_ms: number | null
  readonly p95_ms: number | null
}>): Array<string> =>
  rows.length === 0 ? [`${bold(title)}: none`] : [
    `${bold(title)}:`,
    ...table(
      ["skill", "runs", failures, "avg", "p95"],
      rows.map((row) => [name(row.skill), count(row.count), count(row.failures), ms(row.mean_ms), ms(row.p95_ms)])
    )
  ]

/** The human report; an empty window is one "no data" line. */
export const formatStats = (stats: Stats, logPath: string): Array<string> => {
  const since = stats.since === null ? "" : ` since ${stats.since}`
  if (stats.lines === 0) return [dim(`No data: the audit log ${logPath} has no lines${since}.`)]
  const unreadable = stats.unreadable === 0
    ? []
    : [warn(`${stats.unreadable} line(s) lacked the fields these figures need and were not counted.`)]
  return [
    `Audit log ${logPath}${since}: ${count(stats.lines)} lines, ${stats.first_ts ?? ""} → ${stats.last_ts ?? ""}`,
    ...llmSection(stats),
    ...draftSection(stats),
    ...taskSection(stats),
    ...skillSection("Skill runs", "errors", stats.skill_runs.map((r) => ({ ...r, failures: r.errors }))),
    ...skillSection("Skill tests", "failing", stats.skill_tests.map((t) => ({ ...t, failures: t.failing }))),
    ...unreadable
  ]
}

export const statsCommand = Cli.make(
  "stats",
  {
    json: Options.boolean("json").pipe(Options.withDescription("Print the figures as JSON")),
    since: Options.text("since").pipe(
      Options.withPseudoName("DATE"),
      Options.withDescription("Only what happened at or after this ISO date or date-time, UTC unless it has an offset (default: the whole log)"),
      Options.optional
    )
  },
  ({ json, since }) =>
    Effect.gen(function*() {
      const from = Option.isSome(since) ? yield* parseSince(since.value) : undefined
      const { config } = yield* AppConfig
      const { bad, entries } = yield* (yield* AuditReader).read()
      const stats = computeStats(entries, from)
      if (json) {
        yield* printJson({ ...stats, invalid_lines: bad.length })
      } else {
        for (const line of formatStats(stats, config.store === "file" ? config.audit.path : describeStore(config.store))) yield* Console.log(line)
      }
      const [first] = bad
      if (first !== undefined && !json) {
        yield* Console.error(warn(
          `${bad.length} line(s) of the audit log are not valid audit lines and were skipped (first: ${first.file}:${first.line}); \`luallm-agent log\` lists them.`
        ))
      }
    }).pipe(provideAuditReader)
).pipe(Cli.withDescription(
    "Print figures from the audit log: model calls, skill drafting, tasks by state\nThe model calls' latency, tokens, prompt-cache hit rate and tokens/s; how often skill drafts passed and after how many retries; the tasks by state."
  ))
