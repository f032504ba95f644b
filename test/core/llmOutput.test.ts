import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import {
  extractCode,
  extractJson,
  extractJsonValue,
  fencedBlocks,
  isProseParagraph,
  parseDraftAnswer,
  relaxJson,
  stripSurroundingProse,
  stripThinking,
  unwrapFence
} from "../../src/core/llmOutput.ts"

const code = `export function run(args) {\n  return args.a + args.b\n}`

describe("extractCode", () => {
  it("keeps an answer that is only code, ending it with one newline", () => {
    expect(extractCode(code)).toBe(`${code}\n`)
    expect(extractCode(`\n\n${code}\n\n\n`)).toBe(`${code}\n`)
  })

  it("strips ```js, ```javascript and bare ``` fences", () => {
    for (const info of ["js", "javascript", "", "JavaScript "]) {
      expect(extractCode(`\`\`\`${info}\n${code}\n\`\`\``)).toBe(`${code}\n`)
    }
  })

  it("drops the prose before and after a fenced block", () => {
    const answer = `Here is the code:\n\n\`\`\`js\n${code}\n\`\`\`\n\nThis function adds two numbers. Let me know if you need more!`
    expect(extractCode(answer)).toBe(`${code}\n`)
  })

  it("keeps the longest block when the answer adds a short usage example", () => {
    const answer = `\`\`\`js\n${code}\n\`\`\`\n\nUsage:\n\n\`\`\`js\nrun({ a: 1, b: 2 })\n\`\`\``
    expect(extractCode(answer)).toBe(`${code}\n`)
  })

  it("keeps the code of an answer cut off before its closing fence", () => {
    expect(extractCode(`Sure! Here it is:\n\`\`\`js\n${code}`)).toBe(`${code}\n`)
  })

  it("drops leading prose and trailing commentary around unfenced code, keeping the code's blank lines", () => {
    const body = `const a = 1\n\nexport function run() {\n  return a\n}`
    const answer = `Here is the code:\n\n${body}\n\nThis module exports run, which returns\nthe constant a.\n\nNote: it has no dependencies.`
    expect(extractCode(answer)).toBe(`${body}\n`)
  })

  it("keeps a leading comment, which is code and not prose", () => {
    const body = `// Adds two numbers.\n${code}`
    expect(extractCode(`${body}\n`)).toBe(`${body}\n`)
  })

  it("returns nothing for an answer without code", () => {
    expect(extractCode("I cannot help with that.")).toBe("")
    expect(extractCode("")).toBe("")
  })
})

describe("the steps", () => {
  it("fencedBlocks finds each block with its info string, and notes an unclosed one", () => {
    expect(fencedBlocks("a\n```lua\nprint(1)\n```\nb\n~~~\nx\n")).toEqual([
      { info: "lua", body: "print(1)", closed: true },
      { info: "", body: "x\n", closed: false }
    ])
  })

  it("fencedBlocks does not close a block on a shorter fence", () => {
    expect(fencedBlocks("````md\n```js\nx\n```\n````")).toEqual([{ info: "md", body: "```js\nx\n```", closed: true }])
  })

  it("isProseParagraph tells sentences from code", () => {
    expect(isProseParagraph(["Here is the code:"])).toBe(true)
    expect(isProseParagraph(["This function reads the file and", "returns its lines."])).toBe(true)
    expect(isProseParagraph(["Foo.bar(x)"])).toBe(false)
    expect(isProseParagraph(["class Foo:"])).toBe(false)
    expect(isProseParagraph(["// Returns the sum."])).toBe(false)
    expect(isProseParagraph(["Returns { a: 1 }."])).toBe(false)
  })

  it("stripSurroundingProse leaves text that starts and ends with code alone", () => {
    expect(stripSurroundingProse(`${code}\n\nmodule.exports = { run }`)).toBe(`${code}\n\nmodule.exports = { run }`)
  })

  it("unwrapFence removes only a fence around the whole answer, for prose files", () => {
    const doc = "# Title\n\nSome text.\n\nMore text."
    expect(unwrapFence(`\`\`\`markdown\n${doc}\n\`\`\``)).toBe(`${doc}\n`)
    expect(unwrapFence(doc)).toBe(`${doc}\n`)
    const withExample = `${doc}\n\n\`\`\`sh\nls\n\`\`\``
    expect(unwrapFence(withExample)).toBe(`${withExample}\n`)
  })
})

