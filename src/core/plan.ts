/**
 * From a model's planning answer to an accepted plan: lenient first (fences, prose, comments,
 * omitted bookkeeping fields), strict after (Schema decode + graph validation + the skills that
 * exist). Every problem comes back as a sentence the model can act on in its next attempt.
 */
import { Either } from "effect"
import { fromUnknown, type Graph, type GraphMetadata, PlanAnswer, type SkillNode } from "./graph.ts"
import { answerJsonSchema } from "./jsonSchema.ts"
import { extractJson } from "./llmOutput.ts"
import type { MissingSkill } from "./task.ts"

export interface PlanContext {
  /** Skills in the library (promoted and shipped). */
  readonly knownSkills: ReadonlySet<string>
  readonly metadata: GraphMetadata
  /** `limits.max_plan_nodes`: every node costs a model call or a sandboxed run. */
  readonly maxNodes: number
}

/** The JSON schema a planning answer is constrained to, where the server enforces one. */
export const planJsonSchema = answerJsonSchema(PlanAnswer)

/** Models sometimes answer with the bare list of nodes; that is a plan too. */
const asPlanObject = (value: unknown): unknown => (Array.isArray(value) ? { nodes: value } : value)

/** Checked before decoding, so a huge plan costs one sentence of feedback, not one per node. */
const sizeError = (value: unknown, maxNodes: number): string | undefined => {
  const nodes = typeof value === "object" && value !== null && "nodes" in value ? value.nodes : undefined
  return Array.isArray(nodes) && nodes.length > maxNodes
    ? `The plan has ${nodes.length} nodes, more than the ${maxNodes} allowed (limits.max_plan_nodes). Make it smaller: ` +
      "let one skill process a whole list instead of one node per item."
    : undefined
}

export interface AcceptedPlan {
  readonly graph: Graph
  /** Skills the plan uses that do not exist yet, in the order they first appear. */
  readonly missing: ReadonlyArray<MissingSkill>
}

const isSkillNode = (node: Graph["nodes"][number]): node is SkillNode => node.action === "skill"

/** Skills the plan needs that the library lacks; one without a description is a plan error. */
const missingSkills = (graph: Graph, known: ReadonlySet<string>): Either.Either<ReadonlyArray<MissingSkill>, ReadonlyArray<string>> => {
  const missing = new Map<string, MissingSkill>()
  const errors: Array<string> = []
  for (const node of graph.nodes.filter(isSkillNode)) {
    if (known.has(node.skill_name) || missing.has(node.skill_name)) continue
    const description = node.description?.trim() ?? ""
    if (description === "") {
      errors.push(
        `Node "${node.id}" uses skill "${node.skill_name}", which does not exist. Use one of the available skills ` +
          `(${known.size === 0 ? "none yet" : Array.from(known).sort().join(", ")}), or keep the new name and add a ` +
          `"description" saying exactly what the skill must do, so it can be written.`
      )
      continue
    }
    missing.set(node.skill_name, { name: node.skill_name, purpose: description, example_args: node.skill_args })
  }
  return errors.length === 0 ? Either.right(Array.from(missing.values())) : Either.left(errors)
}

/** Parses and checks a planning answer; `Left` holds every problem found. */
export const parsePlan = (answer: string, context: PlanContext): Either.Either<AcceptedPlan, ReadonlyArray<string>> =>
  extractJson(answer).pipe(
    Either.mapLeft((error): ReadonlyArray<string> => [error.message]),
    Either.map(asPlanObject),
    Either.flatMap((value) => {
      const tooBig = sizeError(value, context.maxNodes)
      return tooBig === undefined
        ? Either.mapLeft(fromUnknown(value, context.metadata), (errors) => errors.map((error) => error.message))
        : Either.left([tooBig])
    }),
    Either.flatMap((graph) =>
      graph.nodes.length === 0
        ? Either.left(["The plan has no nodes. Add at least one node that does the work the request asks for."])
        : Either.map(missingSkills(graph, context.knownSkills), (missing) => ({ graph, missing }))
    )
  )
