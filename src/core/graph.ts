/**
 * The task graph: schemas, validation and the pure scheduling queries the executor builds on.
 *
 * Edges point from a dependency to its dependants (`b.depends_on = ["a"]` means a → b). A node
 * whose dependency failed or was skipped can never run, so it is skipped too: `readyNodes`
 * therefore only has to look for complete dependencies, and a decision's not-taken branch takes
 * everything below it down with it. Every function returns a new graph; none mutates its input.
 */
import { Array as Arr, Data, Either, Graph as Digraph, Option, ParseResult, Schema } from "effect"
import { parseCondition, referencedNodes, usesResult } from "./conditions.ts"
import { fromJsonText } from "./jsonText.ts"
import { formatIssue, parseIssues } from "./schemaIssues.ts"
import { unsupportedJsonSchema } from "./jsonSchema.ts"
import { isNodeId, type Results, templateReferences, valueReferences } from "./template.ts"

// ---------------------------------------------------------------------------------------------
// Schemas

export const NodeStatus = Schema.Literal("pending", "running", "complete", "failed", "skipped").annotations({
  // Without `override` the formatter reports each literal as a separate alternative.
  message: () => ({ message: `Expected "pending", "running", "complete", "failed" or "skipped"`, override: true })
})
export type NodeStatus = typeof NodeStatus.Type

/** Retries a node gets when the plan does not say. */
export const defaultMaxRetries = 2

const SkillArgs = Schema.Record({ key: Schema.String, value: Schema.Unknown }).annotations({
  message: () => `Expected an object of named arguments, e.g. {"path": "notes.txt"}`
})

/** A JSON schema an `llm_call` node's answer must match (checked against llama.cpp's subset by `validate`). */
const OutputSchema = Schema.Record({ key: Schema.String, value: Schema.Unknown }).annotations({
  message: () => `Expected a JSON schema object, e.g. {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]}`
})

/** The three node kinds over a set of common fields, so the strict and plan forms cannot drift. */
const nodeKinds = <
  Common extends Schema.Struct.Fields,
  Ref extends Schema.Struct.Field,
  Args extends Schema.Struct.Field
>(
  common: Common,
  ref: Ref,
  skillArgs: Args
) =>
  Schema.Union(
    Schema.Struct({
      ...common,
      action: Schema.Literal("skill"),
      skill_name: Schema.String,
      skill_args: skillArgs,
      /** For a skill that does not exist yet: what it must do, told to the model that drafts it. */
      description: Schema.optional(Schema.String)
    }),
    Schema.Struct({
      ...common,
      action: Schema.Literal("llm_call"),
      prompt_template: Schema.String,
      model: Schema.optional(Schema.String),
      /** When set, the answer is JSON matching this schema (requested from the server as a constraint). */
      output_schema: Schema.optional(OutputSchema)
    }),
    Schema.Struct({
      ...common,
      action: Schema.Literal("decision"),
      condition: Schema.String,
      if_true: ref,
      if_false: ref
    })
  )

export const Node = nodeKinds(
  {
    id: Schema.String,
    depends_on: Schema.Array(Schema.String),
    status: NodeStatus,
    retries: Schema.NonNegativeInt,
    max_retries: Schema.NonNegativeInt,
    result: Schema.optional(Schema.Unknown),
    error: Schema.optional(Schema.String)
  },
  Schema.String,
  SkillArgs
)
export type Node = typeof Node.Type
export type SkillNode = Extract<Node, { readonly action: "skill" }>
export type LlmCallNode = Extract<Node, { readonly action: "llm_call" }>
export type DecisionNode = Extract<Node, { readonly action: "decision" }>
/** The nodes the caller runs; decisions are evaluated by the executor. */
export type ActionNode = SkillNode | LlmCallNode

export const GraphMetadata = Schema.Struct({ prompt: Schema.String, created_at: Schema.String, model: Schema.String })
export type GraphMetadata = typeof GraphMetadata.Type

export const Graph = Schema.Struct({ nodes: Schema.Array(Node), metadata: GraphMetadata })
export type Graph = typeof Graph.Type

