import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck, Option, Schema } from "effect"
import {
  defaultMaxRetries,
  fromJson,
  Graph,
  type GraphError,
  isComplete,
  markDownstreamSkipped,
  type Node,
  type NodeStatus,
  readyNodes,
  reopenFailed,
  resultLookup,
  topologicalSort,
  validate
} from "../../src/core/graph.ts"
import { bookkeeping, decision, graphOf, llm, metadata, skill } from "./graphFixtures.ts"

const withStatus = (node: Node, status: NodeStatus, result?: unknown): Node => ({ ...node, status, result })
const ids = (nodes: ReadonlyArray<Node>) => nodes.map((node) => node.id)
const summary = (errors: ReadonlyArray<GraphError>) => errors.map(({ kind, nodes }) => ({ kind, nodes }))

/** A random DAG: node `n{rank}` depends only on lower ranks; declared in a random order. */
const dag = FastCheck.integer({ min: 1, max: 30 }).chain((size) =>
  FastCheck.tuple(
    FastCheck.array(FastCheck.array(FastCheck.nat(), { maxLength: 4 }), { minLength: size, maxLength: size }),
    FastCheck.shuffledSubarray(Array.from({ length: size }, (_, rank) => rank), { minLength: size, maxLength: size })
  ).map(([picks, order]) =>
    graphOf(...order.map((rank) =>
      skill(`n${rank}`, rank === 0 ? [] : Array.from(new Set(picks[rank].map((pick) => `n${pick % rank}`))))
    ))
  )
)

describe("topologicalSort", () => {
  it.prop("puts every node after all of its dependencies", [dag], ([graph]) => {
    const sorted = Either.getOrThrow(topologicalSort(graph))
    const position = new Map(sorted.map((node, i) => [node.id, i]))
    expect([...ids(sorted)].sort()).toEqual([...ids(graph.nodes)].sort())
    for (const node of sorted) {
      for (const dep of node.depends_on) expect(position.get(dep)).toBeLessThan(position.get(node.id) ?? -1)
    }
  })

  it.prop("returns a plan that is already in order unchanged", [dag], ([graph]) => {
    const inOrder = graphOf(...Either.getOrThrow(topologicalSort(graph)))
    expect(ids(Either.getOrThrow(topologicalSort(inOrder)))).toEqual(ids(inOrder.nodes))
  })

  it("takes the earliest declared of the nodes that are ready together", () => {
    const graph = graphOf(skill("x", ["a"]), skill("a"), skill("y"))
    expect(ids(Either.getOrThrow(topologicalSort(graph)))).toEqual(["a", "x", "y"])
  })

  it("fails with the nodes of a cycle, each depending on the next", () => {
    const graph = graphOf(
      skill("start"),
      skill("a", ["c", "start"]),
      skill("b", ["a"]),
      skill("c", ["b"]),
      skill("after", ["c"])
    )
    const error = Either.getLeft(topologicalSort(graph)).pipe(Option.getOrThrow)
    expect(error.kind).toBe("cycle")
    expect(error.nodes).toEqual(["a", "c", "b"])
    expect(error.message).toBe(
      `Nodes "a", "c", "b" depend on each other in a cycle ("a" depends on "c", "c" depends on "b", ` +
        `"b" depends on "a"), so none of them can ever start. Remove one of these dependencies.`
    )
  })
})

