/**
 * The figures `luallm-agent stats` prints, computed from decoded audit lines (SPEC part 17).
 * Pure: the command reads the log (and its rotated files) and hands the lines over.
 *
 * The window: the lines at or after `since` (the whole log without it). Lines before the window
 * are still read, so that a task or a draft that began earlier is understood, but only what
 * happens inside it is counted: calls and runs by their line, a draft by the line that
 * started it, a task when any of its lines is in the window (its final state is its last line).
 *
 * Definitions:
 * - LLM latency: the `duration_ms` of `llm.call` lines, per model (the model that answered)
 *   and overall; `p95` is the nearest-rank 95th percentile (the smallest value that at least
 *   95% of the calls do not exceed; for one call, that call). `llm.error` lines count as
 *   errors of their model and add no latency.
 * - Tokens: the sums of `prompt_tokens` and `completion_tokens` of `llm.call`, per model and in
 *   total (a server that reports no usage is logged as 0).
 * - Prompt cache and speed, per model, from the server's `timings` (llama-server sends them):
 *   cache hit rate = Σ cache_n / Σ (cache_n + prompt_n), the share of prompt tokens taken from
 *   the server's cache instead of processed; tokens/s = Σ predicted_n / Σ predicted_ms, the
 *   generation speed. Both count only calls whose timings carry those fields; `null` without any.
 * - Drafts: a draft starts when a task enters `skill_draft` from any state but `model_wait`
 *   (coming back from a model wait continues the same draft). Which skill it drafts is read
 *   from the task's last `plan.accepted` (`missing`, drafted in order): entering from
 *   `planning` drafts the first, entering from `approval` the next one. One draft is one
 *   distinct (task, skill); when the plan line is not in the log (rotated away), the skill is
 *   named by its position (`#2`). A draft reached approval when an `approval.create` line of the same task
 *   names the same skill. Success rate = drafts that reached approval / drafts started.
 * - Retries: a rework is a transition into `rework` from any state but `model_wait`, counted
 *   for the task's current draft; retries per skill = reworks / drafts started.
 * - Tasks by final state: the last of a task's `task.*` lines decides: `task.complete` or a
 *   transition to `complete` → complete; `task.failed` or a transition to `failed` → failed;
 *   `task.declined` or a transition to `declined` (a human said no to its plan or to exec) → declined;
 *   `task.paused` → paused; anything else (start, resume, a transition to a working state: the
 *   process stopped mid-task) → unfinished.
 * - Skill runs: `skill.end` (success) and `skill.error` (failure) lines per skill, with their
 *   `duration_ms`. Skill tests: `skill.test` lines per skill; a run is failing when any test
 *   failed.
 * A line of one of these events whose data lacks the fields read, or (with `since`) whose
 * timestamp cannot be read, is counted as unreadable, never guessed at.
 */
import { Data, Either, Option, Schema } from "effect"

/** The part of an audit line the figures read; an `AuditEntry` decoded from the log fits it. */
export interface AuditLine {
  readonly ts: string
  readonly event: string
  readonly task_id: string | null
  readonly data: Readonly<Record<string, unknown>>
}

export class SinceInvalid extends Data.TaggedError("SinceInvalid")<{ readonly value: string }> {
  override get message() {
    return `--since ${JSON.stringify(this.value)} is not a date, so no figures were computed. Give an ISO date (2024-05-01) or date-time (2024-05-01T13:30:00Z; without an offset it is UTC, like the audit log's timestamps).`
  }
}

const sincePattern = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?(Z|([+-])(\d{2}):(\d{2}))?)?$/

/**
 * Reads `--since`: an ISO date or date-time, UTC unless it carries an offset. Dates that do
 * not exist (2024-02-30, 24:00) are refused rather than rolled over.
 */
export const parseSince = (value: string): Either.Either<Date, SinceInvalid> => {
  const match = sincePattern.exec(value.trim())
  if (match === null) return Either.left(new SinceInvalid({ value }))
  const [, year, month, day, hour = "0", minute = "0", second = "0", fraction = "0", , sign, offsetHours = "0", offsetMinutes = "0"] =
    match
  const fields = [year, month, day, hour, minute, second].map(Number)
  const [y = 0, mo = 1, d = 1, h = 0, mi = 0, s = 0] = fields
  const utc = new Date(Date.UTC(y, mo - 1, d, h, mi, s, Number(fraction.padEnd(3, "0"))))
  const rolledOver = utc.getUTCFullYear() !== y || utc.getUTCMonth() !== mo - 1 || utc.getUTCDate() !== d ||
    utc.getUTCHours() !== h || utc.getUTCMinutes() !== mi || utc.getUTCSeconds() !== s
  if (rolledOver) return Either.left(new SinceInvalid({ value }))
  const offset = (sign === "-" ? -1 : 1) * (Number(offsetHours) * 60 + Number(offsetMinutes))
  return Either.right(new Date(utc.getTime() - offset * 60_000))
}

