/**
 * The agent's state machine, as pure functions:
 *
 *   pending → planning → (confirmation) → graph_exec → complete | failed
 *                              ↘ skill_draft → skill_test → approval ↗   (a missing skill)
 *                                     ↖ rework ↙ (tests failed)
 *   any state that needs a model ⇄ model_wait   (not running, or not answering: the task pauses)
 *   confirmation, approval, graph_exec (an exec grant): a human's no → declined
 *   failed → graph_exec (its failed nodes again) | planning (failed before its graph ran)   (retry)
 *
 * Where a human must answer (the plan's confirmation, a draft's approval, a skill's exec grant),
 * the `Approver` is asked; "not now" is a `…Pending` event that pauses the task with the exact
 * command that continues it (`pauseFor`).
 *
 * `commandFor(task)` says what the current state asks the world to do; the `Agent` service
 * performs it and reports an `Event`; `transition(task, event)` computes the next task. The
 * service saves and audits after every transition, so a killed process resumes by asking
 * `commandFor` again.
 */
import { Data } from "effect"
import { type Graph, reopenFailed } from "./graph.ts"
import { isTerminal, type MissingSkill, type Pause, resumeCommand, type SkillDraft, type Task, type TaskStateName, type TestedFiles } from "./task.ts"
import type { TestReport } from "./testHarness.ts"

export type Command = Data.TaggedEnum<{
  /** Find (or start, when allowed) the model this task needs. */
  EnsureModel: {}
  /** Ask the model for a task graph; `feedback` holds the last attempt's errors. */
  Plan: { readonly attempt: number; readonly feedback: string | null }
  /** Ask a human to confirm the plan before anything runs or is drafted. */
  ConfirmPlan: { readonly graph: Graph; readonly missing: ReadonlyArray<MissingSkill> }
  /** Write the first version of a missing skill and its tests. */
  DraftSkill: { readonly draft: SkillDraft }
  /** Rewrite a draft that failed, given `draft.feedback`. */
  ReworkSkill: { readonly draft: SkillDraft }
  /** Run the draft's tests in the sandbox. */
  TestSkill: { readonly draft: SkillDraft }
  /** File the approval request for a draft whose tests pass. */
  RequestApproval: { readonly draft: SkillDraft }
  /** Ask a human about the draft (unless one decided already), and promote it on a yes. */
  CheckApproval: { readonly draft: SkillDraft; readonly approvalId: string }
  /** Run (or continue) the graph, once each skill that runs host commands has its exec grant. */
  ExecuteGraph: { readonly graph: Graph }
  /** Nothing left to do: the task is complete or failed. */
  Finished: {}
}>
export const Command = Data.taggedEnum<Command>()

export interface FailedNode {
  readonly id: string
  readonly error: string
}

