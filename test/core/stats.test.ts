import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { type AuditLine, computeStats, parseSince } from "../../src/core/stats.ts"

/** Lines one minute apart from 2024-05-01T10:00Z, in the order given. */
const log = (...lines: ReadonlyArray<readonly [string | null, string, Record<string, unknown>?]>): Array<AuditLine> =>
  lines.map(([task_id, event, data = {}], minute) => ({
    ts: new Date(Date.UTC(2024, 4, 1, 10, minute)).toISOString(),
    event,
    task_id,
    data
  }))

const PLANNER = "qwen-7b"
const CODER = "coder-1.5b"

const call = (task: string, purpose: string, model: string, duration_ms: number, prompt_tokens: number, completion_tokens: number) =>
  [task, "llm.call", { purpose, model, node: null, duration_ms, prompt_tokens, completion_tokens }] as const
const go = (task: string, from: string, to: string) => [task, "task.transition", { from, to, reason: "r", step: 1 }] as const
const tested = (task: string, skill: string, failed: number, duration_ms: number) =>
  [task, "skill.test", { skill, mode: "draft", total: 3, passed: 3 - failed, failed, duration_ms }] as const

// Task A drafts csv_sum (1 rework, approved), then md_report (waits for the model, 2 reworks,
// retries exhausted: failed). Task B runs a graph and completes. Task C stops mid-planning.
// Task D drafts slugify and waits for approval.
const taskA = [
  ["A", "task.start", { prompt: "sum the csv" }],
  go("A", "pending", "planning"),
  call("A", "plan", PLANNER, 1000, 500, 100),
  ["A", "plan.accepted", { attempt: 1, nodes: 3, missing: ["csv_sum", "md_report"] }],
  go("A", "planning", "skill_draft"),
  call("A", "skill.draft", CODER, 2000, 300, 400),
  call("A", "skill.test", CODER, 1500, 350, 250),
  go("A", "skill_draft", "skill_test"),
  tested("A", "csv_sum", 1, 40),
  go("A", "skill_test", "rework"),
  call("A", "skill.rework", CODER, 2500, 600, 420),
  go("A", "rework", "skill_test"),
  tested("A", "csv_sum", 0, 60),
  go("A", "skill_test", "approval"),
  ["A", "approval.create", { id: "ap-1", skill: "csv_sum", tests: 3 }],
  ["A", "task.paused", { reason: "approval", next: "luallm-agent resume" }],
  ["A", "task.resume", { state: "approval", steps: 7 }],
  ["A", "approval.resolve", { id: "ap-1", skill: "csv_sum", approved: true, reason: null }],
  ["A", "approval.promote", { id: "ap-1", skill: "csv_sum", path: "/skills/csv_sum.js" }],
  go("A", "approval", "skill_draft"),
  ["A", "llm.error", { purpose: "skill.draft", model: CODER, node: null, error: "LlmUnreachable" }],
  go("A", "skill_draft", "model_wait"),
  ["A", "task.paused", { reason: "model", next: "luallm start coder-1.5b && luallm-agent resume" }],
  ["A", "task.resume", { state: "model_wait", steps: 9 }],
  go("A", "model_wait", "skill_draft"),
  call("A", "skill.draft", CODER, 3000, 200, 300),
  call("A", "skill.test", CODER, 1000, 250, 200),
  go("A", "skill_draft", "skill_test"),
  tested("A", "md_report", 2, 80),
  go("A", "skill_test", "rework"),
  call("A", "skill.rework", CODER, 2200, 500, 350),
  go("A", "rework", "skill_test"),
  tested("A", "md_report", 1, 70),
  go("A", "skill_test", "rework"),
  call("A", "skill.rework", CODER, 2600, 520, 360),
  go("A", "rework", "skill_test"),
  tested("A", "md_report", 1, 90),
  go("A", "skill_test", "failed"),
  ["A", "task.failed", { steps: 18, error: "still fails" }]
] as const

