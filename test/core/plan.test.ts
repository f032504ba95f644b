import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { parsePlan } from "../../src/core/plan.ts"

const context = {
  knownSkills: new Set(["read_file", "write_file"]),
  metadata: { prompt: "p", created_at: "2026-01-01T00:00:00.000Z", model: "m" },
  maxNodes: 5
}

const accepted = (answer: string) => {
  const result = parsePlan(answer, context)
  if (Either.isLeft(result)) throw new Error(result.left.join("\n"))
  return result.right
}
const rejected = (answer: string) => {
  const result = parsePlan(answer, context)
  if (Either.isRight(result)) throw new Error("expected the plan to be rejected")
  return result.left
}

describe("parsePlan", () => {
  it("accepts a fenced plan with omitted bookkeeping fields and numeric ids", () => {
    const plan = accepted("Here you go:\n```json\n{\"nodes\": [{\"id\": 1, \"action\": \"skill\", \"skill_name\": \"read_file\", \"skill_args\": {\"path\": \"/d/a\"}}, {\"id\": 2, \"action\": \"llm_call\", \"prompt_template\": \"Summarise {1}\", \"depends_on\": [1]}]}\n```")
    expect(plan.missing).toEqual([])
    expect(plan.graph.nodes.map((n) => [n.id, n.status, n.retries, n.max_retries])).toEqual([["1", "pending", 0, 2], ["2", "pending", 0, 2]])
    expect(plan.graph.metadata).toEqual(context.metadata)
  })

  it("lists each missing skill once, with its description and the arguments the plan passes", () => {
    const plan = accepted(JSON.stringify({
      nodes: [
        { id: "a", action: "skill", skill_name: "csv_sum", skill_args: { column: "x" }, description: "Sum column x." },
        { id: "b", action: "skill", skill_name: "csv_sum", skill_args: { column: "y" }, depends_on: ["a"] }
      ]
    }))
    expect(plan.missing).toEqual([{ name: "csv_sum", purpose: "Sum column x.", example_args: { column: "x" } }])
  })

  it("rejects an unknown skill without a description, naming the available ones", () => {
    const errors = rejected(JSON.stringify({ nodes: [{ id: "a", action: "skill", skill_name: "read_fil" }] }))
    expect(errors).toEqual([
      "Node \"a\" uses skill \"read_fil\", which does not exist. Use one of the available skills (read_file, write_file), or keep the new name and add a \"description\" saying exactly what the skill must do, so it can be written."
    ])
  })

  it("returns decode errors with their paths and validation errors naming nodes, all at once", () => {
    const errors = rejected(JSON.stringify({
      nodes: [
        { id: "a", action: "skil", skill_name: "read_file" },
        { id: "b", action: "llm_call", prompt_template: "x", depends_on: ["zzz"] }
      ]
    }))
    expect(errors.join("\n")).toContain("nodes[0]")
    const invalid = rejected(JSON.stringify({
      nodes: [
        { id: "a", action: "llm_call", prompt_template: "x", depends_on: ["b"] },
        { id: "b", action: "llm_call", prompt_template: "y", depends_on: ["a"] },
        { id: "c", action: "llm_call", prompt_template: "{a}", depends_on: ["zzz"] }
      ]
    }))
    expect(invalid.some((e) => e.includes("cycle"))).toBe(true)
    expect(invalid.some((e) => e.includes("\"zzz\""))).toBe(true)
  })

  it("rejects an empty plan, an answer without JSON and a truncated answer with a reason", () => {
    expect(rejected(`{"nodes": []}`)[0]).toContain("The plan has no nodes")
    expect(rejected("I am not sure what you mean.")[0]).toContain("holds no JSON object")
    expect(rejected(`{"nodes": [{"id": "a", "action": "llm_call"`)[0]).toContain("cut off")
  })

  it("accepts a bare list of nodes as the plan", () => {
    const plan = accepted("Plan:\n[{\"id\": \"a\", \"action\": \"llm_call\", \"prompt_template\": \"x\"}]")
    expect(plan.graph.nodes.map((n) => n.id)).toEqual(["a"])
  })

  it("sends a plan larger than max_plan_nodes back with one sentence, not one error per node", () => {
    const nodes = Array.from({ length: 6 }, (_, i) => ({ id: `n${i}`, action: "llm_call", prompt_template: "x", depends_on: ["zzz"] }))
    expect(rejected(JSON.stringify({ nodes }))).toEqual([
      "The plan has 6 nodes, more than the 5 allowed (limits.max_plan_nodes). Make it smaller: let one skill process a whole list instead of one node per item."
    ])
  })
})

