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
