/**
 * From a model's planning answer to an accepted plan: lenient first (fences, prose, comments,
 * omitted bookkeeping fields), strict after (Schema decode + graph validation + the skills that
 * exist). Every problem comes back as a sentence the model can act on in its next attempt.
 */
import { Either } from "effect"
import { fromUnknown, type Graph, type GraphMetadata, PlanAnswer, type SkillNode } from "./graph.ts"
import { answerJsonSchema } from "./jsonSchema.ts"
import { extractJson } from "./llmOutput.ts"
import { type ArgKind, argKind } from "./skillMeta.ts"
import { wholeReferenceTo } from "./template.ts"
import type { MissingSkill } from "./task.ts"

export interface PlanContext {
  /** Skills in the library (promoted and shipped). */
  readonly knownSkills: ReadonlySet<string>
  /** What each library skill's `args` header says its arguments are (name → description). */
  readonly skillArgs?: ReadonlyMap<string, Readonly<Record<string, string>>>
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

const kindInWords: Readonly<Record<ArgKind, string>> = {
  string: "text",
  number: "a number",
  boolean: "true or false",
  array: "an array",
  object: "an object"
}

/** What kind of value a node's result is, when the plan alone says so. */
const resultKind = (node: Graph["nodes"][number]): { readonly kind: ArgKind; readonly why: string; readonly fix: string } | null => {
  if (node.action === "decision") {
    return { kind: "boolean", why: "is a decision, so its result is true or false", fix: "pass the result of a node that produces one" }
  }
  if (node.action !== "llm_call") return null
  if (node.output_schema === undefined) {
    return { kind: "string", why: "is an llm_call without an output_schema, so its result is text", fix: `give "${node.id}" an output_schema that describes it` }
  }
  const declared = node.output_schema["type"]
  const kind = typeof declared === "string" ? argKind(declared) : null
  return kind === null ? null : { kind, why: `has an output_schema of type "${String(declared)}"`, fix: `make the output_schema of "${node.id}" describe it` }
}

/**
 * A whole `"{id}"` argument whose result cannot be what the skill's `args` header asks for. A
 * skill argument that takes text gets any result as text (its JSON), so only structure or numbers
 * asked of text (or of a decision's true/false) are refused here, before anything runs.
 */
const argumentKindErrors = (graph: Graph, skillArgs: ReadonlyMap<string, Readonly<Record<string, string>>>): ReadonlyArray<string> => {
  const byId = new Map(graph.nodes.map((node) => [node.id, node]))
  return graph.nodes.filter(isSkillNode).flatMap((node) =>
    Object.entries(node.skill_args).flatMap(([arg, value]) => {
      const id = wholeReferenceTo(value)
      const about = skillArgs.get(node.skill_name)?.[arg]
      const wanted = about === undefined ? null : argKind(about)
      const source = id === undefined ? undefined : byId.get(id)
      const produced = source === undefined ? null : resultKind(source)
      if (about === undefined || wanted === null || wanted === "string" || produced === null || produced.kind === wanted) return []
      return [
        `Node "${node.id}" passes "{${id}}" as the argument "${arg}" of ${node.skill_name}, which takes ${kindInWords[wanted]}; ` +
        `but "${id}" ${produced.why}. Pass a value of that kind: ${produced.fix}, or let a skill build it.`
      ]
    })
  )
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
    Either.flatMap((graph) => {
      if (graph.nodes.length === 0) return Either.left(["The plan has no nodes. Add at least one node that does the work the request asks for."])
      const kindErrors = context.skillArgs === undefined ? [] : argumentKindErrors(graph, context.skillArgs)
      return Either.match(missingSkills(graph, context.knownSkills), {
        onLeft: (errors): Either.Either<AcceptedPlan, ReadonlyArray<string>> => Either.left([...errors, ...kindErrors]),
        onRight: (missing) => (kindErrors.length === 0 ? Either.right({ graph, missing }) : Either.left(kindErrors))
      })
    })
  )