/** Count, mean and nearest-rank p95 of durations; `null`s when there are none. */
export interface Timing {
  readonly count: number
  readonly mean_ms: number | null
  readonly p95_ms: number | null
}

export interface ModelStats extends Timing {
  readonly model: string
  readonly errors: number
  readonly prompt_tokens: number
  readonly completion_tokens: number
  /** Share of prompt tokens the server took from its prompt cache; `null` without timings. */
  readonly cache_hit_rate: number | null
  /** Generated tokens per second; `null` without timings. */
  readonly tokens_per_second: number | null
}

export interface DraftStats {
  readonly task_id: string
  readonly skill: string
  readonly reworks: number
  readonly reached_approval: boolean
}

export interface SkillRunStats extends Timing {
  readonly skill: string
  readonly errors: number
}

export interface SkillTestStats extends Timing {
  readonly skill: string
  readonly failing: number
}

export type FinalState = "complete" | "failed" | "declined" | "paused" | "unfinished"

export interface Stats {
  /** The `--since` bound, ISO, or `null` for the whole log. */
  readonly since: string | null
  /** Audit lines in the window. */
  readonly lines: number
  readonly first_ts: string | null
  readonly last_ts: string | null
  /** Lines of a known event whose data lacks the fields the figures need. */
  readonly unreadable: number
  readonly llm: {
    readonly calls: Timing
    readonly errors: number
    readonly prompt_tokens: number
    readonly completion_tokens: number
    readonly models: ReadonlyArray<ModelStats>
  }
  readonly drafts: {
    readonly started: number
    readonly reached_approval: number
    /** reached_approval / started; `null` without drafts. */
    readonly success_rate: number | null
    readonly reworks: number
    /** reworks / started; `null` without drafts. */
    readonly retries_per_skill: number | null
    readonly skills: ReadonlyArray<DraftStats>
  }
  readonly tasks: { readonly total: number } & Readonly<Record<FinalState, number>>
  readonly skill_runs: ReadonlyArray<SkillRunStats>
  readonly skill_tests: ReadonlyArray<SkillTestStats>
}

// The data of each event the figures read. Extra fields are ignored.
const LlmCallData = Schema.Struct({
  model: Schema.String,
  duration_ms: Schema.Number,
  prompt_tokens: Schema.Number,
  completion_tokens: Schema.Number,
  timings: Schema.optional(Schema.NullOr(Schema.Struct({
    cache_n: Schema.optional(Schema.Number),
    prompt_n: Schema.optional(Schema.Number),
    predicted_n: Schema.optional(Schema.Number),
    predicted_ms: Schema.optional(Schema.Number)
  })))
})
const LlmErrorData = Schema.Struct({ model: Schema.String })
const TransitionData = Schema.Struct({ from: Schema.String, to: Schema.String })
const PlanAcceptedData = Schema.Struct({ missing: Schema.Array(Schema.String) })
const ApprovalCreateData = Schema.Struct({ skill: Schema.String })
const SkillTimingData = Schema.Struct({ skill: Schema.String, duration_ms: Schema.Number })
const SkillTestData = Schema.Struct({ skill: Schema.String, failed: Schema.Number, duration_ms: Schema.Number })

/** What one line contributes, once its data is decoded. */
type Fact = Data.TaggedEnum<{
  LlmCall: typeof LlmCallData.Type
  LlmError: typeof LlmErrorData.Type
  TaskState: { readonly task: string; readonly state: FinalState }
  Transition: typeof TransitionData.Type & { readonly task: string }
  PlanAccepted: typeof PlanAcceptedData.Type & { readonly task: string }
  ApprovalCreated: typeof ApprovalCreateData.Type & { readonly task: string }
  SkillRun: typeof SkillTimingData.Type & { readonly ok: boolean }
  SkillTest: typeof SkillTestData.Type
  Other: {}
  Unreadable: {}
}>
const Fact = Data.taggedEnum<Fact>()

const decodeWith = <A, I>(schema: Schema.Schema<A, I>, data: unknown, make: (value: A) => Fact): Fact =>
  Option.match(Schema.decodeUnknownOption(schema)(data), { onNone: () => Fact.Unreadable(), onSome: make })

