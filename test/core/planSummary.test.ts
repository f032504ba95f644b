import { describe, expect, it } from "@effect/vitest"
import type { Graph } from "../../src/core/graph.ts"
import { commandLine, summarizePlan } from "../../src/core/planSummary.ts"

const node = { depends_on: [], status: "pending" as const, retries: 0, max_retries: 2 }
const graph: Graph = {
  nodes: [
    { ...node, id: "read", action: "skill", skill_name: "read_csv", skill_args: { path: "~/data/q1.csv", columns: ["a", "relative/b"], limit: 3 } },
    { ...node, id: "sum", action: "skill", skill_name: "csv_sum", skill_args: { rows: "{read}", out: "/tmp/out.txt", copy: "/tmp/{read}.txt" }, depends_on: ["read"] },
    { ...node, id: "grep", action: "skill", skill_name: "finder", skill_args: { command: "grep", args: ["-c", "it's", "/var/log/app.log"] } },
    { ...node, id: "big", action: "decision", condition: "result > 10", if_true: "say", if_false: "say", depends_on: ["sum"] },
    { ...node, id: "say", action: "llm_call", prompt_template: "The sum is {sum}; {read} was read.", model: "qwen", depends_on: ["big"] }
  ],
  metadata: { prompt: "p", created_at: "2026-01-01T00:00:00.000Z", model: "m" }
}
const facts = new Map([
  ["read_csv", { paths: ["~/data/**"], exec: false }],
  // Its dependency runs commands, so it needs exec itself.
  ["finder", { paths: ["/var/log/**"], exec: true }]
])

describe("the plan a human confirms", () => {
  const plan = summarizePlan(graph, [{ name: "csv_sum", purpose: "sums a column", example_args: {} }], facts)

  it("names each node's skill or model, the paths its arguments name (not those a result fills in) and the nodes it is given", () => {
    expect(plan.nodes.map((n) => [n.id, n.action, n.uses, n.paths, n.inputs])).toEqual([
      ["read", "skill", "read_csv", ["~/data/q1.csv"], []],
      ["sum", "skill", "csv_sum", ["/tmp/out.txt"], ["read"]],
      ["grep", "skill", "finder", ["/var/log/app.log"], []],
      ["big", "decision", "result > 10", [], []],
      ["say", "llm_call", "qwen", [], ["sum", "read"]]
    ])
  })

  it("marks the skills drafted first, whose reach is shown at their review rather than guessed", () => {
    expect(plan.drafts).toEqual([{ name: "csv_sum", purpose: "sums a column" }])
    expect(plan.nodes.map((n) => [n.id, n.drafted, n.may_reach])).toEqual([
      ["read", false, ["~/data/**"]],
      ["sum", true, []],
      ["grep", false, ["/var/log/**"]],
      ["big", false, []],
      ["say", false, []]
    ])
  })

  it("lists the skills that need exec once, with each node's command line", () => {
    expect(plan.exec_skills).toEqual(["finder"])
    expect(plan.nodes.filter((n) => n.exec).map((n) => [n.id, n.command])).toEqual([["grep", "grep -c 'it'\\''s' /var/log/app.log"]])
  })

  it("reads a command line only from { command, args }", () => {
    expect(commandLine({ command: "ls", args: ["-la", "~/x y"] })).toBe("ls -la '~/x y'")
    expect(commandLine({ command: "wc" })).toBe("wc")
    expect(commandLine({ path: "/x" })).toBeNull()
  })
})
