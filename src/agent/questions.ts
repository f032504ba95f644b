/**
 * The questions the agent asks a human through the `Approver` before it acts: whether to run the
 * plan it made (`ConfirmPlan`), and whether a skill that runs host commands may have `exec` for
 * this task (before the graph runs, once per skill). A yes goes on, a no ends the task
 * (`declined`), "not now" pauses it with the command that continues.
 */
import { Effect, Option } from "effect"
import type { Graph } from "../core/graph.ts"
import { type PlanSummary, type SkillFacts, summarizePlan } from "../core/planSummary.ts"
import type { MissingSkill, Task } from "../core/task.ts"
import { Event } from "../core/taskMachine.ts"
import { Answer, Approver, Question } from "../layers/Approver.ts"
import { Audit } from "../layers/Audit.ts"
import { AppConfig } from "../layers/Config.ts"
import { Skills } from "../layers/Skills.ts"

/**
 * What each skill of the graph may touch, from its header and its dependencies' headers. A skill
 * that cannot be read (gone since the plan) has no facts here: its node fails when it runs, with
 * the reason.
 */
const skillFacts = (graph: Graph, drafted: ReadonlySet<string>) =>
  Effect.gen(function*() {
    const skills = yield* Skills
    const names = new Set(graph.nodes.flatMap((node) => (node.action === "skill" && !drafted.has(node.skill_name) ? [node.skill_name] : [])))
    const facts = new Map<string, SkillFacts>()
    for (const name of names) {
      const found = yield* skills.load(name).pipe(
        Effect.flatMap((skill) =>
          Effect.map(skills.resolveDependencies(skill.meta), (dependencies): SkillFacts => ({
            paths: skill.meta.paths,
            exec: [skill, ...dependencies].some((loaded) => loaded.meta.capabilities.includes("exec"))
          }))
        ),
        Effect.option
      )
      if (Option.isSome(found)) facts.set(name, found.value)
    }
    return facts
  })

/** The plan as a human reviews it: nodes, drafts, paths, exec. */
export const summarize = (graph: Graph, missing: ReadonlyArray<MissingSkill>) =>
  Effect.map(skillFacts(graph, new Set(missing.map((skill) => skill.name))), (facts): PlanSummary => summarizePlan(graph, missing, facts))

/** `ConfirmPlan`: asks whether to run the plan; the answer is the event. */
export const confirmPlan = (task: Task, graph: Graph, missing: ReadonlyArray<MissingSkill>) =>
  Effect.gen(function*() {
    const app = yield* AppConfig
    const tier = app.approvalTier("task_confirmation")
    // The tier was lowered to auto while the task waited: nobody needs to be asked any more.
    if (tier === "auto") return Event.PlanConfirmed({ by: "approval_tiers.task_confirmation auto" })
    const approver = yield* Approver
    const plan = yield* summarize(graph, missing)
    const answer = yield* approver.ask(Question.ConfirmPlan({ taskId: task.id, request: task.prompt, plan, tier }))
    return Answer.$match(answer, {
      Yes: ({ by }) => Event.PlanConfirmed({ by }),
      No: ({ reason }) => Event.PlanDeclined({ reason }),
      Later: () => Event.ConfirmationPending({ tier })
    })
  })

/**
 * Before the graph runs: the first skill of a node still to run that needs `exec` and has no
 * grant for this task is asked about; `None` when every such skill has its grant (or the
 * `skill_exec` tier is auto), so the graph may run.
 */
export const askExecGrant = (task: Task, graph: Graph) =>
  Effect.gen(function*() {
    const app = yield* AppConfig
    const tier = app.approvalTier("skill_exec")
    if (tier === "auto") return Option.none<Event>()
    const toRun: Graph = { ...graph, nodes: graph.nodes.filter((node) => node.status === "pending" || node.status === "running") }
    const plan = yield* summarize(toRun, [])
    const granted = new Set(task.exec_grants.map((grant) => grant.skill))
    const skill = plan.exec_skills.find((name) => !granted.has(name))
    if (skill === undefined) return Option.none<Event>()
    const nodes = plan.nodes.filter((node) => node.exec && node.uses === skill)
    const approver = yield* Approver
    const audit = yield* Audit
    const answer = yield* approver.ask(Question.GrantExec({ taskId: task.id, skill, nodes, tier }))
    const commands = nodes.map((node) => `${node.id}: ${node.command ?? "(the skill chooses)"}`)
    return Option.some(
      yield* Answer.$match(answer, {
        Yes: ({ by }) => Effect.as(audit.log("exec.granted", { skill, by, nodes: nodes.map((node) => node.id), commands }), Event.ExecGranted({ skill, by })),
        No: ({ by, reason }) => Effect.as(audit.log("exec.declined", { skill, by, reason }), Event.ExecDeclined({ skill, reason })),
        Later: () => Effect.succeed(Event.ExecPending({ skill, tier, commands }))
      })
    )
  })