/** Models write `"id": 1` as readily as `"id": "1"`. */
const PlanId = Schema.Union(
  Schema.String,
  Schema.transform(Schema.Number, Schema.String, { strict: true, decode: String, encode: Number })
).annotations({ message: () => ({ message: "Expected a node id (a string)", override: true }) })
const PlanIds = Schema.Array(PlanId).annotations({ message: () => `Expected a list of node ids, e.g. ["fetch"]` })

/** A node as a model writes it: bookkeeping fields may be left out and get their defaults. */
export const PlanNode = nodeKinds(
  {
    id: PlanId,
    depends_on: Schema.optionalWith(PlanIds, { exact: true, default: () => [] }),
    status: Schema.optionalWith(NodeStatus, { exact: true, default: () => "pending" }),
    retries: Schema.optionalWith(Schema.NonNegativeInt, { exact: true, default: () => 0 }),
    max_retries: Schema.optionalWith(Schema.NonNegativeInt, { exact: true, default: () => defaultMaxRetries }),
    result: Schema.optional(Schema.Unknown),
    error: Schema.optional(Schema.String)
  },
  PlanId,
  Schema.optionalWith(SkillArgs, { exact: true, default: () => ({}) })
).annotations({
  message: () => `Expected a node: an object with an "id" and an "action" ("skill", "llm_call" or "decision")`
})

/**
 * The plan a model is asked to write, for the JSON schema that constrains its answer: only the
 * fields a model writes, all of them spelled out (the grammar makes it write `depends_on` and
 * `skill_args` even when empty). Its answers decode with `PlanGraph`.
 */
export const PlanAnswer = Schema.Struct({
  nodes: Schema.Array(nodeKinds(
    { id: Schema.String, depends_on: Schema.Array(Schema.String), max_retries: Schema.optional(Schema.NonNegativeInt) },
    Schema.String,
    SkillArgs
  ))
})

/** A plan as a model writes it; the caller supplies the metadata (see `fromJson`). */
export const PlanGraph = Schema.Struct({
  nodes: Schema.Array(PlanNode).annotations({ message: () => "Expected a list of nodes" })
}).annotations({ message: () => `Expected an object like {"nodes": [...]}` })

// ---------------------------------------------------------------------------------------------
// Errors

export type GraphErrorKind =
  | "decode"
  | "invalid_id"
  | "duplicate_id"
  | "invalid_field"
  | "self_dependency"
  | "unknown_dependency"
  | "unknown_branch_target"
  | "branch_not_dependent"
  | "branch_join"
  | "cycle"
  | "invalid_condition"
  | "invalid_reference"

/** One problem with a plan. `message` names the node and the fix, so it can go back to the model. */
export class GraphError extends Data.TaggedError("GraphError")<{
  readonly kind: GraphErrorKind
  readonly message: string
  /** The node ids the problem is about (empty for decode errors). */
  readonly nodes: ReadonlyArray<string>
}> {}

const graphError = (kind: GraphErrorKind, nodes: ReadonlyArray<string>, message: string) =>
  new GraphError({ kind, nodes, message })

const quote = (id: string) => JSON.stringify(id)

const cycleError = (members: ReadonlyArray<string>, cycle: ReadonlyArray<string>) => {
  const links = cycle.map((id, i) => `${quote(id)} depends on ${quote(cycle[(i + 1) % cycle.length])}`)
  return graphError(
    "cycle",
    members,
    `Nodes ${members.map(quote).join(", ")} depend on each other in a cycle (${links.join(", ")}), so none of ` +
      `them can ever start. Remove one of these dependencies.`
  )
}

// ---------------------------------------------------------------------------------------------
// Indexes and scheduling queries

const distinct = <A>(items: ReadonlyArray<A>): ReadonlyArray<A> => items.length < 2 ? items : Array.from(new Set(items))

/** The first node with each id (`validate` reports the others). */
const byId = (nodes: ReadonlyArray<Node>): ReadonlyMap<string, Node> => {
  const index = new Map<string, Node>()
  for (const node of nodes) if (!index.has(node.id)) index.set(node.id, node)
  return index
}

