/**
 * JSON schemas for structured answers: made from an Effect `Schema` with `JSONSchema.make`,
 * then kept inside the subset llama.cpp's json-schema-to-grammar turns into a grammar (its
 * grammars/README.md): local `$ref`s inlined (nested refs are broken there), no `$id`/`$schema`
 * markers, no keywords it skips silently. The same subset rules check a schema a plan declares
 * for an `llm_call` node, and `jsonSchemaProblems` checks an answer against such a schema when
 * the server could not enforce it.
 */
import { JSONSchema, type Schema } from "effect"

export type JsonSchema = { readonly [key: string]: unknown }

const isObject = (value: unknown): value is JsonSchema => typeof value === "object" && value !== null && !Array.isArray(value)

/**
 * What llama.cpp's converter reads. `title` and `description` are documentation (ignored);
 * everything else it would skip silently, or get wrong, is not here.
 */
export const grammarKeywords: ReadonlyArray<string> = [
  "type",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "minItems",
  "maxItems",
  "enum",
  "const",
  "anyOf",
  "oneOf",
  "minLength",
  "maxLength",
  "pattern",
  "format",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "title",
  "description"
]

/** The string formats the converter knows (it lacks `uri` and `email`). */
const grammarFormats: ReadonlyArray<string> = ["date", "time", "date-time", "uuid"]
const numericBounds: ReadonlyArray<string> = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]
/** Keywords whose value is a map of names to schemas, not a schema. */
const schemaMaps: ReadonlyArray<string> = ["properties"]
const schemaLists: ReadonlyArray<string> = ["anyOf", "oneOf"]

/** Inlines `#/$defs/…` references and drops the markers `JSONSchema.make` adds. */
const inline = (node: unknown, defs: JsonSchema, seen: ReadonlyArray<string>): unknown => {
  if (Array.isArray(node)) return node.map((item) => inline(item, defs, seen))
  if (!isObject(node)) return node
  const ref = node["$ref"]
  if (typeof ref === "string") {
    const name = ref.replace(/^#\/\$defs\//, "")
    if (seen.includes(name)) throw new Error(`the schema refers to itself through ${ref}; a grammar cannot express that`)
    return inline(defs[name], defs, [...seen, name])
  }
  // `Schema.Unknown` becomes {"$id": "/schemas/unknown", "title": "unknown"}: any JSON value.
  if (node["$id"] === "/schemas/unknown") return {}
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(node)) {
    if (key === "$schema" || key === "$defs" || key === "$id") continue
    out[key] = schemaMaps.includes(key) && isObject(value)
      ? Object.fromEntries(Object.entries(value).map(([name, child]) => [name, inline(child, defs, seen)]))
      : inline(value, defs, seen)
  }
  return out
}

/** The JSON schema a server is given for answers of `schema` (its encoded, on-the-wire side). */
export const answerJsonSchema = <A, I, R>(schema: Schema.Schema<A, I, R>): JsonSchema => {
  const made = JSONSchema.make(schema)
  const inlined = inline(made, made.$defs ?? {}, [])
  return isObject(inlined) ? inlined : {}
}

/**
 * Why llama.cpp's converter would not turn `schema` into the grammar it says, one problem per
 * line, addressed by path; empty when it is inside the subset.
 */
export const unsupportedJsonSchema = (schema: unknown, path = "schema"): ReadonlyArray<string> => {
  if (typeof schema === "boolean") return []
  if (!isObject(schema)) return [`${path}: a schema must be an object`]
  const problems: Array<string> = []
  for (const key of Object.keys(schema)) {
    if (!grammarKeywords.includes(key)) problems.push(`${path}: "${key}" is not supported (use only ${grammarKeywords.join(", ")})`)
  }
  if ("properties" in schema && ("anyOf" in schema || "oneOf" in schema)) {
    problems.push(`${path}: "properties" cannot be mixed with "anyOf"/"oneOf" in one object; put the properties inside each alternative`)
  }
  const pattern = schema["pattern"]
  if (pattern !== undefined && (typeof pattern !== "string" || !pattern.startsWith("^") || !pattern.endsWith("$"))) {
    problems.push(`${path}.pattern: a pattern must start with ^ and end with $`)
  }
  const format = schema["format"]
  if (format !== undefined && (typeof format !== "string" || !grammarFormats.includes(format))) {
    problems.push(`${path}.format: only ${grammarFormats.join(", ")} are supported`)
  }
  if (numericBounds.some((key) => key in schema) && schema["type"] !== "integer") {
    problems.push(`${path}: minimum/maximum bounds work only with "type": "integer"`)
  }
  const properties = schema["properties"]
  if (properties !== undefined) {
    if (!isObject(properties)) problems.push(`${path}.properties: must be an object of schemas`)
    else for (const [name, child] of Object.entries(properties)) problems.push(...unsupportedJsonSchema(child, `${path}.properties.${name}`))
  }
  for (const key of schemaLists) {
    const list = schema[key]
    if (list === undefined) continue
    if (!Array.isArray(list)) problems.push(`${path}.${key}: must be a list of schemas`)
    else list.forEach((child, i) => problems.push(...unsupportedJsonSchema(child, `${path}.${key}[${i}]`)))
  }
  for (const key of ["items", "additionalProperties"]) {
    if (schema[key] !== undefined) problems.push(...unsupportedJsonSchema(schema[key], `${path}.${key}`))
  }
  return problems
}

