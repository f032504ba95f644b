/**
 * A task as JSON, for the stores: the same text as `JSON.stringify(task)` (a test holds this),
 * without encoding again what did not change. A running graph's snapshots change a node or two
 * and share every other node object with the snapshot before, and no task object is changed in
 * place (every type is readonly), so the JSON of each node is kept for its object.
 */
import type { Graph, Node } from "../../core/graph.ts"
import type { Task } from "../../core/task.ts"

/**
 * `JSON.stringify(object)` for a plain object (no `toJSON`), but with member `key` encoded by
 * `raw`; a member whose value JSON leaves out (undefined) is left out, as JSON.stringify does.
 */
const objectJson = (object: { readonly [name: string]: unknown }, key: string, raw: () => string): string => {
  const members: Array<string> = []
  for (const [name, value] of Object.entries(object)) {
    const text = name === key ? raw() : JSON.stringify(value)
    if (text !== undefined) members.push(`${JSON.stringify(name)}:${text}`)
  }
  return `{${members.join(",")}}`
}

/** An encoder with its own memory of node objects (one per store). */
export const makeTaskEncoder = () => {
  const nodeJson = new WeakMap<Node, string>()
  const encodeNode = (node: Node): string => {
    const known = nodeJson.get(node)
    if (known !== undefined) return known
    const text = JSON.stringify(node)
    nodeJson.set(node, text)
    return text
  }
  const encodeGraph = (graph: Graph | null): string =>
    graph === null ? "null" : objectJson(graph, "nodes", () => `[${graph.nodes.map(encodeNode).join(",")}]`)
  return (task: Task): string => objectJson(task, "graph", () => encodeGraph(task.graph))
}
