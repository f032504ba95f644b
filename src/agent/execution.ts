/**
 * The `ExecuteGraph` command: runs the plan with the pure executor. Skill nodes go to the
 * sandboxed runner, llm_call nodes to the model with `{id}` interpolation; a model's answer is
 * stored as data and never obeyed. Every node change is audited and offered to a write-behind
 * saver (one fsync covers the changes that arrive while it runs), so a killed process resumes
 * without re-running the nodes whose completion was saved.
 */
import { Clock, Data, Effect, Either, Option, Ref } from "effect"
import type { Json } from "../core/config.ts"
import { runGraph } from "../core/executor.ts"
import { type ActionNode, dependantsIndex, type Graph, type Node, resultLookup, type SkillNode } from "../core/graph.ts"
import { jsonSchemaProblems } from "../core/jsonSchema.ts"
import { extractJsonValue } from "../core/llmOutput.ts"
import { agentSystemPrompt, excerpt, nodeInputExcerpt, nodeUserPrompt, type SkillSummary } from "../core/prompts.ts"
import { argKind } from "../core/skillMeta.ts"
import type { Task } from "../core/task.ts"
import { Event, type FailedNode } from "../core/taskMachine.ts"
import { interpolate, interpolateArgs, type Results } from "../core/template.ts"
import { Audit } from "../layers/Audit.ts"
import { AppConfig } from "../layers/Config.ts"
import { isModelUnavailable, type LlmHttpError, type LlmTimeout, type LlmUnreachable } from "../layers/Llm.ts"
import { ModelNotRunning } from "../layers/Luallm.ts"
import { maxResultChars, OutputTooLarge } from "../layers/Sandbox.ts"
import { SkillRunner } from "../layers/SkillRunner.ts"
import { Skills, type SkillUnreadable } from "../layers/Skills.ts"
import { State } from "../layers/State.ts"
import { askModel } from "./llmCall.ts"
import { canStartModels, librarySkills } from "./planning.ts"
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

/**
 * A value passed between skills is bounded by the memory a skill runs in, not by what a model
 * could read: a skill may read a large file and hand its rows to the next one.
 */
export class NodeDataTooLarge extends Data.TaggedError("NodeDataTooLarge")<{
  readonly node: string
  readonly skill: string
  /** The node's arguments (going in) or its skill's result (coming out). */
  readonly direction: "arguments" | "result"
  readonly size: number
  readonly limit: number
}> {
  override get message() {
    const what = this.direction === "result"
      ? `Node "${this.node}": skill ${this.skill} returned ${this.size} characters of JSON`
      : `Node "${this.node}" would give skill ${this.skill} ${this.size} characters of JSON as its arguments`
    const memory = Math.round((this.limit * 4) / (1024 * 1024))
    return `${what}, more than the ${this.limit} a value passed between skills may have (a quarter of the ${memory} MB of limits.skill_memory_mb). ` +
      "Let a skill aggregate what it hands on (or write the data to a file and pass its path), or raise limits.skill_memory_mb."
  }
}

/** A skill node's arguments with the results filled in, as JSON checked against the limit. */
const skillArguments = (node: SkillNode, results: Results) =>
  Effect.gen(function*() {
    const skills = yield* Skills
    const app = yield* AppConfig
    const declared = (yield* skills.load(node.skill_name)).meta.args ?? {}
    const takesText = (arg: string) => argKind(declared[arg] ?? "") === "string"
    const text = JSON.stringify(interpolateArgs(node.skill_args, results, takesText))
    const limit = maxResultChars(app.config.limits.skill_memory_mb)
    if (text.length > limit) return yield* new NodeDataTooLarge({ node: node.id, skill: node.skill_name, direction: "arguments", size: text.length, limit })
    // Results are JSON already; the round trip proves it for the sandbox.
    const args: Json = JSON.parse(text)
    return args
  })

/**
 * Runs one node. `skills` is the library for the task-wide system prompt of llm_call nodes: read
 * once per graph run, not per call (a listing reads every skill file; the prompt only needs to
 * stay the same across the task's calls, which a skill promoted mid-run would change anyway).
 */