describe("validate", () => {
  it.prop("accepts every well-formed DAG", [dag], ([graph]) => {
    expect(validate(graph)).toEqual([])
  })

  it.prop(
    "finds every injected cycle, naming exactly the nodes on it",
    [dag, FastCheck.array(FastCheck.integer({ min: 2, max: 4 }), { minLength: 1, maxLength: 3 })],
    ([graph, cycleLengths]) => {
      const cycles = cycleLengths.map((length, c) => Array.from({ length }, (_, i) => `c${c}_${i}`))
      const entry = graph.nodes[0].id
      const cycleNodes = cycles.flatMap((cycle) =>
        cycle.map((id, i) => skill(id, i === 0 ? [cycle[cycle.length - 1], entry] : [cycle[i - 1]]))
      )
      const downstream = cycles.map((cycle, c) => skill(`after_c${c}`, [cycle[0]]))
      const errors = validate(graphOf(...graph.nodes, ...cycleNodes, ...downstream))
      expect(summary(errors)).toEqual(cycles.map((cycle) => ({ kind: "cycle", nodes: cycle })))
    }
  )

  it.prop(
    "finds every dependency on a node that does not exist",
    [dag, FastCheck.array(FastCheck.nat(), { minLength: 1, maxLength: 5 })],
    ([graph, targets]) => {
      const dangling = new Map(targets.map((target, k) => [graph.nodes[target % graph.nodes.length].id, `missing_${k}`]))
      const missingOf = (node: Node) => Option.toArray(Option.fromNullable(dangling.get(node.id)))
      const nodes = graph.nodes.map((node) => ({ ...node, depends_on: [...node.depends_on, ...missingOf(node)] }))
      const expected = nodes.flatMap((node) =>
        missingOf(node).map((missing) => ({ kind: "unknown_dependency", nodes: [node.id, missing] }))
      )
      expect(summary(validate(graphOf(...nodes)))).toEqual(expected)
    }
  )

  it("reports every problem, not just the first", () => {
    const errors = validate(graphOf(skill("a", ["a"]), skill("a"), skill("b", ["ghost"]), llm("c", [], "")))
    expect(errors.map((error) => error.kind)).toEqual([
      "duplicate_id",
      "self_dependency",
      "unknown_dependency",
      "invalid_field"
    ])
  })

  const cases: ReadonlyArray<readonly [string, ReadonlyArray<Node>, ReadonlyArray<string>, string]> = [
    [
      "duplicate_id",
      [skill("fetch"), skill("fetch")],
      ["fetch"],
      `Node id "fetch" is used by 2 nodes; give each node its own id and update the depends_on lists that refer to it.`
    ],
    [
      "invalid_id",
      [skill("my node")],
      ["my node"],
      `Node id "my node" may only contain letters, digits, "_" and "-", because templates and conditions refer to it ` +
        `as {id}; rename it, e.g. to "my_node".`
    ],
    [
      "invalid_id",
      [skill(" ")],
      [" "],
      `A skill node has an empty id; give every node a short unique id such as "fetch_data".`
    ],
    [
      "self_dependency",
      [skill("loop", ["loop"])],
      ["loop"],
      `Node "loop" lists itself in depends_on; remove "loop" from its depends_on.`
    ],
    [
      "unknown_dependency",
      [skill("b", ["a"])],
      ["b", "a"],
      `Node "b" depends on "a", but no node has that id; remove it from depends_on of "b" or add a node with id "a".`
    ],
    [
      "invalid_field",
      [skill("read", [], "")],
      ["read"],
      `Node "read" has an empty skill_name; set it to the name of one of the available skills.`
    ],
    [
      "invalid_field",
      [skill("read", [], "../read file")],
      ["read"],
      `Node "read" has skill_name "../read file", which is not a skill name; skill names are lowercase letters, ` +
        `digits and "_", e.g. "read_file".`
    ],
    [
      "invalid_field",
      [llm("ask", [], "  ")],
      ["ask"],
      `Node "ask" has an empty prompt_template; write the prompt to send to the model.`
    ],
    [
      "invalid_field",
      [skill("a"), decision("d", ["a"], "", "t", "f"), skill("t", ["d"]), skill("f", ["d"])],
      ["d"],
      `Node "d" has an empty condition; write one such as: length > 0.`
    ],
    [
      "invalid_field",
      [skill("a"), decision("d", ["a"], "length > 0", "t", "t"), skill("t", ["d"])],
      ["d"],
      `Node "d" has if_true and if_false both set to "t"; point them at two different nodes.`
    ],
    [
      "unknown_branch_target",
      [skill("a"), decision("d", ["a"], "length > 0", "t", "nowhere"), skill("t", ["d"])],
      ["d", "nowhere"],
      `Decision "d" has if_false "nowhere", but no node has that id; set if_false to the id of the node to run when ` +
        `the condition is false.`
    ],
    [
      "branch_not_dependent",
      [skill("a"), decision("d", ["a"], "length > 0", "t", "f"), skill("t", ["a"]), skill("f", ["d"])],
      ["d", "t"],
      `Decision "d" has if_true "t", but "t" does not depend on "d"; add "d" to depends_on of "t" so it waits for ` +
        `the decision.`
    ],
    [
      "branch_join",
      [
        skill("a"),
        decision("d", ["a"], "length > 0", "t", "f"),
        skill("t", ["d"]),
        skill("f", ["d"]),
        skill("join", ["t", "f"]),
        skill("after", ["join"])
      ],
      ["join", "d"],
      `Node "join" comes after both branches of decision "d" (if_true "t" and if_false "f"); one branch is always ` +
        `skipped, and everything after it too, so "join" would never run. Make it depend on one branch only, or on ` +
        `"d" itself.`
    ],
    [
      "cycle",
      [skill("a", ["b"]), skill("b", ["a"])],
      ["a", "b"],
      `Nodes "a", "b" depend on each other in a cycle ("a" depends on "b", "b" depends on "a"), so none of them can ` +
        `ever start. Remove one of these dependencies.`
    ],
    [
      "invalid_condition",
      [skill("a"), decision("d", ["a"], "length >> 3", "t", "f"), skill("t", ["d"]), skill("f", ["d"])],
      ["d"],
      `Decision "d" has an invalid condition "length >> 3": expected a value, found ">" at position 8. ` +
        `Conditions compare result, length, length({node_id}), {node_id}, numbers, "text", true, false and null ` +
        `with == != < <= > >= contains starts_with ends_with, joined by and, or, not and parentheses.`
    ],
    [
      "invalid_condition",
      [decision("d", [], "length > 3", "t", "f"), skill("t", ["d"]), skill("f", ["d"])],
      ["d"],
      `Decision "d" checks result, the result of its first dependency, but it depends on no node; add the node whose ` +
        `result it checks to its depends_on.`
    ],
    [
      "invalid_reference",
      [skill("a"), skill("b"), llm("sum", ["a"], "Summarise {a} and {b}")],
      ["sum", "b"],
      `Node "sum" refers to {b} in its prompt_template, but "sum" does not depend on "b" (directly or through other ` +
        `nodes), so that result may not exist yet; add "b" to depends_on of "sum".`
    ],
    [
      "invalid_reference",
      [llm("sum", [], "Summarise {notes}")],
      ["sum", "notes"],
      `Node "sum" refers to {notes} in its prompt_template, but no node has id "notes"; use the id of a node it ` +
        `depends on, or write {{notes} for a literal brace.`
    ],
    [
      "invalid_reference",
      [llm("sum", [], "Improve {sum}")],
      ["sum", "sum"],
      `Node "sum" refers to {sum} in its prompt_template, its own result; a node can only use the results of nodes ` +
        `it depends on.`
    ],
    [
      "invalid_reference",
      [skill("a"), skill("late"), decision("d", ["a"], "{late} == 1", "t", "f"), skill("t", ["d"]), skill("f", ["d"])],
      ["d", "late"],
      `Node "d" refers to {late} in its condition, but "d" does not depend on "late" (directly or through other ` +
        `nodes), so that result may not exist yet; add "late" to depends_on of "d".`
    ]
  ]

  it.each(cases)("reports %s: %j", (kind, nodes, about, message) => {
    expect(validate(graphOf(...nodes))).toEqual([
      expect.objectContaining({ _tag: "GraphError", kind, nodes: about, message })
    ])
  })

  it("accepts references to ancestors further up, and nodes that follow one branch only", () => {
    const graph = graphOf(
      skill("fetch"),
      llm("draft", ["fetch"], "Draft from {fetch}"),
      decision("long", ["draft"], "length > 100 and {fetch} != null", "shorten", "publish"),
      llm("shorten", ["long"], "Shorten {draft}, keeping {fetch}"),
      skill("publish", ["long"], "write_file"),
      skill("publish_short", ["shorten"], "write_file")
    )
    expect(validate(graph)).toEqual([])
  })
})