export type Event = Data.TaggedEnum<{
  ModelReady: { readonly model: string }
  /**
   * `autoStart`: the policy lets the agent start the model itself, so the task does not pause.
   * `graph`: the graph as a run that stopped for the model left it (its finished nodes kept).
   */
  ModelMissing: { readonly model: string; readonly startCommand: string; readonly autoStart: boolean; readonly graph?: Graph }
  /**
   * The model's server did not answer after its retries: nothing listened, it stayed silent, or
   * it kept failing (5xx). `error` says which and how often it was tried; `model` is the one asked,
   * when known; `graph` as for `ModelMissing`. The task pauses; `resume` asks again.
   */
  ModelFailed: { readonly model: string | null; readonly error: string; readonly graph?: Graph }
  /** `confirm`: a human must confirm the plan first (approval_tiers.task_confirmation is not "auto"). */
  Planned: { readonly graph: Graph; readonly missing: ReadonlyArray<MissingSkill>; readonly confirm?: boolean }
  PlanRejected: { readonly errors: ReadonlyArray<string> }
  Drafted: { readonly codePath: string; readonly testPath: string }
  /** The draft is unusable before any test runs (no metadata, wrong name, paths outside). */
  DraftRejected: { readonly feedback: string }
  /** `tested`: the hashes of the code and tests this run read, kept by `Approvals`. */
  TestsPassed: { readonly report: TestReport; readonly tested: TestedFiles }
  TestsFailed: { readonly report: TestReport | null; readonly feedback: string }
  /** `by`: who said yes (the terminal, the app, `--yes`); the audit log keeps it. */
  PlanConfirmed: { readonly by: string }
  PlanDeclined: { readonly reason: string }
  /** Nobody answered now: the task pauses until `resume` (with `--yes` for the `prompt` tier). */
  ConfirmationPending: { readonly tier: "prompt" | "human" }
  ApprovalRequested: { readonly approvalId: string }
  /** Nobody decided now: the task pauses until an `approvals approve|reject` and `resume`. */
  ApprovalPending: {}
  Approved: {}
  Rejected: { readonly reason: string }
  /** `exec` granted to `skill` for this task only. */
  ExecGranted: { readonly skill: string; readonly by: string }
  ExecDeclined: { readonly skill: string; readonly reason: string }
  /** Nobody answered now: the task pauses until `resume --allow-exec`. `commands`: what the skill's nodes would run. */
  ExecPending: { readonly skill: string; readonly tier: string; readonly commands: ReadonlyArray<string> }
  GraphFinished: { readonly graph: Graph; readonly failed: ReadonlyArray<FailedNode>; readonly result: unknown }
  /** A human asked to retry a failed task (`resume --retry-failed`): see `retryOf`. */
  RetryFailed: {}
}>
export const Event = Data.taggedEnum<Event>()

export interface Limits {
  readonly max_task_steps: number
  readonly max_plan_retries: number
  readonly max_skill_retries: number
}

export interface Transition {
  readonly task: Task
  readonly from: TaskStateName
  readonly to: TaskStateName
  readonly reason: string
}

/**
 * What retrying a failed task does: a task whose graph ran runs its failed nodes again (and the
 * nodes that were skipped because of them), keeping what completed; a task that failed before
 * its graph could run (no valid plan, a skill that could not be drafted or was rejected) plans again.
 */
export type Retry =
  | { readonly _tag: "Nodes"; readonly graph: Graph; readonly nodes: ReadonlyArray<string> }
  | { readonly _tag: "Plan" }

export const retryOf = (task: Task): Retry => {
  if (task.graph === null || task.draft !== null || task.missing_skills.length > 0) return { _tag: "Plan" }
  const { graph, reopened } = reopenFailed(task.graph)
  return { _tag: "Nodes", graph, nodes: reopened }
}

/** The command that retries a failed task, for its messages. */
export const retryCommand = (task: Pick<Task, "id">): string => `${resumeCommand(task)} --retry-failed`

/** What the current state asks for. */
export const commandFor = (task: Task): Command => {
  switch (task.state) {
    case "pending":
    case "model_wait":
      return Command.EnsureModel()
    case "planning":
      return Command.Plan({ attempt: task.plan_attempts + 1, feedback: task.plan_feedback })
    case "confirmation":
      return task.graph === null
        ? Command.Plan({ attempt: task.plan_attempts + 1, feedback: task.plan_feedback })
        : Command.ConfirmPlan({ graph: task.graph, missing: task.missing_skills })
    case "skill_draft":
    case "rework":
    case "skill_test":
    case "approval": {
      const draft = task.draft
      if (draft === null) return Command.Plan({ attempt: task.plan_attempts + 1, feedback: task.plan_feedback })
      if (task.state === "skill_draft") return Command.DraftSkill({ draft })
      if (task.state === "rework") return Command.ReworkSkill({ draft })
      if (task.state === "skill_test") return Command.TestSkill({ draft })
      if (draft.approval_id !== null) return Command.CheckApproval({ draft, approvalId: draft.approval_id })
      // No tested copy to file (a task saved by an older version): test again to take one.
      return draft.tested === null ? Command.TestSkill({ draft }) : Command.RequestApproval({ draft })
    }
    case "graph_exec":
      return task.graph === null
        ? Command.Plan({ attempt: task.plan_attempts + 1, feedback: task.plan_feedback })
        : Command.ExecuteGraph({ graph: task.graph })
    case "complete":
    case "failed":
    case "declined":
      return Command.Finished()
  }
}

