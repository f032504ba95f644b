/** Node and graph builders shared by the graph and executor tests. */
import type { Graph, Node } from "../../src/core/graph.ts"

export const metadata = { prompt: "summarise my notes", created_at: "2024-05-01T10:00:00.000Z", model: "qwen2.5-7b" }
export const bookkeeping = { status: "pending", retries: 0, max_retries: 2 } as const

export const skill = (id: string, depends_on: ReadonlyArray<string> = [], skill_name = "read_file"): Node => ({
  id,
  action: "skill",
  skill_name,
  skill_args: {},
  depends_on,
  ...bookkeeping
})

export const llm = (id: string, depends_on: ReadonlyArray<string>, prompt_template: string): Node => ({
  id,
  action: "llm_call",
  prompt_template,
  depends_on,
  ...bookkeeping
})

export const decision = (
  id: string,
  depends_on: ReadonlyArray<string>,
  condition: string,
  if_true: string,
  if_false: string
): Node => ({ id, action: "decision", condition, if_true, if_false, depends_on, ...bookkeeping })

export const graphOf = (...nodes: ReadonlyArray<Node>): Graph => ({ nodes, metadata })