/**
 * Whether OpenAI's `strict` mode accepts the schema: every object closed
 * (`additionalProperties: false`) with every property required.
 */
export const isStrictCompatible = (schema: unknown): boolean => {
  if (!isObject(schema)) return typeof schema === "boolean" ? schema : false
  const children = [
    ...(isObject(schema["properties"]) ? Object.values(schema["properties"]) : []),
    ...schemaLists.flatMap((key) => (Array.isArray(schema[key]) ? schema[key] : [])),
    ...(schema["items"] === undefined ? [] : [schema["items"]])
  ]
  const closedObject = schema["type"] !== "object" || (
    schema["additionalProperties"] === false && isObject(schema["properties"]) &&
    Object.keys(schema["properties"]).every((name) => Array.isArray(schema["required"]) && schema["required"].includes(name))
  )
  return closedObject && Object.keys(schema).length > 0 && children.every(isStrictCompatible)
}

const typeOf = (value: unknown): string =>
  value === null ? "null" : Array.isArray(value) ? "array" : Number.isInteger(value) ? "integer" : typeof value

const matchesType = (type: unknown, value: unknown): boolean => {
  const actual = typeOf(value)
  const wanted = Array.isArray(type) ? type : [type]
  return wanted.some((t) => t === actual || (t === "number" && actual === "integer"))
}

/**
 * What is wrong with `value` against a schema of the supported subset, one problem per path;
 * empty when it matches. For answers the server could not constrain.
 */
export const jsonSchemaProblems = (schema: unknown, value: unknown, path = "answer"): ReadonlyArray<string> => {
  if (schema === true || !isObject(schema)) return schema === false ? [`${path}: no value is allowed here`] : []
  const got = JSON.stringify(value) ?? "nothing"
  const shown = got.length > 60 ? `${got.slice(0, 60)}…` : got
  if (schema["type"] !== undefined && !matchesType(schema["type"], value)) {
    return [`${path}: expected ${JSON.stringify(schema["type"])}, got ${shown}`]
  }
  if (Array.isArray(schema["enum"]) && !schema["enum"].some((option) => JSON.stringify(option) === got)) {
    return [`${path}: expected one of ${JSON.stringify(schema["enum"])}, got ${shown}`]
  }
  if ("const" in schema && JSON.stringify(schema["const"]) !== got) return [`${path}: expected ${JSON.stringify(schema["const"])}, got ${shown}`]
  for (const key of schemaLists) {
    const list = schema[key]
    if (Array.isArray(list) && !list.some((option) => jsonSchemaProblems(option, value, path).length === 0)) {
      return [`${path}: matches none of the ${list.length} allowed shapes`]
    }
  }
  const problems: Array<string> = []
  if (typeof value === "string") {
    if (typeof schema["minLength"] === "number" && value.length < schema["minLength"]) problems.push(`${path}: shorter than ${schema["minLength"]} characters`)
    if (typeof schema["maxLength"] === "number" && value.length > schema["maxLength"]) problems.push(`${path}: longer than ${schema["maxLength"]} characters`)
  }
  if (typeof value === "number") {
    if (typeof schema["minimum"] === "number" && value < schema["minimum"]) problems.push(`${path}: below the minimum ${schema["minimum"]}`)
    if (typeof schema["maximum"] === "number" && value > schema["maximum"]) problems.push(`${path}: above the maximum ${schema["maximum"]}`)
  }
  if (Array.isArray(value)) {
    if (typeof schema["minItems"] === "number" && value.length < schema["minItems"]) problems.push(`${path}: fewer than ${schema["minItems"]} items`)
    if (typeof schema["maxItems"] === "number" && value.length > schema["maxItems"]) problems.push(`${path}: more than ${schema["maxItems"]} items`)
    if (schema["items"] !== undefined) value.forEach((item, i) => problems.push(...jsonSchemaProblems(schema["items"], item, `${path}[${i}]`)))
  }
  if (isObject(value)) {
    const properties = isObject(schema["properties"]) ? schema["properties"] : {}
    const required = Array.isArray(schema["required"]) ? schema["required"] : []
    for (const name of required) if (typeof name === "string" && !(name in value)) problems.push(`${path}.${name}: is missing`)
    for (const [name, item] of Object.entries(value)) {
      const child = properties[name] ?? schema["additionalProperties"]
      problems.push(...jsonSchemaProblems(child, item, `${path}.${name}`))
    }
  }
  return problems
}