/** For each node id, the ids of the nodes that depend on it. */
export const dependantsIndex = (nodes: ReadonlyArray<Node>): ReadonlyMap<string, ReadonlyArray<string>> => {
  const index = new Map<string, Array<string>>()
  for (const node of nodes) {
    for (const dep of distinct(node.depends_on)) {
      const dependants = index.get(dep)
      if (dependants === undefined) index.set(dep, [node.id])
      else dependants.push(node.id)
    }
  }
  return index
}

/** Every node that depends on `id`, directly or transitively. */
export const descendants = (
  dependants: ReadonlyMap<string, ReadonlyArray<string>>,
  id: string
): ReadonlySet<string> => {
  const found = new Set<string>()
  const queue = [id]
  for (let i = 0; i < queue.length; i++) {
    for (const dependant of dependants.get(queue[i]) ?? []) {
      if (!found.has(dependant)) {
        found.add(dependant)
        queue.push(dependant)
      }
    }
  }
  return found
}

/** A pending node whose dependencies are all complete. */
export const readyNodes = (graph: Graph): ReadonlyArray<Node> => {
  const nodes = byId(graph.nodes)
  return graph.nodes.filter((node) =>
    node.status === "pending" && node.depends_on.every((dep) => nodes.get(dep)?.status === "complete")
  )
}

export const isComplete = (graph: Graph): boolean =>
  graph.nodes.every((node) => node.status === "complete" || node.status === "skipped")

/** A pending node that can no longer run; nodes that ran or are running keep their status. */
export const skipped = (node: Node): Node => node.status === "pending" ? { ...node, status: "skipped" } : node

/** Skips every pending node downstream of `id` (not `id` itself), transitively. */
export const markDownstreamSkipped = (graph: Graph, id: string): Graph => {
  const downstream = descendants(dependantsIndex(graph.nodes), id)
  return { ...graph, nodes: graph.nodes.map((node) => downstream.has(node.id) ? skipped(node) : node) }
}

/**
 * A finished graph made ready to run its failed part again: each failed node, and each node
 * skipped because of one, goes back to `pending` with its retries at 0; complete nodes keep
 * their results, and a node on the branch a complete decision did not take stays skipped.
 * `reopened` lists the failed nodes, in graph order.
 */
export const reopenFailed = (graph: Graph): { readonly graph: Graph; readonly reopened: ReadonlyArray<string> } => {
  const nodes = byId(graph.nodes)
  const dependants = dependantsIndex(graph.nodes)
  const failed = graph.nodes.filter((node) => node.status === "failed").map((node) => node.id)
  // What a complete decision ruled out: its other branch and everything below it.
  const notTaken = new Set<string>()
  for (const node of graph.nodes) {
    if (node.action !== "decision" || node.status !== "complete") continue
    const other = node.result === true ? node.if_false : node.if_true
    for (const id of [other, ...descendants(dependants, other)]) notTaken.add(id)
  }
  const reopen = new Set(failed)
  for (const id of failed) {
    for (const below of descendants(dependants, id)) {
      if (nodes.get(below)?.status === "skipped" && !notTaken.has(below)) reopen.add(below)
    }
  }
  // A node that also waits for a node that stays skipped can never run: it stays skipped too.
  let changed = true
  while (changed) {
    changed = false
    for (const id of reopen) {
      const blocked = (nodes.get(id)?.depends_on ?? []).some((dep) => nodes.get(dep)?.status === "skipped" && !reopen.has(dep))
      if (blocked) {
        reopen.delete(id)
        changed = true
      }
    }
  }
  const reset = (node: Node): Node => {
    const { error: _error, result: _result, ...rest } = node
    return { ...rest, status: "pending", retries: 0 }
  }
  return {
    graph: { ...graph, nodes: graph.nodes.map((node) => (reopen.has(node.id) ? reset(node) : node)) },
    reopened: failed.filter((id) => reopen.has(id))
  }
}

/** The results of the complete nodes, for templates and conditions. */
export const resultLookup = (graph: Graph): Results => {
  const nodes = byId(graph.nodes)
  return (id) => {
    const node = nodes.get(id)
    return node?.status === "complete" ? Option.some(node.result) : Option.none()
  }
}

