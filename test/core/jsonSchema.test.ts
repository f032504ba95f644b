import { describe, expect, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import { codeSchema, draftSchema, testsSchema } from "../../src/agent/drafting.ts"
import { fromJson } from "../../src/core/graph.ts"
import {
  answerJsonSchema,
  grammarKeywords,
  isStrictCompatible,
  jsonSchemaProblems,
  unsupportedJsonSchema
} from "../../src/core/jsonSchema.ts"
import { planJsonSchema } from "../../src/core/plan.ts"

/** Every keyword used anywhere in a schema (property names are names, not keywords). */
const keywordsOf = (schema: unknown): ReadonlyArray<string> => {
  if (Array.isArray(schema)) return schema.flatMap(keywordsOf)
  if (typeof schema !== "object" || schema === null) return []
  return Object.entries(schema).flatMap(([key, value]) =>
    key === "properties" && typeof value === "object" && value !== null
      ? [key, ...Object.values(value).flatMap(keywordsOf)]
      : [key, ...keywordsOf(value)]
  )
}

/** Objects that mix `properties` with `anyOf`/`oneOf`, which llama.cpp cannot express. */
const mixed = (schema: unknown): number =>
  typeof schema !== "object" || schema === null
    ? 0
    : Object.values(schema).reduce((n: number, child) => n + mixed(child), "properties" in schema && ("anyOf" in schema || "oneOf" in schema) ? 1 : 0)

describe("the JSON schemas the agent sends", () => {
  const sent = { plan: planJsonSchema, draft: draftSchema, code: codeSchema, tests: testsSchema }

  it.each(Object.entries(sent))("%s: only keywords llama.cpp's json-schema-to-grammar supports, no $ref, no properties beside anyOf", (_, schema) => {
    const used = new Set(keywordsOf(schema))
    expect([...used].filter((keyword) => !grammarKeywords.includes(keyword))).toEqual([])
    expect(used.has("$ref") || used.has("$defs") || used.has("$schema")).toBe(false)
    expect(mixed(schema)).toBe(0)
    expect(unsupportedJsonSchema(schema)).toEqual([])
  })

  it("asks a planner for every field a node needs, each node kind an alternative", () => {
    const items = (planJsonSchema["properties"] as { nodes: { items: { anyOf: Array<{ required: Array<string> }> } } }).nodes.items
    expect(items.anyOf.map((kind) => kind.required)).toEqual([
      ["id", "depends_on", "action", "skill_name", "skill_args"],
      ["id", "depends_on", "action", "prompt_template"],
      ["id", "depends_on", "action", "condition", "if_true", "if_false"]
    ])
  })

  it("draft answers are strict-compatible (OpenAI strict mode); plans, with optional fields, are not", () => {
    expect(isStrictCompatible(draftSchema)).toBe(true)
    expect(isStrictCompatible(planJsonSchema)).toBe(false)
  })
})

describe("answerJsonSchema", () => {
  it("inlines references and turns an unknown value into any JSON", () => {
    const schema = answerJsonSchema(Schema.Struct({ n: Schema.NonNegativeInt, data: Schema.Unknown }))
    expect(schema).toEqual({
      type: "object",
      required: ["n", "data"],
      properties: { n: { type: "integer", description: "an integer", title: "int", minimum: 0 }, data: {} },
      additionalProperties: false
    })
  })
})

describe("unsupportedJsonSchema", () => {
  it("names each keyword and shape the grammar converter would skip or get wrong, by path", () => {
    expect(unsupportedJsonSchema({
      type: "object",
      properties: {
        id: { $ref: "#/$defs/Id" },
        tags: { type: "array", items: { type: "string" }, uniqueItems: true },
        kind: { not: { const: "x" } },
        code: { type: "string", pattern: "[a-z]+" },
        price: { type: "number", minimum: 0 },
        mail: { type: "string", format: "email" }
      },
      anyOf: [{ required: ["id"] }]
    })).toEqual([
      `schema: "properties" cannot be mixed with "anyOf"/"oneOf" in one object; put the properties inside each alternative`,
      `schema.properties.id: "$ref" is not supported (use only ${grammarKeywords.join(", ")})`,
      `schema.properties.tags: "uniqueItems" is not supported (use only ${grammarKeywords.join(", ")})`,
      `schema.properties.kind: "not" is not supported (use only ${grammarKeywords.join(", ")})`,
      "schema.properties.code.pattern: a pattern must start with ^ and end with $",
      `schema.properties.price: minimum/maximum bounds work only with "type": "integer"`,
      "schema.properties.mail.format: only date, time, date-time, uuid are supported"
    ])
  })

  it("accepts what the converter supports", () => {
    expect(unsupportedJsonSchema({
      type: "object",
      properties: { n: { type: "integer", minimum: 1 }, when: { type: "string", format: "date" }, code: { type: "string", pattern: "^[A-Z]{3}$" } },
      required: ["n"],
      additionalProperties: false
    })).toEqual([])
  })
})

describe("jsonSchemaProblems", () => {
  const totals = {
    type: "object",
    properties: { total: { type: "number" }, items: { type: "array", items: { type: "string" }, minItems: 1 }, unit: { enum: ["kg", "g"] } },
    required: ["total", "items"]
  }

  it("finds nothing wrong with a matching value", () => {
    expect(jsonSchemaProblems(totals, { total: 3, items: ["a"], unit: "kg" })).toEqual([])
  })

  it("names each problem by path", () => {
    expect(jsonSchemaProblems(totals, { total: "3", items: [1], unit: "lb" })).toEqual([
      `answer.total: expected "number", got "3"`,
      `answer.items[0]: expected "string", got 1`,
      `answer.unit: expected one of ["kg","g"], got "lb"`
    ])
    expect(jsonSchemaProblems(totals, { items: [] })).toEqual(["answer.total: is missing", "answer.items: fewer than 1 items"])
    expect(jsonSchemaProblems({ anyOf: [{ type: "string" }, { type: "integer" }] }, 1.5)).toEqual(["answer: matches none of the 2 allowed shapes"])
  })
})

describe("an llm_call node's output_schema", () => {
  const metadata = { prompt: "p", created_at: "2026-01-01T00:00:00.000Z", model: "m" }
  const plan = (output_schema: unknown) => JSON.stringify({ nodes: [{ id: "sum", action: "llm_call", prompt_template: "Sum", output_schema }] })

  it("is accepted in the subset, and rejected outside it with a sentence the model can act on", () => {
    expect(Either.isRight(fromJson(plan({ type: "object", properties: { total: { type: "number" } } }), metadata))).toBe(true)
    const rejected = fromJson(plan({ type: "object", properties: { total: { $ref: "#/$defs/N" } } }), metadata)
    expect(Either.isLeft(rejected) && rejected.left.map((error) => error.message)).toEqual([
      `Node "sum" has an output_schema the model server cannot enforce: output_schema.properties.total: "$ref" is not supported (use only ${grammarKeywords.join(", ")}).`
    ])
  })
})
