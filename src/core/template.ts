/**
 * `{node_id}` interpolation for `llm_call` prompt templates and the string values of
 * `skill_args`.
 *
 * Syntax, chosen so that prompts full of JSON examples need no escaping:
 * - `{id}` where `id` is a node id (letters, digits, `_`, `-`) is replaced by that node's result:
 *   a string as-is, any other value as compact JSON.
 * - `{` followed by anything else (`{"name": …}`, `{ x }`, a lone `{`) is literal text.
 * - `{{` writes a literal `{`, so `{{id}` is the text `{id}`. `}` is always literal, which keeps
 *   JSON like `{"a": {"b": 1}}` intact.
 */
import { Option } from "effect"

/** Looks up the result of a completed node; `None` when the node has no result (yet). */
export type Results = (id: string) => Option.Option<unknown>

const idSource = "[A-Za-z0-9_-]+"
const nodeIdPattern = new RegExp(`^${idSource}$`)

/** Whether `text` can be used as a node id, i.e. written as `{text}` in templates and conditions. */
export const isNodeId = (text: string): boolean => nodeIdPattern.test(text)

/** `{{` (an escaped brace) or `{id}` (a reference, id in group 1). */
const tokenPattern = new RegExp(`\\{\\{|\\{(${idSource})\\}`, "g")

/** The ids a template refers to, each once, in order of first appearance. */
export const templateReferences = (template: string): ReadonlyArray<string> => {
  const ids = Array.from(template.matchAll(tokenPattern), (match) => match[1]).filter(
    (id): id is string => id !== undefined
  )
  return Array.from(new Set(ids))
}

/** How a result reads inside a prompt. */
const renderResult = (value: unknown): string =>
  typeof value === "string" ? value : (JSON.stringify(value) ?? "")

/**
 * Replaces every `{id}` with the result of node `id`. A reference without a result is left as
 * written: `validate` rejects references to nodes that are not ancestors, so at run time this
 * only happens to text the author meant literally.
 */
export const interpolate = (template: string, results: Results): string =>
  template.replace(tokenPattern, (match, id: string | undefined) =>
    id === undefined ? "{" : Option.match(results(id), { onNone: () => match, onSome: renderResult })
  )

/** A string that is exactly one reference, `"{id}"`: its result goes in as a value, not as text. */
const wholeReference = new RegExp(`^\\{(${idSource})\\}$`)

/** The ids referred to anywhere in the strings of a JSON-like value (skill_args). */
export const valueReferences = (value: unknown): ReadonlyArray<string> => {
  if (typeof value === "string") return templateReferences(value)
  if (Array.isArray(value)) return Array.from(new Set(value.flatMap(valueReferences)))
  if (typeof value === "object" && value !== null) return Array.from(new Set(Object.values(value).flatMap(valueReferences)))
  return []
}

/**
 * Interpolates every string inside a JSON-like value. A string that is exactly `"{id}"` becomes
 * the result itself (so a skill receives the rows another skill returned, not their JSON text);
 * any other string is interpolated as a template.
 */
export const interpolateValue = (value: unknown, results: Results): unknown => {
  if (typeof value === "string") {
    const whole = wholeReferenceTo(value)
    if (whole !== undefined) return Option.getOrElse(results(whole), () => value)
    return interpolate(value, results)
  }
  if (Array.isArray(value)) return value.map((item) => interpolateValue(item, results))
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, interpolateValue(item, results)]))
  }
  return value
}

/** The node id of a string that is exactly one reference (`"{rows}"`), or undefined. */
export const wholeReferenceTo = (value: unknown): string | undefined =>
  typeof value === "string" ? wholeReference.exec(value)?.[1] : undefined

/**
 * A skill node's arguments with the results filled in (`interpolateValue`), except that a
 * top-level argument the skill's `args` header says is text gets its result as text: a whole
 * `"{id}"` whose result is an object, a list or a number becomes that result's JSON, exactly
 * what `"... {id} ..."` inside a longer string would give. The skill then receives what its
 * header promises instead of failing inside on `text.split is not a function`.
 */
export const interpolateArgs = (
  args: Readonly<Record<string, unknown>>,
  results: Results,
  takesText: (arg: string) => boolean
): Record<string, unknown> =>
  Object.fromEntries(Object.entries(args).map(([arg, value]) => {
    const whole = wholeReferenceTo(value)
    if (whole === undefined || !takesText(arg)) return [arg, interpolateValue(value, results)]
    return [arg, Option.match(results(whole), { onNone: () => value, onSome: renderResult })]
  }))