const factOf = (line: AuditLine): Fact => {
  const { data, event, task_id } = line
  // A task event without a task id cannot be attributed to a task.
  const ofTask = (make: (task: string) => Fact): Fact => (task_id === null ? Fact.Unreadable() : make(task_id))
  const taskState = (state: FinalState) => ofTask((task) => Fact.TaskState({ task, state }))
  switch (event) {
    case "llm.call":
      return decodeWith(LlmCallData, data, Fact.LlmCall)
    case "llm.error":
      return decodeWith(LlmErrorData, data, Fact.LlmError)
    case "skill.end":
    case "skill.error":
      return decodeWith(SkillTimingData, data, (run) => Fact.SkillRun({ ...run, ok: event === "skill.end" }))
    case "skill.test":
      return decodeWith(SkillTestData, data, Fact.SkillTest)
    case "task.start":
    case "task.resume":
      return taskState("unfinished")
    case "task.paused":
      return taskState("paused")
    case "task.complete":
      return taskState("complete")
    case "task.failed":
      return taskState("failed")
    case "task.declined":
      return taskState("declined")
    case "task.transition":
      return ofTask((task) => decodeWith(TransitionData, data, (t) => Fact.Transition({ ...t, task })))
    case "plan.accepted":
      return ofTask((task) => decodeWith(PlanAcceptedData, data, (p) => Fact.PlanAccepted({ missing: p.missing, task })))
    case "approval.create":
      return ofTask((task) => decodeWith(ApprovalCreateData, data, (a) => Fact.ApprovalCreated({ skill: a.skill, task })))
    default:
      return Fact.Other()
  }
}

const sum = (values: ReadonlyArray<number>): number => values.reduce((total, value) => total + value, 0)

/** Nearest rank: the value at position ⌈0.95·n⌉ of the sorted durations. */
const p95 = (sorted: ReadonlyArray<number>): number | null => sorted[Math.ceil(0.95 * sorted.length) - 1] ?? null

const timing = (durations: ReadonlyArray<number>): Timing => {
  const sorted = [...durations].sort((a, b) => a - b)
  return {
    count: sorted.length,
    mean_ms: sorted.length === 0 ? null : sum(sorted) / sorted.length,
    p95_ms: p95(sorted)
  }
}

const ratio = (part: number, whole: number): number | null => (whole === 0 ? null : part / whole)

/** A map that creates an entry on first use; `sorted()` lists the entries by key. */
const tally = <V>(init: () => V) => {
  const map = new Map<string, V>()
  return {
    at: (key: string): V => {
      const found = map.get(key)
      if (found !== undefined) return found
      const fresh = init()
      map.set(key, fresh)
      return fresh
    },
    sorted: (): Array<[string, V]> => [...map].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  }
}

/** Durations seen, and how many of those were failures (an error, a failing test run). */
interface Durations {
  readonly durations: Array<number>
  failures: number
}

interface ModelTally extends Durations {
  prompt: number
  completion: number
  /** Prompt tokens from the server's cache, and processed, in calls that said both. */
  cached: number
  processed: number
  /** Tokens generated and the milliseconds it took, in calls that said both. */
  predicted: number
  predictedMs: number
}

interface DraftProgress {
  /** The last accepted plan's missing skills, drafted in this order. */
  readonly missing: ReadonlyArray<string>
  /** Position in `missing` of the skill being drafted; -1 before the first draft. */
  readonly position: number
}

interface DraftTally {
  readonly task_id: string
  readonly skill: string
  reworks: number
  reached_approval: boolean
  /** Whether the draft started inside the window. */
  readonly inWindow: boolean
}