const taskB = [
  ["B", "task.start", { prompt: "write a report" }],
  go("B", "pending", "planning"),
  call("B", "plan", PLANNER, 800, 400, 80),
  ["B", "plan.accepted", { attempt: 1, nodes: 2, missing: [] }],
  go("B", "planning", "graph_exec"),
  ["B", "skill.start", { skill: "read_csv", version: "1.0.0", file: "/s/read_csv.js", mode: "trusted" }],
  ["B", "skill.error", { skill: "read_csv", duration_ms: 8, error: "SkillThrew", message: "boom" }],
  ["B", "skill.end", { skill: "read_csv", duration_ms: 12, output_chars: 0 }],
  ["B", "node.complete", { id: "read" }],
  ["B", "skill.end", { skill: "write_markdown", duration_ms: 30, output_chars: 0 }],
  go("B", "graph_exec", "complete"),
  ["B", "task.complete", { steps: 3 }]
] as const

const taskC = [
  ["C", "task.start", { prompt: "crashes" }],
  go("C", "pending", "planning"),
  // An older line without the fields the figures read: unreadable, not a zero.
  ["C", "llm.call", { purpose: "plan", model: PLANNER }]
] as const

const taskD = [
  ["D", "task.start", { prompt: "slugs" }],
  go("D", "pending", "planning"),
  call("D", "plan", PLANNER, 1200, 450, 90),
  ["D", "plan.accepted", { attempt: 1, nodes: 2, missing: ["slugify"] }],
  go("D", "planning", "skill_draft"),
  call("D", "skill.draft", CODER, 1800, 280, 380),
  call("D", "skill.test", CODER, 1400, 300, 260),
  go("D", "skill_draft", "skill_test"),
  tested("D", "slugify", 0, 50),
  go("D", "skill_test", "approval"),
  ["D", "approval.create", { id: "ap-2", skill: "slugify", tests: 3 }],
  ["D", "task.paused", { reason: "approval", next: "luallm-agent resume" }]
] as const

const fullLog = log(...taskA, ...taskB, ...taskC, ...taskD)

