/**
 * The CLI's `Approver`. On a terminal the questions are asked there, one key at a time: the plan
 * (`Run this plan?`), a drafted skill (`[V]iew code [R]erun tests [E]dit [Y]es [N]o`), a skill's
 * exec grant (`Grant exec to skill X for this task?`); Enter is no, and Ctrl-C (or `q` in the
 * review) leaves the question for later: the task pauses, as it does without a terminal. Anywhere
 * else every question pauses the task (exit 3) with the command that continues it. (`--yes` and
 * `--allow-exec` answer ahead of time: `RunOptions.answers`.)
 */
import { Prompt } from "@effect/cli"
import type { FileSystem, Path, Terminal } from "@effect/platform"
import { Console, Effect, Layer } from "effect"
import { Answer, Approver, ApproverPause, Question } from "../layers/Approver.ts"
import type { Approvals } from "../layers/Approvals.ts"
import type { SkillRunner } from "../layers/SkillRunner.ts"
import { reviewInteractively } from "./approvalPrompt.ts"
import { reviewed } from "./codeReview.ts"
import { describePlan } from "./planView.ts"
import { bold, isInteractive, yellow } from "./ui.ts"

const by = "the terminal"

/** One y/n key (Enter is no); Ctrl-C leaves it for later. */
const yesOrNo = (message: string) =>
  Prompt.run(Prompt.confirm({ message, initial: false })).pipe(
    Effect.map((yes) => (yes ? Answer.Yes({ by }) : Answer.No({ by, reason: "" }))),
    Effect.catchTag("QuitException", () => Effect.succeed(Answer.Later()))
  )

/** Asks at the terminal. */
type TerminalServices = Approvals | SkillRunner | Terminal.Terminal | FileSystem.FileSystem | Path.Path

export const ApproverTerminal: Layer.Layer<Approver, never, TerminalServices> = Layer.effect(
  Approver,
  Effect.gen(function*() {
    const context = yield* Effect.context<TerminalServices>()
    const ask = (question: Question) =>
      Question.$match(question, {
        ConfirmPlan: ({ plan, request }) =>
          Effect.zipRight(Console.log(describePlan(request, plan)), yesOrNo("Run this plan?")),
        ApproveSkill: ({ approval }) => reviewInteractively(approval.id),
        GrantExec: ({ nodes, skill }) =>
          Effect.zipRight(
            Console.log([
              yellow(`Skill ${bold(skill)} runs commands on this machine (the exec capability), for these nodes:`),
              ...nodes.map((node) => `  ${reviewed(node.id)}: ${node.command === null ? "(the skill chooses its commands)" : reviewed(node.command)}`)
            ].join("\n")),
            yesOrNo(`Grant exec to skill ${skill} for this task?`)
          )
      }).pipe(Effect.provide(context))
    return Approver.of({ ask })
  })
)

/** The approver for `run` and `resume`: the terminal when there is one, else every question pauses its task. */
export const cliApprover = (): Layer.Layer<Approver, never, TerminalServices> => (isInteractive() ? ApproverTerminal : ApproverPause)