const startDraft = (skill: MissingSkill): SkillDraft => ({
  skill,
  attempt: 0,
  code_path: null,
  test_path: null,
  feedback: null,
  test_report: null,
  tested: null,
  approval_id: null
})

/** After planning or an approval: draft the next missing skill, or run the graph. */
const nextAfterSkills = (task: Task, missing: ReadonlyArray<MissingSkill>): Task => {
  const [next] = missing
  return next === undefined
    ? { ...task, missing_skills: [], draft: null, state: "graph_exec" }
    : { ...task, missing_skills: missing, draft: startDraft(next), state: "skill_draft" }
}

const failWith = (task: Task, error: string): Task => ({ ...task, state: "failed", error, paused: null })

/** A human said no: the task ends, and `error` says what was declined and that nothing of it ran. */
const declineWith = (task: Task, error: string): Task => ({ ...task, state: "declined", error, paused: null })

/** " (reason)" when the human gave one. */
const because = (reason: string): string => (reason.trim() === "" ? "" : ` (${reason.trim()})`)

/**
 * Events that only re-check what a paused task waits for: a wait, not progress. They use up no
 * step and leave no transition line (the drive audits the pause itself).
 */
export const isWait = (event: Event): boolean =>
  event._tag === "ApprovalPending" || event._tag === "ConfirmationPending" || event._tag === "ExecPending"

/** What a task waiting for a human says, and the exact command that continues it (and no other task). */
export const pauseFor = (task: Task, event: Event & { readonly _tag: "ApprovalPending" | "ConfirmationPending" | "ExecPending" }): Pause => {
  const id = task.id.slice(0, 8)
  const resume = resumeCommand(task)
  switch (event._tag) {
    case "ApprovalPending": {
      const approval = task.draft?.approval_id?.slice(0, 8) ?? "ID"
      return {
        reason: "approval",
        message: `The drafted skill "${task.draft?.skill.name ?? "?"}" passes its tests and waits for a human to review and approve it.`,
        next_command: `${resume}   (or: luallm-agent approvals approve ${approval} && ${resume})`
      }
    }
    case "ConfirmationPending": {
      const drafts = task.missing_skills.length === 0 ? "" : `, drafting ${task.missing_skills.map((skill) => skill.name).join(", ")} first`
      const shown = `The plan (${task.graph?.nodes.length ?? 0} nodes${drafts}) waits for a human to confirm it (approval_tiers.task_confirmation is "${event.tier}"); nothing has run. \`luallm-agent status --task ${id}\` shows it`
      return event.tier === "prompt"
        ? {
          reason: "confirmation",
          message: `${shown}; confirm it with \`${resume} --yes\`, or discard the task with \`luallm-agent reset --task ${id}\`.`,
          next_command: `${resume} --yes`
        }
        : {
          reason: "confirmation",
          message: `${shown}; only a human at a terminal may confirm it: run \`${resume}\` there and answer, or discard the task with \`luallm-agent reset --task ${id}\`.`,
          next_command: resume
        }
    }
    case "ExecPending": {
      const commands = event.commands.length === 0 ? "" : ` (to run: ${event.commands.join("; ")})`
      return {
        reason: "exec",
        message: `Skill ${event.skill} runs commands on this machine${commands} and needs the exec capability, which approval_tiers.skill_exec ("${event.tier}") leaves to a human. ` +
          `Grant it for this task only with \`${resume} --allow-exec\` (or run \`${resume}\` on a terminal and answer); to grant it to every task, set approval_tiers.skill_exec to "auto". ` +
          `To refuse it, discard the task with \`luallm-agent reset --task ${id}\`.`,
        next_command: `${resume} --allow-exec`
      }
    }
  }
}