describe("computeStats", () => {
  const stats = computeStats(fullLog)

  it("gives each model's call count, average and nearest-rank p95 latency, errors and tokens", () => {
    // qwen-7b: 1000, 800, 1200 → mean 3000/3 = 1000; p95 rank ⌈0.95·3⌉ = 3 → 1200.
    // coder: 1000 1400 1500 1800 2000 2200 2500 2600 3000 → mean 18000/9 = 2000; rank ⌈8.55⌉ = 9 → 3000.
    expect(stats.llm.models).toEqual([
      { model: CODER, count: 9, mean_ms: 2000, p95_ms: 3000, errors: 1, prompt_tokens: 3300, completion_tokens: 2920, cache_hit_rate: null, tokens_per_second: null },
      { model: PLANNER, count: 3, mean_ms: 1000, p95_ms: 1200, errors: 0, prompt_tokens: 1350, completion_tokens: 270, cache_hit_rate: null, tokens_per_second: null }
    ])
  })

  it("totals the calls and tokens over every model", () => {
    // 12 calls, 21000 ms → mean 1750; rank ⌈11.4⌉ = 12 → the slowest, 3000.
    expect(stats.llm.calls).toEqual({ count: 12, mean_ms: 1750, p95_ms: 3000 })
    expect(stats.llm.errors).toBe(1)
    expect(stats.llm.prompt_tokens).toBe(4650)
    expect(stats.llm.completion_tokens).toBe(3190)
  })

  it("counts one draft per (task, skill), the ones that reached approval, and reworks per draft", () => {
    // Three drafts: A/csv_sum (approved, 1 rework), A/md_report (2 reworks; coming back from
    // model_wait continues it), D/slugify (approved, no rework). 2/3 reached approval; 3/3 reworks.
    expect(stats.drafts.skills).toEqual([
      { task_id: "A", skill: "csv_sum", reworks: 1, reached_approval: true },
      { task_id: "A", skill: "md_report", reworks: 2, reached_approval: false },
      { task_id: "D", skill: "slugify", reworks: 0, reached_approval: true }
    ])
    expect(stats.drafts).toMatchObject({ started: 3, reached_approval: 2, reworks: 3, retries_per_skill: 1 })
    expect(stats.drafts.success_rate).toBeCloseTo(2 / 3)
  })

  it("sorts tasks by the state their last line leaves them in", () => {
    expect(stats.tasks).toEqual({ total: 4, complete: 1, failed: 1, declined: 0, paused: 1, unfinished: 1 })
  })

  it("counts a task whose plan a human declined as declined, not unfinished", () => {
    const declined = log(
      ["E", "task.start", { prompt: "delete my old logs" }],
      go("E", "pending", "planning"),
      go("E", "planning", "confirmation"),
      go("E", "confirmation", "declined"),
      ["E", "task.declined", { steps: 3, error: "The plan was declined; nothing ran and no skill was drafted." }]
    )
    expect(computeStats(declined).tasks).toEqual({ total: 1, complete: 0, failed: 0, declined: 1, paused: 0, unfinished: 0 })
    // Cut before its last line, the transition alone says so too.
    expect(computeStats(declined.slice(0, -1)).tasks.declined).toBe(1)
  })

  it("times skill runs (errors included) and test runs per skill", () => {
    expect(stats.skill_runs).toEqual([
      { skill: "read_csv", count: 2, mean_ms: 10, p95_ms: 12, errors: 1 },
      { skill: "write_markdown", count: 1, mean_ms: 30, p95_ms: 30, errors: 0 }
    ])
    expect(stats.skill_tests).toEqual([
      { skill: "csv_sum", count: 2, mean_ms: 50, p95_ms: 60, failing: 1 },
      { skill: "md_report", count: 3, mean_ms: 80, p95_ms: 90, failing: 3 },
      { skill: "slugify", count: 1, mean_ms: 50, p95_ms: 50, failing: 0 }
    ])
  })

  it("reports the window and the lines it could not read", () => {
    expect(stats.lines).toBe(fullLog.length)
    expect(stats.first_ts).toBe("2024-05-01T10:00:00.000Z")
    expect(stats.last_ts).toBe(fullLog.at(-1)?.ts)
    expect(stats.since).toBeNull()
    expect(stats.unreadable).toBe(1)
  })

  it("gives nulls, not NaN, for an empty log", () => {
    const empty = computeStats([])
    expect(empty.lines).toBe(0)
    expect(empty.llm.calls).toEqual({ count: 0, mean_ms: null, p95_ms: null })
    expect(empty.drafts).toMatchObject({ started: 0, success_rate: null, retries_per_skill: null })
    expect(empty.tasks.total).toBe(0)
    expect(JSON.stringify(empty)).not.toContain("NaN")
  })

  it("gives each model's prompt-cache hit rate and tokens/s from the server's timings, over the calls that sent them", () => {
    const call = (model: string, timings: unknown) =>
      ["T", "llm.call", { purpose: "node", model, node: null, duration_ms: 10, prompt_tokens: 1, completion_tokens: 1, timings }] as const
    const timed = computeStats(log(
      call("llama", { cache_n: 900, prompt_n: 100, predicted_n: 50, predicted_ms: 1000 }),
      call("llama", { cache_n: 0, prompt_n: 1000, predicted_n: 150, predicted_ms: 1000 }),
      call("llama", null),
      call("ollama", null)
    ))
    // (900 + 0) / (900 + 100 + 0 + 1000) = 45%; (50 + 150) tokens in 2 s = 100 tokens/s.
    expect(timed.llm.models.map((m) => [m.model, m.count, m.cache_hit_rate, m.tokens_per_second])).toEqual([
      ["llama", 3, 0.45, 100],
      ["ollama", 1, null, null]
    ])
  })

  it("counts a model that only failed as zero calls with null latency", () => {
    const onlyErrors = computeStats(log(["T", "llm.error", { purpose: "plan", model: "m", node: null, error: "LlmTimeout" }]))
    expect(onlyErrors.llm.models).toEqual([
      { model: "m", count: 0, mean_ms: null, p95_ms: null, errors: 1, prompt_tokens: 0, completion_tokens: 0, cache_hit_rate: null, tokens_per_second: null }
    ])
    expect(onlyErrors.llm.calls).toEqual({ count: 0, mean_ms: null, p95_ms: null })
  })

  it("takes the p95 of a single call to be that call", () => {
    const one = computeStats(log(call("T", "plan", "m", 437, 1, 2)))
    expect(one.llm.calls).toEqual({ count: 1, mean_ms: 437, p95_ms: 437 })
  })

  it("takes the p95 of twenty calls to be the 19th fastest", () => {
    const twenty = computeStats(log(...Array.from({ length: 20 }, (_, i) => call("T", "plan", "m", (20 - i) * 10, 0, 0))))
    expect(twenty.llm.calls).toEqual({ count: 20, mean_ms: 105, p95_ms: 190 })
  })

  it("names a draft by its position when the plan line has been rotated away", () => {
    const rotated = computeStats(log(go("T", "planning", "skill_draft"), go("T", "skill_draft", "rework")))
    expect(rotated.drafts.skills).toEqual([{ task_id: "T", skill: "#1", reworks: 1, reached_approval: false }])
  })
})

