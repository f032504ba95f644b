import { describe, expect, it } from "@effect/vitest"
import {
  agentSystemPrompt,
  codeGeneratorSystemPrompt,
  contextPrompt,
  describeShrink,
  excerpt,
  graphSchemaDescription,
  languageForPath,
  nodeUserPrompt,
  planningFewShot,
  planningUserPrompt,
  type PromptShrink,
  shrinkSteps,
  skillCodeUserPrompt,
  skillEnvironment,
  skillReworkUserPrompt,
  type SkillSummary,
  skillTestUserPrompt
} from "../../src/core/prompts.ts"

describe("codeGeneratorSystemPrompt", () => {
  it("is the seed's code-generator prompt for the file's language", () => {
    expect(codeGeneratorSystemPrompt(languageForPath("skills/read_csv.js"))).toBe(
      "You are a JavaScript code generator. Output ONLY valid JavaScript code. No markdown fences, no explanations, no commentary. Start with the first line of code."
    )
    expect(codeGeneratorSystemPrompt(languageForPath("src/audit.lua"))).toContain("You are a Lua code generator.")
  })

  it("asks for a document, not code, for prose files", () => {
    expect(codeGeneratorSystemPrompt(languageForPath("README.md"))).toContain("You are a Markdown writer.")
  })

  it("asks for the file's contents when the extension says nothing", () => {
    expect(languageForPath("Makefile")).toBeUndefined()
    expect(languageForPath(".env")).toBeUndefined()
    expect(codeGeneratorSystemPrompt(undefined)).toContain("Output ONLY the contents of the requested file.")
  })

  it("reads the extension case-insensitively, ignoring dots in directory names", () => {
    expect(languageForPath("out.v2/Main.TS")?.name).toBe("TypeScript")
    expect(languageForPath("out.v2/Main")).toBeUndefined()
  })
})

describe("contextPrompt", () => {
  it("prepends the files in the seed's format, one blank line after each", () => {
    const prompt = contextPrompt(
      [
        { path: "src/config.lua", contents: "local M = {}\nreturn M\n" },
        { path: "src/luallm.lua", contents: "return {}" }
      ],
      "Write audit.lua"
    )
    expect(prompt).toBe(
      "Here are existing source files for reference:\n\n" +
        "--- src/config.lua ---\nlocal M = {}\nreturn M\n\n" +
        "--- src/luallm.lua ---\nreturn {}\n\n" +
        "Now, using these as reference for style, conventions, and available APIs:\nWrite audit.lua"
    )
  })
})

const full: PromptShrink = { catalogue: "full", excerpt: null }

describe("agent prompts (snapshots: a changed prompt is a reviewed change)", () => {
  const skills: ReadonlyArray<SkillSummary> = [
    { name: "read_csv", description: "Parses a CSV file. Handles quoted fields and headers.", args: { path: "string: the file", has_header: "boolean" } },
    { name: "write_file", description: "Writes a text file", args: {} }
  ]
  const draft = {
    name: "word_count",
    purpose: "Count the words in a text file.",
    exampleArgs: { path: "/data/notes.txt" },
    request: "How many words are in /data/notes.txt?",
    allowedPaths: ["/data/**"]
  }

  it("every call of a task shares one system prompt: role, graph format, example, sandbox, then the skills", () => {
    const prompt = agentSystemPrompt({ skills, catalogue: "full" })
    expect(prompt).toContain("- read_csv: Parses a CSV file. Handles quoted fields and headers. Args: path (string: the file), has_header (boolean).")
    expect(prompt).toContain(graphSchemaDescription)
    expect(prompt).toContain(planningFewShot)
    expect(prompt).toContain(skillEnvironment)
    // The catalogue comes last: a skill promoted mid-task changes only the end of the prefix.
    expect(prompt.indexOf("# Available skills")).toBeGreaterThan(prompt.indexOf(skillEnvironment))
    expect(prompt).toMatchSnapshot()
    expect(agentSystemPrompt({ skills: [], catalogue: "full" })).toContain("(none yet)")
  })

  it("the brief catalogue keeps each skill's name and first sentence", () => {
    const prompt = agentSystemPrompt({ skills, catalogue: "brief" })
    expect(prompt).toContain("- read_csv: Parses a CSV file.\n- write_file: Writes a text file")
    expect(prompt).not.toContain("Handles quoted fields")
    expect(prompt.length).toBeLessThan(agentSystemPrompt({ skills, catalogue: "full" }).length)
  })

  it("planning: the user prompt names the job, the models, the request, and the errors on a retry", () => {
    expect(planningUserPrompt({ request: "Sum the sales", feedback: null, models: ["qwen2.5-7b"], shrink: full })).toBe(
      "Job: plan. Models running: qwen2.5-7b.\n\nRequest: Sum the sales\n\nAnswer with the JSON plan only: no prose, no markdown fences."
    )
    expect(planningUserPrompt({ request: "Sum the sales", feedback: "- cycle a → b → a", models: [], shrink: full })).toMatchSnapshot()
  })

  it("skill drafting, tests and rework", () => {
    expect(skillCodeUserPrompt(draft)).toMatchSnapshot()
    expect(skillTestUserPrompt(draft, "export function run() {}")).toMatchSnapshot()
    expect(skillReworkUserPrompt(draft, "CODE", "TESTS", "1 of 2 tests failed", full)).toMatchSnapshot()
    expect(skillCodeUserPrompt({ ...draft, allowedPaths: [] })).toContain("(none: the skill must not use fs)")
  })

  it("graph nodes and the code generator", () => {
    expect(nodeUserPrompt({ id: "summary", prompt: "Summarise: x", outputSchema: undefined })).toMatchSnapshot()
    expect(nodeUserPrompt({ id: "totals", prompt: "Sum: 1 2", outputSchema: { type: "object" } })).toContain(
      `matching this JSON schema: {"type":"object"}`
    )
    expect(codeGeneratorSystemPrompt(languageForPath("a.js"))).toMatchSnapshot()
  })
})

describe("shrinking a prompt to fit the context", () => {
  it("excerpt keeps the head and the tail around a note of what was left out", () => {
    const text = "a".repeat(600) + "b".repeat(400)
    const cut = excerpt(text, 100)
    expect(cut).toBe(`${"a".repeat(60)}\n[… 900 characters left out here to fit the model's context …]\n${"b".repeat(40)}`)
    expect(excerpt(text, null)).toBe(text)
    expect(excerpt("short", 100)).toBe("short")
  })

  it("each step is shorter than the one before and says what it shortened", () => {
    expect(shrinkSteps[0]).toEqual({ catalogue: "full", excerpt: null })
    expect(describeShrink(shrinkSteps[0] ?? full)).toEqual([])
    expect(describeShrink(shrinkSteps.at(-1) ?? full)).toEqual([
      "the skill catalogue cut to names and one line each",
      "node inputs and earlier feedback cut to 500 characters each"
    ])
    const feedback = "x".repeat(20_000)
    const lengths = shrinkSteps.map((shrink) => skillReworkUserPrompt(draft(), "CODE", "TESTS", feedback, shrink).length)
    expect(lengths.slice(2).every((length, i) => length < (lengths[i + 1] ?? Infinity))).toBe(true)
  })
})

const draft = () => ({ name: "w", purpose: "p", exampleArgs: {}, request: "r", allowedPaths: [] })