/** A draft failed (tests or shape): rework it, unless the retries are spent. */
const draftFailed = (task: Task, draft: SkillDraft, feedback: string, report: TestReport | null, limits: Limits): Task => {
  // A null report means the tests could not run at all: the rework rewrites them too.
  const updated: SkillDraft = { ...draft, feedback, test_report: report }
  if (draft.attempt > limits.max_skill_retries) {
    return failWith(
      { ...task, draft: updated },
      `The drafted skill "${draft.skill.name}" still fails after ${draft.attempt} versions (limits.max_skill_retries = ${limits.max_skill_retries}). ` +
        `Last failure:\n${feedback}\n` +
        `The draft is in ${draft.code_path ?? "the drafts directory"}; fix it by hand and run \`luallm-agent skills test ${draft.skill.name} --draft\`, ` +
        `use a stronger code model (model_policy.code), or raise limits.max_skill_retries; then \`${retryCommand(task)}\` plans the task again.`
    )
  }
  return { ...task, draft: updated, state: "rework" }
}

/** Errors listed back to the planner; a plan of thousands of bad nodes must not become a prompt of megabytes. */
const maxFeedbackErrors = 20

const planFeedback = (errors: ReadonlyArray<string>): string => {
  const listed = errors.slice(0, maxFeedbackErrors).map((e) => `- ${e}`)
  const more = errors.length - listed.length
  return [...listed, ...(more > 0 ? [`- … and ${more} more errors like these`] : [])].join("\n")
}