describe("computeStats with --since", () => {
  const startOfB = fullLog.findIndex((line) => line.task_id === "B")
  const since = new Date(fullLog[startOfB]?.ts ?? "")

  it("counts only the calls, runs, drafts and tasks in the window", () => {
    const stats = computeStats(fullLog, since)
    expect(stats.since).toBe(since.toISOString())
    expect(stats.lines).toBe(fullLog.length - startOfB)
    // qwen-7b: B 800, D 1200 → mean 1000, p95 1200. coder: D 1800, 1400 → mean 1600, p95 1800.
    expect(stats.llm.models).toEqual([
      { model: CODER, count: 2, mean_ms: 1600, p95_ms: 1800, errors: 0, prompt_tokens: 580, completion_tokens: 640, cache_hit_rate: null, tokens_per_second: null },
      { model: PLANNER, count: 2, mean_ms: 1000, p95_ms: 1200, errors: 0, prompt_tokens: 850, completion_tokens: 170, cache_hit_rate: null, tokens_per_second: null }
    ])
    expect(stats.drafts).toMatchObject({ started: 1, reached_approval: 1, success_rate: 1, reworks: 0, retries_per_skill: 0 })
    expect(stats.tasks).toEqual({ total: 3, complete: 1, failed: 0, declined: 0, paused: 1, unfinished: 1 })
    expect(stats.skill_tests.map((test) => test.skill)).toEqual(["slugify"])
  })

  it("still names a draft whose plan came before the window, and counts it only if it started inside", () => {
    const draftStart = fullLog.findIndex((line) => line.task_id === "D" && line.data["to"] === "skill_draft")
    const inside = computeStats(fullLog, new Date(fullLog[draftStart]?.ts ?? ""))
    expect(inside.drafts.skills).toEqual([{ task_id: "D", skill: "slugify", reworks: 0, reached_approval: true }])
    const after = computeStats(fullLog, new Date(fullLog[draftStart + 1]?.ts ?? ""))
    expect(after.drafts.started).toBe(0)
    expect(after.tasks).toEqual({ total: 1, complete: 0, failed: 0, declined: 0, paused: 1, unfinished: 0 })
  })

  it("has no data after the last line", () => {
    const stats = computeStats(fullLog, new Date("2030-01-01T00:00:00Z"))
    expect(stats.lines).toBe(0)
    expect(stats.llm.calls.count).toBe(0)
    expect(stats.tasks.total).toBe(0)
  })
})

describe("parseSince", () => {
  const parsed = (text: string) => Either.getOrThrowWith(parseSince(text), (error) => new Error(error.message)).toISOString()

  it("reads a date as midnight UTC and a date-time without an offset as UTC", () => {
    expect(parsed("2024-05-01")).toBe("2024-05-01T00:00:00.000Z")
    expect(parsed("2024-05-01T13:30")).toBe("2024-05-01T13:30:00.000Z")
    expect(parsed("2024-05-01T13:30:15.250")).toBe("2024-05-01T13:30:15.250Z")
  })

  it("applies an offset", () => {
    expect(parsed("2024-05-01T13:30:00Z")).toBe("2024-05-01T13:30:00.000Z")
    expect(parsed("2024-05-01T13:30:00+02:00")).toBe("2024-05-01T11:30:00.000Z")
    expect(parsed("2024-05-01T00:30:00-01:00")).toBe("2024-05-01T01:30:00.000Z")
  })

  it.each(["yesterday", "2024-5-1", "2024-02-30", "2024-05-01T24:00", "2024-05-01 13:30", "1714560000", ""])(
    "refuses %j with a message that shows the accepted forms",
    (text) => {
      const result = parseSince(text)
      if (Either.isRight(result)) throw new Error(`accepted ${text}`)
      expect(result.left._tag).toBe("SinceInvalid")
      expect(result.left.message).toContain(`--since ${JSON.stringify(text)} is not a date`)
      expect(result.left.message).toContain("2024-05-01T13:30:00Z")
    }
  )
})