// ---------------------------------------------------------------------------------------------
// Topological sort

/** Binary min-heap of declaration positions: Kahn's algorithm takes the earliest-declared ready node. */
const heapPush = (heap: Array<number>, value: number): void => {
  let i = heap.length
  for (let parent = (i - 1) >> 1; i > 0 && heap[parent] > value; i = parent, parent = (i - 1) >> 1) {
    heap[i] = heap[parent]
  }
  heap[i] = value
}

const heapPop = (heap: Array<number>): number => {
  const top = heap[0]
  const last = heap[heap.length - 1]
  heap.length -= 1
  let i = 0
  for (let child = 1; child < heap.length; i = child, child = 2 * i + 1) {
    if (child + 1 < heap.length && heap[child + 1] < heap[child]) child += 1
    if (heap[child] >= last) break
    heap[i] = heap[child]
  }
  if (i < heap.length) heap[i] = last
  return top
}

/**
 * Follows `next` from `start` until a node repeats; the repeating stretch is a cycle. `next`
 * always leads on among the nodes Kahn's algorithm could not place, and inside a strongly
 * connected component.
 */
const walkToCycle = <A>(start: A, next: (node: A) => A | undefined): ReadonlyArray<A> => {
  const path: Array<A> = []
  const seenAt = new Map<A, number>()
  for (let node: A | undefined = start; node !== undefined; node = next(node)) {
    const seen = seenAt.get(node)
    if (seen !== undefined) return path.slice(seen)
    seenAt.set(node, path.push(node) - 1)
  }
  return path
}

/**
 * Orders nodes so that each comes after its dependencies (Kahn's algorithm). Among nodes ready
 * at the same time the earliest declared goes first, so a plan already in order comes back
 * unchanged (`effect/Graph`'s `topo` takes them first-in-first-out instead). Unknown dependencies
 * are ignored: `validate` reports them. Fails with one of the cycles, if there are any.
 */
export const topologicalSort = (graph: Graph): Either.Either<ReadonlyArray<Node>, GraphError> => {
  const { nodes } = graph
  const position = new Map<string, number>()
  for (const [i, node] of nodes.entries()) if (!position.has(node.id)) position.set(node.id, i)
  const deps = nodes.map((node) => distinct(node.depends_on).flatMap((dep) => position.get(dep) ?? []))
  const dependants = nodes.map((): Array<number> => [])
  deps.forEach((ds, i) => ds.forEach((dep) => dependants[dep].push(i)))
  const waiting = deps.map((ds) => ds.length)

  const ready: Array<number> = []
  for (const [i, count] of waiting.entries()) if (count === 0) heapPush(ready, i)
  const sorted: Array<Node> = []
  while (ready.length > 0) {
    const i = heapPop(ready)
    sorted.push(nodes[i])
    for (const dependant of dependants[i]) {
      waiting[dependant] -= 1
      if (waiting[dependant] === 0) heapPush(ready, dependant)
    }
  }
  if (sorted.length === nodes.length) return Either.right(sorted)

  const unplaced = (i: number) => waiting[i] > 0
  const cycle = walkToCycle(waiting.findIndex((count) => count > 0), (i) => deps[i].find(unplaced)).map((i) => nodes[i].id)
  return Either.left(cycleError(cycle, cycle))
}

// ---------------------------------------------------------------------------------------------
// Validation

const conditionHelp = "Conditions compare result, length, length({node_id}), {node_id}, numbers, \"text\", " +
  "true, false and null with == != < <= > >= contains starts_with ends_with, joined by and, or, not and parentheses."

const skillNamePattern = /^[a-z][a-z0-9_]*$/

const isBlank = (text: string) => text.trim() === ""

const invalidField = (node: Node, problem: string) =>
  graphError("invalid_field", [node.id], `Node ${quote(node.id)} ${problem}.`)

