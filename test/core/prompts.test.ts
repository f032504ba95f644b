import { describe, expect, it } from "@effect/vitest"
import { codeGeneratorSystemPrompt, contextPrompt, languageForPath } from "../../src/core/prompts.ts"

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
