/**
 * A plan as a human reads it before saying yes (the terminal's confirmation, `run --plan-only`,
 * a task paused for its confirmation): one line per node with the skill or model it uses, the
 * paths it is given and may reach, the nodes it takes results from, the skills drafted first
 * and the commands that need `exec`. Every field the model wrote is shown on one line with
 * hidden characters marked, as code under review is.
 */
import type { PlannedNode, PlanSummary } from "../core/planSummary.ts"
import { reviewed } from "./codeReview.ts"
import { bold, dim, yellow } from "./ui.ts"

const listed = (items: ReadonlyArray<string>): string => items.map(reviewed).join(", ")

const nodeLine = (node: PlannedNode): string => {
  const what = node.action === "skill"
    ? `skill ${reviewed(node.uses ?? "?")}${node.drafted ? yellow(" (to be drafted)") : ""}`
    : node.action === "llm_call"
    ? `llm_call ${node.uses === null ? "(the task's model)" : reviewed(node.uses)}`
    : `decision ${reviewed(node.uses ?? "")}`
  const details = [
    ...(node.paths.length === 0 ? [] : [`paths: ${listed(node.paths)}`]),
    ...(node.may_reach.length === 0 ? [] : [`may reach: ${listed(node.may_reach)} (within allowed_paths)`]),
    ...(node.inputs.length === 0 ? [] : [`given: ${listed(node.inputs)}`]),
    ...(node.exec ? [yellow(`runs commands: ${node.command === null ? "(the skill chooses)" : reviewed(node.command)}`)] : [])
  ]
  return `  ${bold(reviewed(node.id))} [${what}]${details.map((detail) => `${dim("  ·  ")}${detail}`).join("")}`
}

export const describePlan = (request: string, plan: PlanSummary): string =>
  [
    `${bold("Plan")} for: ${reviewed(request)}`,
    ...plan.nodes.map(nodeLine),
    ...(plan.drafts.length === 0
      ? []
      : [
        `  drafted first (each tested, then shown to a human before it is trusted): ${
          plan.drafts.map((draft) => `${reviewed(draft.name)} — ${reviewed(draft.purpose)}`).join("; ")
        }`
      ]),
    ...(plan.exec_skills.length === 0
      ? []
      : [yellow(`  runs commands on this machine (exec is asked for before the graph runs): ${listed(plan.exec_skills)}`)])
  ].join("\n")
