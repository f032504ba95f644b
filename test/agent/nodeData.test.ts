/**
 * What passes between nodes, with the real sandbox: values between skills are bounded by the
 * memory a skill runs in (a skill may read a 790 KB CSV and hand on its rows, or reduce them to
 * four numbers), what reaches a model is an excerpt with a note, a value too large for a skill
 * is refused naming the node, the size and the limit, and a whole `"{id}"` given to an argument
 * the skill's header says is text arrives as text (or, when the plan alone shows it cannot be
 * what the argument takes, the plan is sent back with a sentence the model can act on).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Agent } from "../../src/Agent.ts"
import { configInside } from "../../src/core/config.ts"
import { maxNodeInputChars } from "../../src/core/prompts.ts"
import { FakeReply, LlmRequests } from "../../src/layers/Llm.ts"
import { agentLayer, installSkill } from "../support/agentHarness.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

const shippedSkills = join(import.meta.dirname, "..", "..", "skills")
const plan = (nodes: ReadonlyArray<Record<string, unknown>>) => JSON.stringify({ nodes })

/** A sales CSV of about 790 KB, and the statistics of its units column. */
const salesCsv = () => {
  const lines = ["date,region,product,units,price"]
  const units: Array<number> = []
  for (let i = 0; i < 21_000; i++) {
    units.push((i * 7) % 50)
    lines.push(`2024-0${1 + (i % 9)}-${10 + (i % 18)},region-${i % 7},"product, no. ${i % 13}",${(i * 7) % 50},${((i % 997) / 10).toFixed(1)}`)
  }
  const text = `${lines.join("\n")}\n`
  const sum = units.reduce((a, b) => a + b, 0)
  return { text, stats: { count: units.length, min: Math.min(...units), max: Math.max(...units), mean: sum / units.length } }
}

const statsBody = `const xs = rows.map((row) => Number(row[column]))
  let min = Infinity, max = -Infinity, sum = 0
  for (const x of xs) { if (x < min) min = x; if (x > max) max = x; sum += x }
  return { count: xs.length, min, max, mean: sum / xs.length }`

/** Reduces rows given as an argument (they crossed from another node) to four numbers. */
const columnStats = `/* @skill {"name": "column_stats", "version": "1.0.0", "description": "Count, min, max and mean of a numeric column", "public_functions": ["run"], "args": {"rows": "array of objects: the rows", "column": "string: the column"}} */
export function run({ rows, column }) {
  ${statsBody}
}
`

/** Reads the CSV itself through read_csv (the rows cross between sandboxes inside one run). */
const csvStats = `/* @skill {"name": "csv_stats", "version": "1.0.0", "description": "Count, min, max and mean of a numeric column of a CSV file", "dependencies": ["read_csv"], "public_functions": ["run"], "args": {"path": "string: the CSV file", "column": "string: the column"}} */
import { run as readCsv } from "read_csv"
export function run({ path, column }) {
  const rows = readCsv({ path })
  ${statsBody}
}
`

/** Describes a value it is given as text, and fails loudly when it is not text. */
const describeText = `/* @skill {"name": "describe_text", "version": "1.0.0", "description": "Says how long a text is", "public_functions": ["run"], "args": {"text": "string: any text"}} */
export function run({ text }) {
  if (typeof text !== "string") throw new TypeError("text must be a string, got " + typeof text)
  return { length: text.length, starts: text.slice(0, 12) }
}
`

const setUp = (options: { readonly memoryMb?: number } = {}) =>
  Effect.gen(function*() {
    const home = yield* tempDir
    const data = join(home, "data")
    mkdirSync(data, { recursive: true })
    const base = configInside(home, { builtinSkillsDir: shippedSkills, allowedPaths: [`${data}/**`] })
    const config = {
      ...base,
      limits: { ...base.limits, skill_memory_mb: options.memoryMb ?? base.limits.skill_memory_mb, max_parallel_nodes: 2 },
      approval_tiers: { ...base.approval_tiers, task_confirmation: "auto" as const }
    }
    for (const [name, code] of [["column_stats", columnStats], ["csv_stats", csvStats], ["describe_text", describeText]] as const) installSkill(config, name, code)
    return { home, data, config }
  })

