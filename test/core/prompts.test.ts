import { describe, expect, it } from "@effect/vitest"
import {
  codeGeneratorSystemPrompt,
  contextPrompt,
  graphSchemaDescription,
  languageForPath,
  nodeSystemPrompt,
  planningFewShot,
  planningSystemPrompt,
  planningUserPrompt,
  skillCodeSystemPrompt,
  skillCodeUserPrompt,
  skillReworkUserPrompt,
  skillTestSystemPrompt,
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

describe("agent prompts (snapshots: a changed prompt is a reviewed change)", () => {
  const skills: ReadonlyArray<SkillSummary> = [
    { name: "read_csv", description: "Parses a CSV file", args: { path: "string: the file", has_header: "boolean" } },
    { name: "write_file", description: "Writes a text file", args: {} }
  ]
  const draft = {
    name: "word_count",
    purpose: "Count the words in a text file.",
    exampleArgs: { path: "/data/notes.txt" },
    request: "How many words are in /data/notes.txt?",
    allowedPaths: ["/data/**"]
  }

  it("planning: the system prompt lists skills, models, the graph schema and the example", () => {
    const prompt = planningSystemPrompt({ skills, models: ["qwen2.5-7b"] })
    expect(prompt).toContain("- read_csv: Parses a CSV file Args: path (string: the file), has_header (boolean).")
    expect(prompt).toContain("Models running: qwen2.5-7b.")
    expect(prompt).toContain(graphSchemaDescription)
    expect(prompt).toContain(planningFewShot)
    expect(prompt).toMatchSnapshot()
    expect(planningSystemPrompt({ skills: [], models: [] })).toContain("(none yet)")
  })

  it("planning: the user prompt carries the previous errors on a retry", () => {
    expect(planningUserPrompt("Sum the sales", null)).toBe("Request: Sum the sales")
    expect(planningUserPrompt("Sum the sales", "- cycle a → b → a")).toMatchSnapshot()
  })

  it("skill drafting, tests and rework", () => {
    expect(skillCodeSystemPrompt()).toMatchSnapshot()
    expect(skillCodeUserPrompt(draft)).toMatchSnapshot()
    expect(skillTestSystemPrompt()).toMatchSnapshot()
    expect(skillTestUserPrompt(draft, "export function run() {}")).toMatchSnapshot()
    expect(skillReworkUserPrompt(draft, "CODE", "TESTS", "1 of 2 tests failed")).toMatchSnapshot()
    expect(skillCodeUserPrompt({ ...draft, allowedPaths: [] })).toContain("(none: the skill must not use fs)")
  })

  it("graph nodes and the code generator", () => {
    expect(nodeSystemPrompt()).toMatchSnapshot()
    expect(codeGeneratorSystemPrompt(languageForPath("a.js"))).toMatchSnapshot()
  })
})