const idErrors = (node: Node): ReadonlyArray<GraphError> => {
  if (isBlank(node.id)) {
    const message = `A ${node.action} node has an empty id; give every node a short unique id such as "fetch_data".`
    return [graphError("invalid_id", [node.id], message)]
  }
  return isNodeId(node.id) ? [] : [
    graphError(
      "invalid_id",
      [node.id],
      `Node id ${quote(node.id)} may only contain letters, digits, "_" and "-", because templates and conditions ` +
        `refer to it as {id}; rename it, e.g. to ${quote(node.id.replace(/[^A-Za-z0-9_-]+/g, "_"))}.`
    )
  ]
}

const duplicateIdErrors = (nodes: ReadonlyArray<Node>): ReadonlyArray<GraphError> => {
  const counts = new Map<string, number>()
  for (const node of nodes) counts.set(node.id, (counts.get(node.id) ?? 0) + 1)
  return Array.from(counts).filter(([, count]) => count > 1).map(([id, count]) =>
    graphError(
      "duplicate_id",
      [id],
      `Node id ${quote(id)} is used by ${count} nodes; give each node its own id and update the depends_on lists ` +
        `that refer to it.`
    )
  )
}

const dependencyErrors = (node: Node, nodes: ReadonlyMap<string, Node>): ReadonlyArray<GraphError> =>
  distinct(node.depends_on).flatMap((dep) => {
    if (dep === node.id) {
      const message = `Node ${quote(node.id)} lists itself in depends_on; remove ${quote(dep)} from its depends_on.`
      return [graphError("self_dependency", [node.id], message)]
    }
    return nodes.has(dep) ? [] : [
      graphError(
        "unknown_dependency",
        [node.id, dep],
        `Node ${quote(node.id)} depends on ${quote(dep)}, but no node has that id; remove it from depends_on of ` +
          `${quote(node.id)} or add a node with id ${quote(dep)}.`
      )
    ]
  })

/** Whether `node` depends on `target`, directly or through other nodes. */
const dependsOn = (node: Node, target: string, nodes: ReadonlyMap<string, Node>): boolean => {
  const seen = new Set<string>()
  const queue = [...node.depends_on]
  for (let i = 0; i < queue.length; i++) {
    const id = queue[i]
    if (id === target) return true
    if (!seen.has(id)) {
      seen.add(id)
      queue.push(...(nodes.get(id)?.depends_on ?? []))
    }
  }
  return false
}

type ReferringField = "prompt_template" | "condition" | "skill_args"

const referenceProblem = (node: Node, field: ReferringField, id: string, nodes: ReadonlyMap<string, Node>) => {
  if (id === node.id) return Option.some("its own result; a node can only use the results of nodes it depends on")
  if (!nodes.has(id)) {
    return Option.some(
      `but no node has id ${quote(id)}; use the id of a node it depends on` +
        (field === "condition" ? "" : `, or write {{${id}} for a literal brace`)
    )
  }
  return dependsOn(node, id, nodes) ? Option.none() : Option.some(
    `but ${quote(node.id)} does not depend on ${quote(id)} (directly or through other nodes), so that result may ` +
      `not exist yet; add ${quote(id)} to depends_on of ${quote(node.id)}`
  )
}

/** `{id}` references must name nodes this node waits for, or their results may not exist yet. */
const referenceErrors = (
  node: Node,
  field: ReferringField,
  references: ReadonlyArray<string>,
  nodes: ReadonlyMap<string, Node>
): ReadonlyArray<GraphError> =>
  Arr.filterMap(references, (id) =>
    Option.map(referenceProblem(node, field, id, nodes), (problem) => {
      const message = `Node ${quote(node.id)} refers to {${id}} in its ${field}, ${problem}.`
      return graphError("invalid_reference", [node.id, id], message)
    }))

const conditionErrors = (node: DecisionNode, nodes: ReadonlyMap<string, Node>): ReadonlyArray<GraphError> => {
  if (isBlank(node.condition)) return [invalidField(node, "has an empty condition; write one such as: length > 0")]
  return Either.match(parseCondition(node.condition), {
    onLeft: (error) => [
      graphError(
        "invalid_condition",
        [node.id],
        `Decision ${quote(node.id)} has an invalid condition ${JSON.stringify(node.condition)}: ${error.message}. ` +
          conditionHelp
      )
    ],
    onRight: (ast) => [
      ...(usesResult(ast) && node.depends_on.length === 0 ?
        [
          graphError(
            "invalid_condition",
            [node.id],
            `Decision ${quote(node.id)} checks result, the result of its first dependency, but it depends on no ` +
              `node; add the node whose result it checks to its depends_on.`
          )
        ] :
        []),
      ...referenceErrors(node, "condition", referencedNodes(ast), nodes)
    ]
  })
}

