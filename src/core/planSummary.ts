/**
 * What a human confirms before a task runs (and what `run --plan-only` prints): each node with
 * the skill or model it uses, the skills the agent will draft first, the paths each node is
 * given and may reach, and which skills would run commands on the host (`exec`). Pure: the
 * skills' headers come in as facts.
 */
import type { Graph, Node } from "./graph.ts"
import type { MissingSkill } from "./task.ts"
import { templateReferences, valueReferences } from "./template.ts"

/** What a skill's header (and its dependencies' headers) says about what it may touch. */
export interface SkillFacts {
  /** The globs it declares; `allowed_paths` bounds them again when it runs. */
  readonly paths: ReadonlyArray<string>
  /** It, or a skill it depends on, declares the `exec` capability. */
  readonly exec: boolean
}

export interface PlannedNode {
  readonly id: string
  readonly action: Node["action"]
  readonly depends_on: ReadonlyArray<string>
  /** A skill node's skill, an llm_call's model (`null`: the task's model), a decision's condition. */
  readonly uses: string | null
  /** The skill is not in the library: the agent drafts it, and a human approves it, before the graph runs. */
  readonly drafted: boolean
  /** The file paths its arguments name (absolute or `~/…`). */
  readonly paths: ReadonlyArray<string>
  /** The nodes whose results it is given. */
  readonly inputs: ReadonlyArray<string>
  /** The globs its skill may reach (its header); empty for a drafted skill, whose header the reviewer sees. */
  readonly may_reach: ReadonlyArray<string>
  /** Its skill runs host commands: `exec` must be granted for this task. */
  readonly exec: boolean
  /** The command line it asks for, when its arguments are `{ command, args }` (shell_safe's). */
  readonly command: string | null
}

export interface PlanSummary {
  readonly nodes: ReadonlyArray<PlannedNode>
  /** The skills drafted before the graph runs, in order. */
  readonly drafts: ReadonlyArray<{ readonly name: string; readonly purpose: string }>
  /** The skills that need `exec` granted (each once). */
  readonly exec_skills: ReadonlyArray<string>
}

const looksLikePath = (text: string): boolean => /^(\/|~\/)\S/.test(text) && templateReferences(text).length === 0

/** The path-like strings anywhere in a JSON-like value, each once, in order. */
const pathsIn = (value: unknown): ReadonlyArray<string> => {
  if (typeof value === "string") return looksLikePath(value) ? [value] : []
  if (Array.isArray(value)) return Array.from(new Set(value.flatMap(pathsIn)))
  if (typeof value === "object" && value !== null) return Array.from(new Set(Object.values(value).flatMap(pathsIn)))
  return []
}

/** A word of a command line as a reader copies it: quoted when it holds a space or a quote. */
const shellWord = (word: string): string => /^[\w@%+=:,./~{}-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`

/** `grep -c error ~/logs/app.log` for arguments `{ command: "grep", args: ["-c", "error", "~/logs/app.log"] }`. */
export const commandLine = (args: Readonly<Record<string, unknown>>): string | null => {
  const { args: words, command } = args
  if (typeof command !== "string") return null
  const rest = Array.isArray(words) ? words.map((word) => (typeof word === "string" ? word : JSON.stringify(word) ?? "")) : []
  return [command, ...rest].map(shellWord).join(" ")
}

const noFacts: SkillFacts = { paths: [], exec: false }

export const summarizePlan = (
  graph: Graph,
  missing: ReadonlyArray<MissingSkill>,
  facts: ReadonlyMap<string, SkillFacts>
): PlanSummary => {
  const drafted = new Set(missing.map((skill) => skill.name))
  const nodes = graph.nodes.map((node): PlannedNode => {
    const base = { id: node.id, action: node.action, depends_on: node.depends_on }
    switch (node.action) {
      case "skill": {
        const known = facts.get(node.skill_name) ?? noFacts
        const isDraft = drafted.has(node.skill_name)
        return {
          ...base,
          uses: node.skill_name,
          drafted: isDraft,
          paths: pathsIn(node.skill_args),
          inputs: valueReferences(node.skill_args),
          may_reach: isDraft ? [] : known.paths,
          exec: !isDraft && known.exec,
          command: !isDraft && known.exec ? commandLine(node.skill_args) : null
        }
      }
      case "llm_call":
        return {
          ...base,
          uses: node.model ?? null,
          drafted: false,
          paths: [],
          inputs: templateReferences(node.prompt_template),
          may_reach: [],
          exec: false,
          command: null
        }
      case "decision":
        return { ...base, uses: node.condition, drafted: false, paths: [], inputs: [], may_reach: [], exec: false, command: null }
    }
  })
  return {
    nodes,
    drafts: missing.map((skill) => ({ name: skill.name, purpose: skill.purpose })),
    exec_skills: Array.from(new Set(nodes.flatMap((node) => (node.exec && node.uses !== null ? [node.uses] : []))))
  }
}