describe("extractJson", () => {
  const ok = (text: string) => {
    const result = extractJson(text)
    if (Either.isLeft(result)) throw new Error(result.left.message)
    return result.right
  }
  const error = (text: string) => {
    const result = extractJson(text)
    if (Either.isRight(result)) throw new Error("expected a failure")
    return result.left.message
  }

  it("reads a bare object, a fenced one and one surrounded by prose", () => {
    expect(ok(`{"a":1}`)).toEqual({ a: 1 })
    expect(ok("Here is the plan:\n```json\n{\"a\": [1, 2]}\n```\nHope it helps!")).toEqual({ a: [1, 2] })
    expect(ok("Sure! The plan is {\"a\": {\"b\": \"}\"}} and that is all.")).toEqual({ a: { b: "}" } })
  })

  it("tolerates comments and trailing commas outside strings, and keeps them inside strings", () => {
    expect(ok(`{
      // the nodes
      "a": [1, 2,], /* why */ "b": "x // not a comment, ",
    }`)).toEqual({ a: [1, 2], b: "x // not a comment, " })
  })

  it("keeps escaped quotes inside strings", () => {
    expect(ok(`{"a": "say \\"hi\\" {"}`)).toEqual({ a: "say \"hi\" {" })
  })

  it("explains an empty answer, an answer without JSON, a truncated object and invalid JSON", () => {
    expect(error("  ")).toContain("The answer was empty")
    expect(error("I cannot do that.")).toContain("holds no JSON object")
    expect(error(`{"nodes": [{"id": "1"`)).toContain("cut off before its closing")
    expect(error(`{nodes: 1}`)).toContain("does not parse")
  })
})

describe("reasoning models, code in JSON, drafts", () => {
  it("stripThinking drops a leading thinking block, or everything up to a lone closing tag", () => {
    expect(stripThinking("<think>\nthe plan needs two nodes\n</think>\n{\"nodes\": []}")).toBe("\n{\"nodes\": []}")
    expect(stripThinking("it needs two nodes</think>{\"nodes\": []}")).toBe("{\"nodes\": []}")
    expect(stripThinking("{\"a\": \"<think>\"}")).toBe("{\"a\": \"<think>\"}")
  })

  it("extractJson reads the answer after a thinking block", () => {
    expect(extractJson("<think>{\"nodes\": \"no\"}</think>\n{\"nodes\": []}")).toEqual(Either.right({ nodes: [] }))
  })

  it("relaxJson escapes raw line breaks and tabs inside strings (code written into JSON by hand)", () => {
    expect(JSON.parse(relaxJson("{\"code\": \"a\n\tb\"}"))).toEqual({ code: "a\n\tb" })
  })

  it("parseDraftAnswer reads {code, tests}, or fenced blocks, or a bare file as the part asked for", () => {
    const code = "/* @skill {\"name\": \"x\"} */\nexport function run() { return 1 }"
    const tests = "const x = require(\"x\")\ntest(\"one\", () => { assert.equal(x.run(), 1) })"
    expect(parseDraftAnswer(JSON.stringify({ code, tests }))).toEqual({ code: `${code}\n`, tests: `${tests}\n` })
    expect(parseDraftAnswer(`Here:\n\`\`\`js\n${code}\n\`\`\`\nAnd tests:\n\`\`\`js\n${tests}\n\`\`\``)).toEqual({ code: `${code}\n`, tests: `${tests}\n` })
    expect(parseDraftAnswer(code)).toEqual({ code: `${code}\n`, tests: "" })
    expect(parseDraftAnswer(tests)).toEqual({ code: "", tests: `${tests}\n` })
    expect(parseDraftAnswer("while (true) {}", "tests")).toEqual({ code: "", tests: "while (true) {}\n" })
    expect(parseDraftAnswer(JSON.stringify({ code }), "code")).toEqual({ code: `${code}\n`, tests: "" })
  })

  it("extractJsonValue reads any JSON value, or falls back to the first object", () => {
    expect(extractJsonValue("[1, 2, 3]")).toEqual(Either.right([1, 2, 3]))
    expect(extractJsonValue("42")).toEqual(Either.right(42))
    expect(extractJsonValue("The totals: {\"total\": 5}.")).toEqual(Either.right({ total: 5 }))
    expect(Either.isLeft(extractJsonValue("no json here"))).toBe(true)
  })
})