/** Runs `request` with the agent and the scripted model; the outcome and what the model was sent. */
const runTask = (setup: Effect.Effect.Success<ReturnType<typeof setUp>>, replies: ReadonlyArray<FakeReply>, request: string) =>
  Effect.gen(function*() {
    const outcome = yield* Effect.flatMap(Agent, (agent) => agent.run(request))
    const sent = yield* Effect.flatMap(LlmRequests, (recorded) => recorded.requests)
    const results = new Map(outcome.task.graph?.nodes.map((node) => [node.id, node]))
    return { outcome, sent, results }
  }).pipe(Effect.provide(agentLayer(setup.config, replies, setup.home)))

/** The user message of the node call for `id`. */
const nodePrompt = (sent: ReadonlyArray<{ readonly messages: ReadonlyArray<{ readonly content: string }> }>, id: string) =>
  sent.map((request) => request.messages.at(-1)?.content ?? "").find((content) => content.startsWith(`Job: answer step "${id}"`)) ?? ""

describe("values between nodes", () => {
  it.scoped("a 790 KB CSV's rows pass between skills whole; four numbers come back; the model gets an excerpt with a note", () =>
    Effect.gen(function*() {
      const setup = yield* setUp()
      const csv = salesCsv()
      expect(csv.text.length).toBeGreaterThan(780 * 1024)
      const file = join(setup.data, "sales.csv")
      writeFileSync(file, csv.text)
      const nodes = plan([
        { id: "rows", action: "skill", skill_name: "read_csv", skill_args: { path: file } },
        { id: "stats", action: "skill", skill_name: "column_stats", skill_args: { rows: "{rows}", column: "units" }, depends_on: ["rows"] },
        { id: "direct", action: "skill", skill_name: "csv_stats", skill_args: { path: file, column: "units" } },
        { id: "answer", action: "llm_call", prompt_template: "The rows: {rows}\nTheir statistics: {stats}\nSummarise.", depends_on: ["rows", "stats"] }
      ])
      const replies = [FakeReply.content(nodes, { when: "Request:" }), FakeReply.content("Units average about 24.5.", { when: "Job: answer" })]
      const { outcome, results, sent } = yield* runTask(setup, replies, "Summarise the units in sales.csv")
      expect(outcome.task.error).toBeNull()
      expect(outcome.task.state).toBe("complete")
      const rows = results.get("rows")?.result
      expect(Array.isArray(rows) && rows.length).toBe(csv.stats.count)
      expect(JSON.stringify(rows).length).toBeGreaterThan(1024 * 1024)
      // Four numbers from the rows another node passed, and from rows read inside one run.
      expect(results.get("stats")?.result).toEqual(csv.stats)
      expect(results.get("direct")?.result).toEqual(csv.stats)

      const prompt = nodePrompt(sent, "answer")
      expect(prompt).toContain("characters left out here to fit the model's context")
      expect(prompt).toContain(`Their statistics: ${JSON.stringify(csv.stats)}`)
      expect(prompt.length).toBeLessThan(maxNodeInputChars + 2_000)
      expect(outcome.task.result).toEqual({ direct: csv.stats, answer: "Units average about 24.5." })
    }).pipe(Effect.provide(TestPlatform)), 120_000)

  it.scoped("arguments or a result larger than a quarter of a skill's memory are refused, naming the node, the size and the limit", () =>
    Effect.gen(function*() {
      const setup = yield* setUp({ memoryMb: 16 })
      const limit = 4 * 1024 * 1024
      const part = join(setup.data, "part.txt")
      const whole = join(setup.data, "whole.txt")
      writeFileSync(part, "z".repeat(1_500_000))
      writeFileSync(whole, "z".repeat(5_000_000))
      const nodes = plan([
        { id: "part", action: "skill", skill_name: "read_file", skill_args: { path: part } },
        { id: "thrice", action: "skill", skill_name: "describe_text", skill_args: { text: "{part}", again: "{part}", more: "{part}" }, depends_on: ["part"], max_retries: 0 },
        { id: "whole", action: "skill", skill_name: "read_file", skill_args: { path: whole }, max_retries: 0 }
      ])
      const { outcome, results } = yield* runTask(setup, [FakeReply.content(nodes, { when: "Request:" })], "Describe the files")
      expect(results.get("part")?.status).toBe("complete")
      const size = JSON.stringify({ text: "z".repeat(1_500_000), again: "z".repeat(1_500_000), more: "z".repeat(1_500_000) }).length
      const limits = `more than the ${limit} a value passed between skills may have (a quarter of the 16 MB of limits.skill_memory_mb). ` +
        "Let a skill aggregate what it hands on (or write the data to a file and pass its path), or raise limits.skill_memory_mb."
      expect(results.get("thrice")?.error).toBe(`Node "thrice" would give skill describe_text ${size} characters of JSON as its arguments, ${limits}`)
      expect(results.get("whole")?.error).toBe(`Node "whole": skill read_file returned ${JSON.stringify("z".repeat(5_000_000)).length} characters of JSON, ${limits}`)
      expect(outcome.task.state).toBe("failed")
      expect(outcome.task.error).toContain(`- node thrice: Node "thrice" would give skill describe_text ${size} characters`)
      expect(outcome.task.error).toContain(`- node whole: Node "whole": skill read_file returned`)
    }).pipe(Effect.provide(TestPlatform)), 120_000)
})