describe("readyNodes", () => {
  const statuses = FastCheck.constantFrom<NodeStatus>("pending", "running", "complete", "failed", "skipped")
  const withStatuses = dag.chain((graph) =>
    FastCheck.array(statuses, { minLength: graph.nodes.length, maxLength: graph.nodes.length }).map((picked) =>
      graphOf(...graph.nodes.map((node, i) => withStatus(node, picked[i])))
    )
  )

  it.prop("returns exactly the pending nodes whose dependencies are all complete", [withStatuses], ([graph]) => {
    const status = new Map(graph.nodes.map((node) => [node.id, node.status]))
    const expected = graph.nodes.filter((node) =>
      node.status === "pending" && node.depends_on.every((dep) => status.get(dep) === "complete")
    )
    const ready = readyNodes(graph)
    expect(ids(ready)).toEqual(ids(expected))
    for (const node of ready) expect(node.depends_on.every((dep) => status.get(dep) === "complete")).toBe(true)
  })

  it("does not return a node waiting on a skipped branch", () => {
    const graph = graphOf(withStatus(skill("a"), "complete"), withStatus(skill("b"), "skipped"), skill("c", ["a", "b"]))
    expect(readyNodes(graph)).toEqual([])
  })
})

describe("markDownstreamSkipped and isComplete", () => {
  const graph = graphOf(
    withStatus(skill("a"), "failed"),
    skill("b", ["a"]),
    skill("c", ["b"]),
    skill("d", ["c", "x"]),
    skill("x"),
    withStatus(skill("done", ["x"]), "complete")
  )

  it("skips everything below the node, transitively, and nothing else", () => {
    const frozen = Object.freeze({ ...graph, nodes: Object.freeze(graph.nodes.map((node) => Object.freeze(node))) })
    const after = markDownstreamSkipped(frozen, "a")
    expect(after.nodes.map((node) => [node.id, node.status])).toEqual([
      ["a", "failed"],
      ["b", "skipped"],
      ["c", "skipped"],
      ["d", "skipped"],
      ["x", "pending"],
      ["done", "complete"]
    ])
    expect(graph.nodes[1].status).toBe("pending")
  })

  it("counts a graph as complete once every node is complete or skipped", () => {
    expect(isComplete(graph)).toBe(false)
    expect(isComplete(graphOf(withStatus(skill("a"), "complete"), withStatus(skill("b", ["a"]), "skipped")))).toBe(true)
    expect(isComplete(graphOf(withStatus(skill("a"), "failed")))).toBe(false)
  })
})