describe("parsePlan: a whole \"{id}\" against the skill's args header", () => {
  const withArgs = {
    ...context,
    maxNodes: 20,
    knownSkills: new Set(["write_markdown", "write_file", "read_csv"]),
    skillArgs: new Map<string, Readonly<Record<string, string>>>([
      ["write_markdown", { title: "string: the title", sections: "array of {heading, body}", output_path: "string: the file" }],
      ["write_file", { path: "string: the file", content: "string: the text", overwrite: "boolean, default false: replace" }],
      ["read_csv", { path: "string: the file" }]
    ])
  }
  const check = (nodes: ReadonlyArray<Record<string, unknown>>) => parsePlan(JSON.stringify({ nodes }), withArgs)
  const llm = (id: string, extra: Record<string, unknown> = {}) => ({ id, action: "llm_call", prompt_template: "p", ...extra })

  it("refuses text, true/false or a schema's other type where the skill wants structure or a flag, saying what to change", () => {
    const result = check([
      llm("summary"),
      llm("counts", { output_schema: { type: "number" } }),
      llm("flagged"),
      { id: "check", action: "decision", condition: "length > 3", if_true: "yes", if_false: "no", depends_on: ["flagged"] },
      { id: "yes", action: "skill", skill_name: "write_markdown", skill_args: { title: "t", sections: "{summary}", output_path: "/d/r.md" }, depends_on: ["summary", "check"] },
      { id: "no", action: "skill", skill_name: "write_markdown", skill_args: { title: "t", sections: "{counts}", output_path: "/d/r.md" }, depends_on: ["counts", "check"] },
      { id: "w", action: "skill", skill_name: "write_file", skill_args: { path: "/d/x", content: "x", overwrite: "{summary}" }, depends_on: ["summary"] }
    ])
    expect(Either.isLeft(result) ? result.left : []).toEqual([
      `Node "yes" passes "{summary}" as the argument "sections" of write_markdown, which takes an array; but "summary" is an llm_call without an output_schema, so its result is text. Pass a value of that kind: give "summary" an output_schema that describes it, or let a skill build it.`,
      `Node "no" passes "{counts}" as the argument "sections" of write_markdown, which takes an array; but "counts" has an output_schema of type "number". Pass a value of that kind: make the output_schema of "counts" describe it, or let a skill build it.`,
      `Node "w" passes "{summary}" as the argument "overwrite" of write_file, which takes true or false; but "summary" is an llm_call without an output_schema, so its result is text. Pass a value of that kind: give "summary" an output_schema that describes it, or let a skill build it.`
    ])
  })

  it("accepts anything given to a text argument (it arrives as text), a skill's result (unknown until it runs), and matching kinds", () => {
    const result = check([
      { id: "rows", action: "skill", skill_name: "read_csv", skill_args: { path: "/d/a.csv" } },
      llm("sections", { output_schema: { type: "array", items: { type: "object" } } }),
      { id: "a", action: "skill", skill_name: "write_file", skill_args: { path: "/d/a", content: "{rows}" }, depends_on: ["rows"] },
      { id: "b", action: "skill", skill_name: "write_markdown", skill_args: { title: "{sections}", sections: "{rows}", output_path: "/d/b.md" }, depends_on: ["rows", "sections"] },
      { id: "c", action: "skill", skill_name: "write_markdown", skill_args: { title: "t", sections: "{sections}", output_path: "/d/c.md" }, depends_on: ["sections"] }
    ])
    expect(Either.isRight(result)).toBe(true)
  })
})