const branchErrors = (node: DecisionNode, nodes: ReadonlyMap<string, Node>): ReadonlyArray<GraphError> => {
  if (node.if_true === node.if_false) {
    const problem = `has if_true and if_false both set to ${quote(node.if_true)}; point them at two different nodes`
    return [invalidField(node, problem)]
  }
  const branches = [["if_true", node.if_true, "true"], ["if_false", node.if_false, "false"]] as const
  return branches.flatMap(([field, target, outcome]) => {
    const branch = nodes.get(target)
    if (branch === undefined) {
      return [
        graphError(
          "unknown_branch_target",
          [node.id, target],
          `Decision ${quote(node.id)} has ${field} ${quote(target)}, but no node has that id; set ${field} to the id ` +
            `of the node to run when the condition is ${outcome}.`
        )
      ]
    }
    return branch.depends_on.includes(node.id) ? [] : [
      graphError(
        "branch_not_dependent",
        [node.id, target],
        `Decision ${quote(node.id)} has ${field} ${quote(target)}, but ${quote(target)} does not depend on ` +
          `${quote(node.id)}; add ${quote(node.id)} to depends_on of ${quote(target)} so it waits for the decision.`
      )
    ]
  })
}

const kindErrors = (node: Node, nodes: ReadonlyMap<string, Node>): ReadonlyArray<GraphError> => {
  switch (node.action) {
    case "skill":
      if (isBlank(node.skill_name)) {
        return [invalidField(node, "has an empty skill_name; set it to the name of one of the available skills")]
      }
      return [
        ...(skillNamePattern.test(node.skill_name) ? [] : [
          invalidField(
            node,
            `has skill_name ${quote(node.skill_name)}, which is not a skill name; skill names are lowercase letters, ` +
              `digits and "_", e.g. "read_file"`
          )
        ]),
        ...referenceErrors(node, "skill_args", valueReferences(node.skill_args), nodes)
      ]
    case "llm_call":
      return [
        ...(isBlank(node.prompt_template) ?
          [invalidField(node, "has an empty prompt_template; write the prompt to send to the model")] :
          referenceErrors(node, "prompt_template", templateReferences(node.prompt_template), nodes)),
        ...(node.output_schema === undefined ? [] : unsupportedJsonSchema(node.output_schema, "output_schema").map((problem) =>
          invalidField(node, `has an output_schema the model server cannot enforce: ${problem}`)
        ))
      ]
    case "decision":
      return [...branchErrors(node, nodes), ...conditionErrors(node, nodes)]
  }
}

/** The nodes on cycles, one list per strongly connected component, in declaration order. */
const cycleComponents = (nodes: ReadonlyMap<string, Node>): ReadonlyArray<ReadonlyArray<string>> => {
  const ids = Array.from(nodes.keys())
  const digraph = Digraph.directed<string, void>((mutable) => {
    const index = new Map(ids.map((id) => [id, Digraph.addNode(mutable, id)]))
    for (const [id, node] of nodes) {
      for (const dep of node.depends_on) {
        const from = index.get(dep)
        const to = index.get(id)
        // Self-dependencies get their own, clearer error.
        if (from !== undefined && to !== undefined && dep !== id) Digraph.addEdge(mutable, from, to, undefined)
      }
    }
  })
  const declared = new Map(ids.map((id, i) => [id, i]))
  const byDeclaration = (a: string, b: string) => (declared.get(a) ?? 0) - (declared.get(b) ?? 0)
  return Digraph.stronglyConnectedComponents(digraph)
    .map((component) => Arr.filterMap(component, (index) => Digraph.getNode(digraph, index)).sort(byDeclaration))
    .filter((component) => component.length > 1)
    .sort((a, b) => byDeclaration(a[0], b[0]))
}