describe("resultLookup", () => {
  it("gives the results of complete nodes only", () => {
    const lookup = resultLookup(
      graphOf(withStatus(skill("a"), "complete", "A"), withStatus(skill("b"), "failed", "B"), skill("c"))
    )
    expect(["a", "b", "c", "zzz"].map(lookup)).toEqual([Option.some("A"), Option.none(), Option.none(), Option.none()])
  })
})

describe("fromJson", () => {
  const errorsOf = (text: string) => Either.getLeft(fromJson(text, metadata)).pipe(Option.getOrThrow)

  it("accepts a plan as a model writes it: numeric ids, no bookkeeping fields", () => {
    const plan = JSON.stringify({
      nodes: [
        { id: 1, action: "skill", skill_name: "read_file", skill_args: { path: "notes.md" } },
        { id: 2, action: "llm_call", prompt_template: "Summarise {1}", depends_on: [1], model: "qwen" },
        { id: "check", action: "decision", condition: "length > 0", depends_on: [2], if_true: 3, if_false: 4 },
        { id: 3, action: "skill", skill_name: "write_file", depends_on: ["check"], max_retries: 0 },
        { id: 4, action: "skill", skill_name: "write_file", depends_on: ["check"], status: "skipped" }
      ]
    })
    const graph = Either.getOrThrow(fromJson(plan, metadata))
    expect(graph.metadata).toEqual(metadata)
    expect(graph.nodes[0]).toEqual({
      id: "1",
      action: "skill",
      skill_name: "read_file",
      skill_args: { path: "notes.md" },
      depends_on: [],
      status: "pending",
      retries: 0,
      max_retries: defaultMaxRetries
    })
    expect(graph.nodes.map((node) => [node.id, node.depends_on, node.status, node.max_retries])).toEqual([
      ["1", [], "pending", 2],
      ["2", ["1"], "pending", 2],
      ["check", ["2"], "pending", 2],
      ["3", ["check"], "pending", 0],
      ["4", ["check"], "skipped", 2]
    ])
    expect(graph.nodes[2]).toMatchObject({ if_true: "3", if_false: "4" })
    expect(Schema.decodeUnknownSync(Graph)(Schema.encodeSync(Graph)(graph))).toEqual(graph)
  })

  it("reports every decode error with its path", () => {
    const plan = JSON.stringify({
      nodes: [
        { id: "a", action: "skil" },
        { id: "b", action: "llm_call", depends_on: "a" },
        { id: "c", action: "decision", condition: "true", if_true: null, if_false: "b", status: "done" },
        5
      ]
    })
    expect(errorsOf(plan).map(({ kind, message }) => `${kind}: ${message}`)).toEqual([
        `decode: nodes[0].action: Expected "skill" | "llm_call" | "decision", actual "skil"`,
        `decode: nodes[1].depends_on: Expected a list of node ids, e.g. ["fetch"]`,
        `decode: nodes[1].prompt_template: is missing`,
        `decode: nodes[2].status: Expected "pending", "running", "complete", "failed" or "skipped"`,
        `decode: nodes[2].if_true: Expected a node id (a string)`,
        `decode: nodes[3]: Expected a node: an object with an "id" and an "action" ("skill", "llm_call" or ` +
        `"decision")`
    ])
  })

  it("reports text that is not JSON, or JSON that is not a plan", () => {
    const messages = (text: string) => errorsOf(text).map((error) => error.message)
    expect(messages(`{"nodes": [`)[0]).toMatch(/^The plan is not valid: .*JSON/)
    expect(messages(`[]`)).toEqual([`The plan is not valid: Expected an object like {"nodes": [...]}`])
  })

  it("validates what it decoded and returns all the problems", () => {
    const plan = JSON.stringify({
      nodes: [
        { id: "a", action: "skill", skill_name: "read_file", depends_on: ["b"] },
        { id: "b", action: "llm_call", prompt_template: "{a}", depends_on: ["a"] }
      ]
    })
    expect(errorsOf(plan).map((error) => error.kind)).toEqual(["cycle"])
  })
})