const runNode = (task: Task, progress: ProgressListener, library: Effect.Effect<ReadonlyArray<SkillSummary>, SkillUnreadable, Skills>) => (node: ActionNode, graph: Graph) =>
  Effect.gen(function*() {
    const results = resultLookup(graph)
    yield* progress({ _tag: "Node", id: node.id, action: node.action, status: "running" })
    if (node.action === "skill") {
      const runner = yield* SkillRunner
      const app = yield* AppConfig
      const args = yield* skillArguments(node, results)
      // exec: granted by the tier, or by a human for this task (asked before the graph ran, see questions.ts).
      const grantExec = app.approvalTier("skill_exec") === "auto" || task.exec_grants.some((grant) => grant.skill === node.skill_name)
      const run = yield* runner.execute(node.skill_name, args, { grantExec }).pipe(
        Effect.catchIf(
          (error): error is OutputTooLarge => error instanceof OutputTooLarge && error.what === "result",
          (error) => new NodeDataTooLarge({ node: node.id, skill: node.skill_name, direction: "result", size: error.size, limit: error.limit })
        )
      )
      // The sandbox refused a result deeper than a saved task is read back with (ResultNotJson).
      return run.result
    }
    const skills = yield* library
    const outputSchema = node.output_schema
    const completion = yield* askModel({
      purpose: "node",
      nodeId: node.id,
      taskId: task.id,
      model: node.model ?? task.model ?? "default",
      prompt: (shrink) => ({
        system: agentSystemPrompt({ skills, catalogue: shrink.catalogue }),
        user: nodeUserPrompt({ id: node.id, prompt: interpolate(node.prompt_template, excerptResults(results, nodeInputExcerpt(shrink))), outputSchema })
      }),
      ...(outputSchema === undefined ? {} : { output: { name: `node_${node.id.replace(/[^A-Za-z0-9_-]/g, "_")}`, schema: outputSchema } })
    }, progress)
    if (outputSchema === undefined) return completion.content
    const value = extractJsonValue(completion.content)
    const problems = Either.isLeft(value) ? [value.left.message] : jsonSchemaProblems(outputSchema, value.right)
    if (problems.length > 0 || Either.isLeft(value)) return yield* new NodeAnswerInvalid({ node: node.id, problems })
    return value.right
  })

/** Each result a prompt quotes, cut to `max` characters around a note. */
const excerptResults = (results: Results, max: number): Results => (id) =>
  Option.map(results(id), (value) => excerpt(typeof value === "string" ? value : (JSON.stringify(value) ?? ""), max))

export class NodeAnswerInvalid extends Data.TaggedError("NodeAnswerInvalid")<{
  readonly node: string
  readonly problems: ReadonlyArray<string>
}> {
  override get message() {
    return `The answer of node "${this.node}" does not match its output_schema: ${this.problems.join("; ")}. The node is retried up to its max_retries; if it keeps failing, use a simpler output_schema, or a server that enforces schemas (llama-server) with llm.constrained "auto" or "on".`
  }
}

/** A node's failure that no retry of the node can help: the model it asked is not there or not answering. */
const modelDown = (error: unknown): error is ModelNotRunning | LlmUnreachable | LlmTimeout | LlmHttpError =>
  error instanceof ModelNotRunning || isModelUnavailable(error)

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
    // The first listing that succeeds serves the rest of the run; a failed one is tried again.
    const listed = yield* Ref.make(Option.none<ReadonlyArray<SkillSummary>>())
    const library = Effect.flatMap(Ref.get(listed), Option.match({
      onSome: Effect.succeed,
      onNone: () => Effect.tap(librarySkills, (skills) => Ref.set(listed, Option.some(skills)))
    }))
    const run = yield* runGraph(graph, {
      runNode: runNode(task, progress, library),
      maxParallel: app.config.limits.max_parallel_nodes,
      onUpdate,
      stopOn: modelDown
    })
    yield* persist.flush
    const finished = run.graph
    // A model that is down stops the run: the task pauses with what completed, and resumes it.
    if (Option.isSome(run.stopped)) {
      const error = run.stopped.value
      return error instanceof ModelNotRunning
        ? Event.ModelMissing({ model: error.model, startCommand: error.startCommand, autoStart: yield* canStartModels, graph: finished })
        : Event.ModelFailed({ model: null, error: error.message, graph: finished })
    }
    const failed: ReadonlyArray<FailedNode> = finished.nodes
      .filter((node) => node.status === "failed")
      .map((node) => ({ id: node.id, error: node.error ?? "failed" }))
    return Event.GraphFinished({ graph: finished, failed, result: sinkResults(finished) })
  }))