/** Every cycle, not just the first: one error per group of nodes that wait on each other. */
const cycleErrors = (graph: Graph, nodes: ReadonlyMap<string, Node>): ReadonlyArray<GraphError> =>
  Either.isRight(topologicalSort(graph)) ? [] : cycleComponents(nodes).map((members) => {
    const inComponent = new Set(members)
    const next = (id: string) => nodes.get(id)?.depends_on.find((dep) => dep !== id && inComponent.has(dep))
    return cycleError(members, walkToCycle(members[0], next))
  })

/**
 * A node below both branches of a decision can never run: one branch is always skipped, and
 * skipping spreads downstream. Reports the first such node on each path, not everything below.
 */
const branchJoinErrors = (graph: Graph, nodes: ReadonlyMap<string, Node>): ReadonlyArray<GraphError> => {
  const decisions = graph.nodes.filter((node): node is DecisionNode => node.action === "decision")
  if (decisions.length === 0) return []
  const dependants = dependantsIndex(graph.nodes)
  const below = (id: string) => new Set([id, ...descendants(dependants, id)])
  return decisions.filter((decision) => decision.if_true !== decision.if_false).flatMap((decision) => {
    const whenFalse = below(decision.if_false)
    const both = new Set(Array.from(below(decision.if_true)).filter((id) => whenFalse.has(id)))
    const joins = Array.from(both).filter((id) => !nodes.get(id)?.depends_on.some((dep) => both.has(dep)))
    return joins.map((id) =>
      graphError(
        "branch_join",
        [id, decision.id],
        `Node ${quote(id)} comes after both branches of decision ${quote(decision.id)} (if_true ` +
          `${quote(decision.if_true)} and if_false ${quote(decision.if_false)}); one branch is always skipped, and ` +
          `everything after it too, so ${quote(id)} would never run. Make it depend on one branch only, or on ` +
          `${quote(decision.id)} itself.`
      )
    )
  })
}

/** Every problem in the graph, node by node, then cycles and branch joins; empty when valid. */
export const validate = (graph: Graph): ReadonlyArray<GraphError> => {
  const nodes = byId(graph.nodes)
  return [
    ...duplicateIdErrors(graph.nodes),
    ...graph.nodes.flatMap((node) => [...idErrors(node), ...dependencyErrors(node, nodes), ...kindErrors(node, nodes)]),
    ...cycleErrors(graph, nodes),
    ...branchJoinErrors(graph, nodes)
  ]
}

// ---------------------------------------------------------------------------------------------
// Decoding

const decodePlanJson = Schema.decodeEither(fromJsonText(PlanGraph), { errors: "all" })
const decodePlanValue = Schema.decodeUnknownEither(PlanGraph, { errors: "all" })

const decodeErrors = (error: ParseResult.ParseError): ReadonlyArray<GraphError> =>
  parseIssues(error).map((issue) =>
    graphError("decode", [], issue.path === "" ? `The plan is not valid: ${issue.message}` : formatIssue(issue))
  )

const validated = (
  decoded: Either.Either<typeof PlanGraph.Type, ParseResult.ParseError>,
  metadata: GraphMetadata
): Either.Either<Graph, ReadonlyArray<GraphError>> =>
  Either.flatMap(Either.mapLeft(decoded, decodeErrors), (plan) => {
    const graph: Graph = { nodes: plan.nodes, metadata }
    const errors = validate(graph)
    return errors.length === 0 ? Either.right(graph) : Either.left(errors)
  })

/**
 * Decodes a plan written by a model (see `PlanGraph`) and validates it. Every decode error comes
 * with its path (`nodes[2].skill_name`) and every validation error names its node, so the whole
 * list can be fed back to the model.
 */
export const fromJson = (text: string, metadata: GraphMetadata): Either.Either<Graph, ReadonlyArray<GraphError>> =>
  validated(decodePlanJson(text), metadata)

/** `fromJson` for a value already parsed (the agent extracts JSON leniently from the answer first). */
export const fromUnknown = (value: unknown, metadata: GraphMetadata): Either.Either<Graph, ReadonlyArray<GraphError>> =>
  validated(decodePlanValue(value), metadata)