export const computeStats = (entries: ReadonlyArray<AuditLine>, since?: Date): Stats => {
  const llm = tally((): ModelTally => ({
    durations: [],
    failures: 0,
    prompt: 0,
    completion: 0,
    cached: 0,
    processed: 0,
    predicted: 0,
    predictedMs: 0
  }))
  const runs = tally((): Durations => ({ durations: [], failures: 0 }))
  const tests = tally((): Durations => ({ durations: [], failures: 0 }))
  const drafts = new Map<string, DraftTally>()
  const progress = new Map<string, DraftProgress>()
  const finals = new Map<string, FinalState>()
  const tasksInWindow = new Set<string>()
  const window: Array<AuditLine> = []
  let unreadable = 0

  const draftKey = (task: string, skill: string) => `${task}\u0000${skill}`
  /** The task's current draft, started (registered) on first sight. */
  const currentDraft = (task: string, inWindow: boolean) => {
    const { missing, position } = progress.get(task) ?? { missing: [], position: 0 }
    const at = Math.max(position, 0)
    const skill = missing[at] ?? `#${at + 1}`
    const key = draftKey(task, skill)
    const draft = drafts.get(key) ?? { task_id: task, skill, reworks: 0, reached_approval: false, inWindow }
    drafts.set(key, draft)
    return draft
  }

  // Every line is read, so that a draft or a task that began before the window is still
  // understood; only what happens in the window is counted.
  for (const line of entries) {
    const time = Date.parse(line.ts)
    const inWindow = since === undefined || time >= since.getTime()
    if (since !== undefined && Number.isNaN(time)) unreadable += 1
    if (inWindow) window.push(line)
    const counted = (count: () => void) => {
      if (inWindow) count()
    }
    const ofTask = (task: string) => {
      if (inWindow) tasksInWindow.add(task)
    }
    Fact.$match(factOf(line), {
      LlmCall: (call) =>
        counted(() => {
          const model = llm.at(call.model)
          model.durations.push(call.duration_ms)
          model.prompt += call.prompt_tokens
          model.completion += call.completion_tokens
          const timings = call.timings
          if (timings?.cache_n !== undefined && timings.prompt_n !== undefined) {
            model.cached += timings.cache_n
            model.processed += timings.prompt_n
          }
          if (timings?.predicted_n !== undefined && timings.predicted_ms !== undefined && timings.predicted_ms > 0) {
            model.predicted += timings.predicted_n
            model.predictedMs += timings.predicted_ms
          }
        }),
      LlmError: (error) =>
        counted(() => {
          llm.at(error.model).failures += 1
        }),
      TaskState: ({ state, task }) => {
        ofTask(task)
        finals.set(task, state)
      },
      Transition: ({ from, task, to }) => {
        ofTask(task)
        finals.set(task, to === "complete" || to === "failed" || to === "declined" ? to : "unfinished")
        if (from === "model_wait") return
        if (to === "skill_draft") {
          const { missing, position } = progress.get(task) ?? { missing: [], position: -1 }
          progress.set(task, { missing, position: from === "approval" ? position + 1 : 0 })
          currentDraft(task, inWindow)
        }
        if (to === "rework") currentDraft(task, inWindow).reworks += 1
      },
      PlanAccepted: ({ missing, task }) => {
        ofTask(task)
        progress.set(task, { missing, position: -1 })
      },
      ApprovalCreated: ({ skill, task }) => {
        ofTask(task)
        const draft = drafts.get(draftKey(task, skill))
        if (draft !== undefined) draft.reached_approval = true
      },
      SkillRun: (run) =>
        counted(() => {
          const skill = runs.at(run.skill)
          skill.durations.push(run.duration_ms)
          if (!run.ok) skill.failures += 1
        }),
      SkillTest: (test) =>
        counted(() => {
          const skill = tests.at(test.skill)
          skill.durations.push(test.duration_ms)
          if (test.failed > 0) skill.failures += 1
        }),
      Other: () => undefined,
      Unreadable: () =>
        counted(() => {
          unreadable += 1
        })
    })
  }

  const models = llm.sorted().map(([model, m]): ModelStats => ({
    model,
    ...timing(m.durations),
    errors: m.failures,
    prompt_tokens: m.prompt,
    completion_tokens: m.completion,
    cache_hit_rate: ratio(m.cached, m.cached + m.processed),
    tokens_per_second: m.predictedMs === 0 ? null : m.predicted / (m.predictedMs / 1000)
  }))
  const draftList: ReadonlyArray<DraftStats> = [...drafts.values()].flatMap(({ inWindow, ...draft }) => (inWindow ? [draft] : []))
  const started = draftList.length
  const reached = draftList.filter((draft) => draft.reached_approval).length
  const reworks = sum(draftList.map((draft) => draft.reworks))
  const states = [...finals].flatMap(([task, state]) => (tasksInWindow.has(task) ? [state] : []))
  const countState = (state: FinalState) => states.filter((s) => s === state).length

  return {
    since: since === undefined ? null : since.toISOString(),
    lines: window.length,
    first_ts: window[0]?.ts ?? null,
    last_ts: window.at(-1)?.ts ?? null,
    unreadable,
    llm: {
      calls: timing(llm.sorted().flatMap(([, m]) => m.durations)),
      errors: sum(models.map((m) => m.errors)),
      prompt_tokens: sum(models.map((m) => m.prompt_tokens)),
      completion_tokens: sum(models.map((m) => m.completion_tokens)),
      models
    },
    drafts: {
      started,
      reached_approval: reached,
      success_rate: ratio(reached, started),
      reworks,
      retries_per_skill: ratio(reworks, started),
      skills: draftList
    },
    tasks: {
      total: states.length,
      complete: countState("complete"),
      failed: countState("failed"),
      declined: countState("declined"),
      paused: countState("paused"),
      unfinished: countState("unfinished")
    },
    skill_runs: runs.sorted().map(([skill, r]) => ({ skill, ...timing(r.durations), errors: r.failures })),
    skill_tests: tests.sorted().map(([skill, t]) => ({ skill, ...timing(t.durations), failing: t.failures }))
  }
}
