/**
 * The `EnsureModel` and `Plan` commands: pick the model, ask it for a task graph with the
 * skills there are, and turn its answer into `Planned` or `PlanRejected`.
 */
import { Clock, Effect } from "effect"
import { parsePlan, planJsonSchema } from "../core/plan.ts"
import { agentSystemPrompt, planningUserPrompt, type SkillSummary } from "../core/prompts.ts"
import type { Task } from "../core/task.ts"
import { Event } from "../core/taskMachine.ts"
import { Audit } from "../layers/Audit.ts"
import { AppConfig } from "../layers/Config.ts"
import { Llm } from "../layers/Llm.ts"
import { Luallm } from "../layers/Luallm.ts"
import { Skills } from "../layers/Skills.ts"
import { askModel } from "./llmCall.ts"
import type { ProgressListener } from "./progress.ts"

/**
 * The skills in the library: a promoted skill wins over a shipped one of the same name. Listed
 * in reverse search order (shipped first, then promoted), so a skill promoted mid-task joins the
 * end of the catalogue and the prompt prefix before it stays the same (the server's cache keeps it).
 */
export const librarySkills = Effect.gen(function*() {
  const skills = yield* Skills
  const byName = new Map<string, SkillSummary>()
  // Shipped first; a promoted skill of the same name replaces it where it stands (a Map keeps
  // the first insertion's position), a new one is appended.
  for (const dir of [...skills.trustedDirs].reverse()) {
    for (const entry of yield* skills.list(dir)) {
      if (entry._tag === "Valid") {
        byName.set(entry.meta.name, { name: entry.meta.name, description: entry.meta.description, args: entry.meta.args ?? {} })
      }
    }
  }
  return Array.from(byName.values())
})

/** Whether the policy lets the agent start a model itself (`model_policy.auto_start` and the `model_start` tier). */
export const canStartModels = Effect.map(
  AppConfig,
  (app) => app.config.model_policy.auto_start && app.approvalTier("model_start") === "auto"
)

/**
 * `EnsureModel`: the model the task needs — the one it waits for in `model_wait`, else the
 * planning model. When the policy allows, a model that is not running is started and waited
 * for; otherwise a missing model becomes `ModelMissing` and the task pauses with the command.
 */
export const ensureModel = (task: Task) =>
  Effect.gen(function*() {
    const llm = yield* Llm
    const luallm = yield* Luallm
    const app = yield* AppConfig
    const audit = yield* Audit
    const autoStart = yield* canStartModels
    const policyModel = app.modelPolicy("planning")
    const wanted = task.state === "model_wait" && task.wait_model !== null
      ? Effect.succeed(task.wait_model)
      : llm.resolveModel("planning")
    return yield* wanted.pipe(
      Effect.flatMap((model) =>
        Effect.gen(function*() {
          if (autoStart) {
            const running = yield* luallm.endpoint(model).pipe(
              Effect.as(true),
              Effect.catchTag("ModelNotRunning", () => Effect.succeed(false))
            )
            if (!running) {
              yield* audit.log("model.start", { model })
              yield* luallm.start(model)
              yield* luallm.waitForReady(model, `${app.config.limits.llm_timeout_seconds} seconds`)
            }
          }
          return Event.ModelReady({ model })
        })
      ),
      Effect.catchTags({
        ModelNotRunning: (error) =>
          Effect.succeed(Event.ModelMissing({ model: error.model, startCommand: error.startCommand, autoStart })),
        NoModelAvailable: (error) => {
          const model = policyModel._tag === "Some" ? policyModel.value : "<model>"
          // With no model named anywhere there is nothing to start: always pause and ask.
          return Effect.succeed(
            Event.ModelMissing({ model, startCommand: `${error.binary} start ${model}`, autoStart: autoStart && policyModel._tag === "Some" })
          )
        }
      })
    )
  })

/** Asks for a plan; the answer is data, parsed leniently then strictly. */
export const plan = (task: Task, attempt: number, feedback: string | null, progress: ProgressListener) =>
  Effect.gen(function*() {
    const llm = yield* Llm
    const app = yield* AppConfig
    const audit = yield* Audit
    const skills = yield* librarySkills
    const model = task.model ?? (yield* llm.resolveModel("planning"))
    const running = yield* llm.listModels.pipe(
      Effect.map((listing) => listing.models),
      Effect.orElseSucceed((): ReadonlyArray<string> => [model])
    )
    const completion = yield* askModel({
      purpose: "plan",
      model,
      taskId: task.id,
      prompt: (shrink) => ({
        system: agentSystemPrompt({ skills, catalogue: shrink.catalogue }),
        user: planningUserPrompt({ request: task.prompt, feedback, models: running, shrink })
      }),
      temperature: 0.2,
      output: { name: "plan", schema: planJsonSchema }
    }, progress)
    const createdAt = new Date(yield* Clock.currentTimeMillis).toISOString()
    const parsed = parsePlan(completion.content, {
      knownSkills: new Set(skills.map((skill) => skill.name)),
      skillArgs: new Map(skills.map((skill) => [skill.name, skill.args])),
      maxNodes: app.config.limits.max_plan_nodes,
      metadata: { prompt: task.prompt, created_at: createdAt, model: completion.model }
    })
    if (parsed._tag === "Left") {
      yield* audit.log("plan.invalid", { attempt, errors: parsed.left })
      return Event.PlanRejected({ errors: parsed.left })
    }
    yield* audit.log("plan.accepted", {
      attempt,
      nodes: parsed.right.graph.nodes.length,
      missing: parsed.right.missing.map((skill) => skill.name)
    })
    // Under any tier but auto, a human confirms the plan before anything is drafted or run.
    return Event.Planned({ ...parsed.right, confirm: app.approvalTier("task_confirmation") !== "auto" })
  })