describe("skill_args references", () => {
  const skillWithArgs = (id: string, depends_on: ReadonlyArray<string>, skill_args: Record<string, unknown>): Node => ({
    id,
    action: "skill",
    skill_name: "write_file",
    skill_args,
    depends_on,
    ...bookkeeping
  })

  it("accepts {id} references in skill_args to nodes the skill depends on", () => {
    const write = skillWithArgs("write", ["read"], { path: "/o.txt", content: "{read}", meta: ["{read} rows"] })
    expect(validate(graphOf(skill("read"), write))).toEqual([])
  })

  it("rejects a reference in skill_args to a node the skill does not depend on, naming the field", () => {
    const other = skill("other")
    const write = skillWithArgs("write", ["read"], { nested: { content: "{other}" } })
    const errors = validate(graphOf(skill("read"), other, write))
    expect(summary(errors)).toEqual([{ kind: "invalid_reference", nodes: ["write", "other"] }])
    expect(errors[0]?.message).toContain(`Node "write" refers to {other} in its skill_args, but "write" does not depend on "other"`)
  })

  it("keeps a missing skill's description through decoding", () => {
    const decoded = fromJson(
      JSON.stringify({ nodes: [{ id: 1, action: "skill", skill_name: "csv_sum", description: "sum a column" }] }),
      metadata
    )
    expect(Either.getOrThrow(decoded).nodes[0]).toMatchObject({ id: "1", skill_name: "csv_sum", description: "sum a column", skill_args: {} })
  })
})

describe("reopenFailed (retrying a failed task's graph)", () => {
  const failedNode = (node: Node, error: string): Node => ({ ...node, status: "failed", retries: 2, error })

  it("puts the failed nodes and those skipped because of them back to pending with no retries; complete nodes keep their results", () => {
    const graph = graphOf(
      withStatus(skill("a"), "complete", 1),
      failedNode(skill("b", ["a"]), "no such file"),
      withStatus(skill("c", ["b"]), "skipped"),
      withStatus(llm("d", ["c"], "x"), "skipped"),
      withStatus(skill("e"), "complete", 5)
    )
    const { graph: reopened, reopened: ids } = reopenFailed(graph)
    expect(ids).toEqual(["b"])
    expect(reopened.nodes.map((node) => [node.id, node.status, node.retries, node.result, node.error])).toEqual([
      ["a", "complete", 0, 1, undefined],
      ["b", "pending", 0, undefined, undefined],
      ["c", "pending", 0, undefined, undefined],
      ["d", "pending", 0, undefined, undefined],
      ["e", "complete", 0, 5, undefined]
    ])
    expect(ids.every((id) => reopened.nodes.find((node) => node.id === id)?.error === undefined)).toBe(true)
  })

  it("leaves skipped the branch a complete decision did not take, even below a failed node", () => {
    // d decided true (go to t, not f); f also waits for the failed b: it must stay skipped.
    const graph = graphOf(
      withStatus(skill("a"), "complete", 3),
      withStatus(decision("d", ["a"], "result > 1", "t", "f"), "complete", true),
      withStatus(skill("t", ["d"]), "complete", "T"),
      withStatus(skill("f", ["d", "b"]), "skipped"),
      failedNode(skill("b"), "boom"),
      withStatus(skill("after_b", ["b"]), "skipped"),
      withStatus(skill("after_f", ["f", "b"]), "skipped")
    )
    const reopened = reopenFailed(graph).graph
    expect(Object.fromEntries(reopened.nodes.map((node) => [node.id, node.status]))).toEqual({
      a: "complete",
      d: "complete",
      t: "complete",
      f: "skipped",
      b: "pending",
      after_b: "pending",
      after_f: "skipped"
    })
  })

  it("changes nothing in a graph without failed nodes", () => {
    const graph = graphOf(withStatus(skill("a"), "complete", 1), withStatus(skill("b", ["a"]), "pending"))
    expect(reopenFailed(graph)).toEqual({ graph, reopened: [] })
  })
})