/** The next task for `event` in the current state, before the step limit is applied. */
const apply = (task: Task, event: Event, limits: Limits, now: string): { readonly task: Task; readonly reason: string } => {
  const draft = task.draft
  switch (event._tag) {
    case "ModelReady": {
      const back = task.state === "model_wait" ? (task.resume_state ?? "planning") : "planning"
      return {
        // The task's model is the planning model, chosen once; a node's own model only waited.
        task: { ...task, model: task.model ?? event.model, state: back, resume_state: null, wait_model: null, paused: null },
        reason: `model ${event.model} is ready`
      }
    }
    case "ModelMissing":
      return {
        task: {
          ...task,
          graph: event.graph ?? task.graph,
          state: "model_wait",
          resume_state: task.state === "model_wait" ? task.resume_state : task.state,
          wait_model: event.model,
          paused: event.autoStart ? null : {
            reason: "model",
            message: `The model ${event.model} is not running. Start it with \`${event.startCommand}\`, then continue the task.`,
            next_command: `${event.startCommand} && ${resumeCommand(task)}`
          }
        },
        reason: event.autoStart ? `model ${event.model} is not running; starting it (model_policy.auto_start)` : `model ${event.model} is not running`
      }
    case "ModelFailed": {
      const where = task.state === "model_wait" ? (task.resume_state ?? "planning") : task.state
      const at = where === "pending" ? "before planning" : `in ${where}`
      return {
        task: {
          ...task,
          graph: event.graph ?? task.graph,
          state: "model_wait",
          resume_state: where,
          wait_model: event.model ?? task.wait_model,
          paused: {
            reason: "model",
            message: `The model${event.model === null ? "" : ` ${event.model}`} did not answer: ${event.error}\n` +
              `The task is paused ${at} and keeps what it has done; once the model answers again, continue it with \`${resumeCommand(task)}\`.`,
            next_command: resumeCommand(task)
          }
        },
        reason: `model${event.model === null ? "" : ` ${event.model}`} did not answer; paused ${at}`
      }
    }
    case "Planned": {
      const planned = { ...task, graph: event.graph, plan_attempts: task.plan_attempts + 1, plan_feedback: null }
      const names = event.missing.map((m) => m.name)
      const accepted = names.length === 0
        ? `plan accepted (${event.graph.nodes.length} nodes)`
        : `plan accepted; missing skills: ${names.join(", ")}`
      return event.confirm === true
        ? { task: { ...planned, missing_skills: event.missing, state: "confirmation" }, reason: `${accepted}; waiting for a human to confirm it` }
        : { task: nextAfterSkills(planned, event.missing), reason: accepted }
    }
    case "PlanConfirmed":
      return { task: nextAfterSkills({ ...task, paused: null }, task.missing_skills), reason: `plan confirmed by ${event.by}` }
    case "PlanDeclined":
      return {
        task: declineWith(
          task,
          `The plan was declined${because(event.reason)}; nothing ran and no skill was drafted. Run the task again with a more precise request, or see a plan first with \`luallm-agent run --plan-only "<request>"\`.`
        ),
        reason: `plan declined${because(event.reason)}`
      }
    case "ConfirmationPending":
      return { task: { ...task, paused: pauseFor(task, event) }, reason: "waiting for a human to confirm the plan" }
    case "PlanRejected": {
      const attempts = task.plan_attempts + 1
      const feedback = planFeedback(event.errors)
      if (attempts > limits.max_plan_retries) {
        return {
          task: failWith(
            { ...task, plan_attempts: attempts, plan_feedback: feedback },
            `The model did not produce a valid plan in ${attempts} attempts (limits.max_plan_retries = ${limits.max_plan_retries}); ` +
              `each time its errors were sent back to it. Last errors:\n${feedback}\n` +
              `Rephrase the request more concretely in a new task, or choose a stronger planning model (model_policy.planning) or raise limits.max_plan_retries and plan this one again with \`${retryCommand(task)}\`.`
          ),
          reason: `plan attempt ${attempts} invalid; retries exhausted`
        }
      }
      return {
        task: { ...task, plan_attempts: attempts, plan_feedback: feedback, state: "planning" },
        reason: `plan attempt ${attempts} invalid (${event.errors.length} errors); asking again with the errors`
      }
    }
    case "Drafted":
      if (draft === null) return { task, reason: "no draft in progress" }
      return {
        task: {
          ...task,
          state: "skill_test",
          draft: { ...draft, attempt: draft.attempt + 1, code_path: event.codePath, test_path: event.testPath, feedback: null, tested: null }
        },
        reason: `draft ${draft.attempt + 1} of ${draft.skill.name} written`
      }
    case "DraftRejected":
      if (draft === null) return { task, reason: "no draft in progress" }
      return {
        // The tests did not run because the code was unusable, not because they are wrong: keep
        // the last report, so a rework does not get its tests rewritten by failing to parse.
        task: draftFailed(task, { ...draft, attempt: draft.attempt + 1 }, event.feedback, draft.test_report, limits),
        reason: `draft ${draft.attempt + 1} of ${draft.skill.name} unusable`
      }
    case "TestsPassed":
      if (draft === null) return { task, reason: "no draft in progress" }
      return {
        task: { ...task, state: "approval", draft: { ...draft, test_report: event.report, tested: event.tested, feedback: null } },
        reason: `tests of ${draft.skill.name} pass (${event.report.passed}/${event.report.total})`
      }
    case "TestsFailed":
      if (draft === null) return { task, reason: "no draft in progress" }
      return {
        task: draftFailed(task, draft, event.feedback, event.report, limits),
        reason: event.report === null
          ? `tests of ${draft.skill.name} could not run`
          : `tests of ${draft.skill.name} fail (${event.report.failed}/${event.report.total})`
      }
    case "ApprovalRequested":
      if (draft === null) return { task, reason: "no draft in progress" }
      return {
        task: { ...task, draft: { ...draft, approval_id: event.approvalId } },
        reason: `approval ${event.approvalId} requested for ${draft.skill.name}`
      }
    case "ApprovalPending":
      return { task: { ...task, paused: pauseFor(task, event) }, reason: "approval still pending" }
    case "Approved": {
      const rest = task.missing_skills.slice(1)
      return {
        task: nextAfterSkills({ ...task, paused: null }, rest),
        reason: `skill ${draft?.skill.name ?? "?"} approved and promoted`
      }
    }
    case "Rejected":
      return {
        task: failWith(
          task,
          `A human rejected the drafted skill "${draft?.skill.name ?? "?"}": ${event.reason}. ` +
            `The task cannot run without it. Run a new task with a more precise request, or write the skill yourself into skills.allowed_dir and plan this one again with \`${retryCommand(task)}\`.`
        ),
        reason: `skill ${draft?.skill.name ?? "?"} rejected: ${event.reason}`
      }
    case "ExecGranted":
      return {
        task: { ...task, paused: null, exec_grants: [...task.exec_grants, { skill: event.skill, by: event.by, at: now }] },
        reason: `exec granted to ${event.skill} for this task by ${event.by}`
      }
    case "ExecDeclined":
      return {
        task: declineWith(
          task,
          `Running commands (exec) was refused to skill ${event.skill}${because(event.reason)}, so the plan cannot run; no node ran after that. ` +
            `Run the task again with a request that needs no commands, or grant exec when asked.`
        ),
        reason: `exec declined for ${event.skill}${because(event.reason)}`
      }
    case "ExecPending":
      return { task: { ...task, paused: pauseFor(task, event) }, reason: `waiting for a human to grant exec to ${event.skill}` }
    case "GraphFinished": {
      const finished = { ...task, graph: event.graph }
      if (event.failed.length === 0) {
        return { task: { ...finished, state: "complete", result: event.result }, reason: "every node complete or skipped" }
      }
      const lines = event.failed.map((node) => `- node ${node.id}: ${node.error}`).join("\n")
      return {
        task: failWith(
          finished,
          `${event.failed.length} node(s) failed after their retries, and their dependants were skipped:\n${lines}\n` +
            `See \`luallm-agent log --task ${task.id}\` for every attempt; fix the cause (paths, skill, model), then \`${retryCommand(task)}\` runs the failed nodes again (completed nodes keep their results).`
        ),
        reason: `nodes failed: ${event.failed.map((n) => n.id).join(", ")}`
      }
    }
    case "RetryFailed": {
      if (task.state !== "failed") return { task, reason: `only a failed task is retried; this one is ${task.state}` }
      const retry = retryOf(task)
      const again = { ...task, error: null, paused: null, resume_state: null, wait_model: null }
      if (retry._tag === "Nodes") {
        return {
          task: { ...again, graph: retry.graph, state: "graph_exec" },
          reason: retry.nodes.length === 0
            ? "retrying: the graph runs on from where it stopped"
            : `retrying the failed node(s) ${retry.nodes.join(", ")} and the nodes skipped because of them; completed nodes keep their results`
        }
      }
      return {
        task: { ...again, graph: null, draft: null, missing_skills: [], plan_attempts: 0, plan_feedback: null, state: "planning" },
        reason: "retrying: the task failed before its graph ran, so it is planned again"
      }
    }
  }
}

/** Applies `event`, counts the step and enforces `max_task_steps`. */
export const transition = (task: Task, event: Event, limits: Limits, now: string): Transition => {
  const next = apply(task, event, limits, now)
  // Waiting for a human is not progress: it does not use up steps.
  const steps = isWait(event) ? task.steps : task.steps + 1
  const stamped: Task = { ...next.task, steps, updated_at: now }
  const over = steps >= limits.max_task_steps && !isTerminal(stamped)
  const final = over
    ? failWith(
      stamped,
      `The task reached the step limit (${limits.max_task_steps} transitions, limits.max_task_steps) in state ${stamped.state} without finishing. ` +
        `See \`luallm-agent log --task ${task.id}\` for what it was doing; split the request, or raise limits.max_task_steps and continue with \`${retryCommand(task)}\`.`
    )
    : stamped
  return {
    task: final,
    from: task.state,
    to: final.state,
    reason: over ? `step limit ${limits.max_task_steps} reached (${next.reason})` : next.reason
  }
}