describe("a whole \"{id}\" given to an argument the skill says is text", () => {
  it.scoped("arrives as the result's JSON text, as it would inside a longer string", () =>
    Effect.gen(function*() {
      const setup = yield* setUp()
      const csv = salesCsv()
      const file = join(setup.data, "sales.csv")
      writeFileSync(file, csv.text)
      const out = join(setup.data, "stats.json")
      const nodes = plan([
        { id: "stats", action: "skill", skill_name: "csv_stats", skill_args: { path: file, column: "units" } },
        { id: "save", action: "skill", skill_name: "write_file", skill_args: { path: out, content: "{stats}" }, depends_on: ["stats"] },
        { id: "size", action: "skill", skill_name: "describe_text", skill_args: { text: "{stats}" }, depends_on: ["stats"] }
      ])
      const { outcome, results } = yield* runTask(setup, [FakeReply.content(nodes, { when: "Request:" })], "Save the statistics of sales.csv")
      expect(outcome.task.error).toBeNull()
      expect(readFileSync(out, "utf8")).toBe(JSON.stringify(csv.stats))
      expect(results.get("size")?.result).toEqual({ length: JSON.stringify(csv.stats).length, starts: JSON.stringify(csv.stats).slice(0, 12) })
    }).pipe(Effect.provide(TestPlatform)), 120_000)

  it.scoped("text given where the skill wants structure sends the plan back with a sentence the model can act on", () =>
    Effect.gen(function*() {
      const setup = yield* setUp()
      const out = join(setup.data, "report.md")
      const badPlan = plan([
        { id: "summary", action: "llm_call", prompt_template: "Summarise the sales." },
        { id: "write", action: "skill", skill_name: "write_markdown", skill_args: { title: "Sales", sections: "{summary}", output_path: out }, depends_on: ["summary"] }
      ])
      const goodPlan = plan([
        { id: "summary", action: "llm_call", prompt_template: "Summarise the sales." },
        { id: "write", action: "skill", skill_name: "write_markdown", skill_args: { title: "Sales", sections: [{ heading: "Summary", body: "{summary}" }], output_path: out }, depends_on: ["summary"] }
      ])
      const expected = `Node "write" passes "{summary}" as the argument "sections" of write_markdown, which takes an array; ` +
        `but "summary" is an llm_call without an output_schema, so its result is text. Pass a value of that kind: give "summary" an output_schema that describes it, or let a skill build it.`
      const replies = [
        FakeReply.content(goodPlan, { when: "Your previous plan was rejected" }),
        FakeReply.content(badPlan, { when: "Request:" }),
        FakeReply.content("Sales grew.", { when: "Job: answer" })
      ]
      const { outcome, sent } = yield* runTask(setup, replies, "Write a sales report")
      const retry = sent.map((request) => request.messages.at(-1)?.content ?? "").find((content) => content.includes("Your previous plan was rejected"))
      expect(retry).toContain(expected)
      expect(outcome.task.state).toBe("complete")
      expect(readFileSync(out, "utf8")).toContain("Sales grew.")
    }).pipe(Effect.provide(TestPlatform)), 120_000)
})
