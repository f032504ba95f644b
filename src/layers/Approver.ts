/**
 * The `Approver` service: where the agent's questions to a human go — confirming a task's plan
 * before anything runs, approving or rejecting a drafted skill, granting a skill `exec` for one
 * task. The agent asks and records the answer (in the task, the approval record and the audit
 * log); the layer decides who answers:
 *
 * - `ApproverPause` (scripts; the default): nobody answers now. The task pauses (the CLI exits
 *   3) with the exact command that continues it: `approvals approve ID` + `resume`, `resume --yes`
 *   or `resume --allow-exec`.
 * - `ApproverFrom(handler)`: an Effect app answers in-process, and the task goes on in the same
 *   run (`createAgent({ onApproval })` is this with a Promise callback).
 * - `ApproverQueue`: each question is offered on a `Queue` (`ApproverQuestions`) with a way to
 *   answer it, for an app whose humans answer elsewhere (a chat, a web page).
 * - the terminal (`src/shell/approver.ts`): the CLI on a terminal asks there.
 *
 * `withStandingAnswers` lays answers given ahead of time (`--yes`, `--allow-exec`) over any of them.
 */
import { Context, Data, Deferred, Effect, Layer, Queue } from "effect"
import type { PlannedNode, PlanSummary } from "../core/planSummary.ts"
import type { ApprovalError, ApprovalRecord } from "./Approvals.ts"

export type Question = Data.TaggedEnum<{
  /** A plan to run (tier: approval_tiers.task_confirmation). Nothing has run or been drafted yet. */
  ConfirmPlan: { readonly taskId: string; readonly request: string; readonly plan: PlanSummary; readonly tier: "prompt" | "human" }
  /** A drafted skill whose tests pass: `code` and `tests` are the tested copy, what promotion installs. */
  ApproveSkill: { readonly taskId: string; readonly approval: ApprovalRecord; readonly code: string; readonly tests: string }
  /** `skill` runs host commands (its nodes say which); a yes grants `exec` for this task only (tier: approval_tiers.skill_exec). */
  GrantExec: { readonly taskId: string; readonly skill: string; readonly nodes: ReadonlyArray<PlannedNode>; readonly tier: "prompt" | "human" }
}>
export const Question = Data.taggedEnum<Question>()

/** `by` names who answered, for the audit log and the approval record. */
export type Answer = Data.TaggedEnum<{
  Yes: { readonly by: string }
  No: { readonly by: string; readonly reason: string }
  /** Not now: the task pauses with the command that continues it. */
  Later: {}
}>
export const Answer = Data.taggedEnum<Answer>()

/** What a question is about, in a few words: "the plan of task 5f0c2d4e", "exec for skill shell_safe". */
export const describeQuestion = (question: Question): string =>
  Question.$match(question, {
    ConfirmPlan: ({ taskId }) => `the plan of task ${taskId.slice(0, 8)}`,
    ApproveSkill: ({ approval }) => `the drafted skill ${approval.skill_name} (approval ${approval.id.slice(0, 8)})`,
    GrantExec: ({ skill }) => `exec for skill ${skill}`
  })

export class ApprovalCallbackFailed extends Data.TaggedError("ApprovalCallbackFailed")<{
  /** `describeQuestion` of what it was asked. */
  readonly question: string
  readonly taskId: string
  readonly reason: string
}> {
  override get message() {
    const id = this.taskId.slice(0, 8)
    return `The app's approver failed to answer about ${this.question}: ${this.reason}. Nothing was decided and task ${id} stays where it was; fix the approver (onApproval must return true or false), then continue it with resume("${id}") (from a shell: \`luallm-agent resume --task ${id}\`).`
  }
}

/** What asking can fail with: the app's approver itself, or reading the approval a human reviews. */
export type ApproverError = ApprovalCallbackFailed | ApprovalError

export interface ApproverShape {
  /** Asks a human (or whoever stands in for one) and waits for the answer. */
  readonly ask: (question: Question) => Effect.Effect<Answer, ApproverError>
}

export class Approver extends Context.Tag("Approver")<Approver, ApproverShape>() {}

/** Nobody answers now: every question pauses its task (scripts, and apps that decide later). */
export const ApproverPause: Layer.Layer<Approver> = Layer.succeed(Approver, Approver.of({ ask: () => Effect.succeed(Answer.Later()) }))

/** The app answers: `handler` gets each question and returns the answer. */
export const ApproverFrom = (handler: ApproverShape["ask"]): Layer.Layer<Approver> => Layer.succeed(Approver, Approver.of({ ask: handler }))

/** A question waiting on `ApproverQuestions`; `answer` lets its task go on (the first answer counts). */
export interface AskedQuestion {
  readonly question: Question
  readonly answer: (answer: Answer) => Effect.Effect<void>
}

/** The questions `ApproverQueue` offers, for the app to take and answer. */
export class ApproverQuestions extends Context.Tag("ApproverQuestions")<ApproverQuestions, Queue.Dequeue<AskedQuestion>>() {}

/**
 * Each question goes on a queue and its task waits for the answer (other tasks go on meanwhile).
 * The queue is shut down with the layer; a task still waiting then stops, saved where it was.
 */
export const ApproverQueue: Layer.Layer<Approver | ApproverQuestions> = Layer.scopedContext(
  Effect.gen(function*() {
    const questions = yield* Effect.acquireRelease(Queue.unbounded<AskedQuestion>(), Queue.shutdown)
    const ask = (question: Question) =>
      Effect.gen(function*() {
        const answered = yield* Deferred.make<Answer>()
        yield* Queue.offer(questions, { question, answer: (answer) => Effect.asVoid(Deferred.succeed(answered, answer)) })
        return yield* Deferred.await(answered)
      })
    return Context.make(Approver, Approver.of({ ask })).pipe(Context.add(ApproverQuestions, questions))
  })
)

/** Answers given ahead of time, each naming who gave it; a question they do not cover goes to the approver underneath. */
export interface StandingAnswers {
  /** Confirms a plan under the `prompt` tier (never under `human`): e.g. "--yes". */
  readonly confirmPlan?: string | undefined
  /** Grants `exec` to any skill of the task that asks: e.g. "--allow-exec". */
  readonly grantExec?: string | undefined
}

export const withStandingAnswers = (approver: ApproverShape, standing: StandingAnswers): ApproverShape =>
  Approver.of({
    ask: (question) => {
      if (question._tag === "ConfirmPlan" && question.tier === "prompt" && standing.confirmPlan !== undefined) {
        return Effect.succeed(Answer.Yes({ by: standing.confirmPlan }))
      }
      if (question._tag === "GrantExec" && standing.grantExec !== undefined) return Effect.succeed(Answer.Yes({ by: standing.grantExec }))
      return approver.ask(question)
    }
  })
