/**
 * The `ExecuteGraph` command: runs the plan with the pure executor. Skill nodes go to the
 * sandboxed runner, llm_call nodes to the model with `{id}` interpolation; a model's answer is
 * stored as data and never obeyed. Every node change is audited and offered to a write-behind
 * saver (one fsync covers the changes that arrive while it runs), so a killed process resumes
 * without re-running the nodes whose completion was saved.
 */
import { Clock, Effect } from "effect"
import type { Json } from "../core/config.ts"
import { executeGraph } from "../core/executor.ts"
import { jsonDepth, MAX_JSON_DEPTH } from "../core/jsonText.ts"
import { type ActionNode, dependantsIndex, type Graph, type Node, resultLookup } from "../core/graph.ts"
import { nodeSystemPrompt } from "../core/prompts.ts"
import type { Task } from "../core/task.ts"
import { Event, type FailedNode } from "../core/taskMachine.ts"
import { interpolate, interpolateValue } from "../core/template.ts"
import { Audit } from "../layers/Audit.ts"
import { AppConfig } from "../layers/Config.ts"
import { ResultNotJson } from "../layers/Sandbox.ts"
import { SkillRunner } from "../layers/SkillRunner.ts"
import { State } from "../layers/State.ts"
import { askModel } from "./llmCall.ts"
import { makeWriteBehind } from "./writeBehind.ts"
import type { ProgressListener } from "./progress.ts"

/** The results of the nodes nothing depends on: what the task produced. */
export const sinkResults = (graph: Graph): Record<string, unknown> => {
  const dependants = dependantsIndex(graph.nodes)
  return Object.fromEntries(
    graph.nodes
      .filter((node) => node.status === "complete" && (dependants.get(node.id)?.length ?? 0) === 0)
      .map((node) => [node.id, node.result])
  )
}

/** A JSON-compatible copy of interpolated arguments (results are JSON already; this proves it). */
const asJson = (value: unknown): Json => JSON.parse(JSON.stringify(value ?? null))

const runNode = (task: Task, progress: ProgressListener) => (node: ActionNode, graph: Graph) =>
  Effect.gen(function*() {
    const results = resultLookup(graph)
    yield* progress({ _tag: "Node", id: node.id, action: node.action, status: "running" })
    if (node.action === "skill") {
      const runner = yield* SkillRunner
      const app = yield* AppConfig
      const args = asJson(interpolateValue(node.skill_args, results))
      const run = yield* runner.execute(node.skill_name, args, { grantExec: app.approvalTier("skill_exec") === "auto" })
      // The result is saved with the task, and a saved task is read back through the depth check.
      if (jsonDepth(run.result) > MAX_JSON_DEPTH) {
        return yield* new ResultNotJson({ skill: node.skill_name, reason: `it nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels` })
      }
      return run.result
    }
    const completion = yield* askModel({
      purpose: "node",
      nodeId: node.id,
      model: node.model ?? task.model ?? "default",
      system: nodeSystemPrompt(),
      user: interpolate(node.prompt_template, results)
    }, progress)
    return completion.content
  })

/** Announces a node's new status when it changed between two snapshots. */
const statusChanges = (before: Graph, after: Graph): ReadonlyArray<Node> => {
  const previous = new Map(before.nodes.map((node) => [node.id, node.status]))
  return after.nodes.filter((node) => previous.get(node.id) !== node.status)
}

export const execute = (task: Task, graph: Graph, progress: ProgressListener) =>
  Effect.scoped(Effect.gen(function*() {
    const state = yield* State
    const audit = yield* Audit
    const app = yield* AppConfig
    const persist = yield* makeWriteBehind((next: Graph) =>
      Effect.flatMap(Clock.currentTimeMillis, (ms) => state.save({ ...task, graph: next, updated_at: new Date(ms).toISOString() }))
    )
    // The executor calls onUpdate one change at a time, in order, so `last` is never raced.
    let last = graph
    const onUpdate = (next: Graph) =>
      Effect.gen(function*() {
        for (const node of statusChanges(last, next)) {
          if (node.status === "running") continue
          yield* audit.log(`node.${node.status}`, {
            node: node.id,
            action: node.action,
            retries: node.retries,
            ...(node.error === undefined ? {} : { error: node.error })
          })
          yield* progress({ _tag: "Node", id: node.id, action: node.action, status: node.status, ...(node.error === undefined ? {} : { error: node.error }) })
        }
        last = next
        yield* persist.offer(next)
      })
    const finished = yield* executeGraph(graph, {
      runNode: runNode(task, progress),
      maxParallel: app.config.limits.max_parallel_nodes,
      onUpdate
    })
    yield* persist.flush
    const failed: ReadonlyArray<FailedNode> = finished.nodes
      .filter((node) => node.status === "failed")
      .map((node) => ({ id: node.id, error: node.error ?? "failed" }))
    return Event.GraphFinished({ graph: finished, failed, result: sinkResults(finished) })
  }))
