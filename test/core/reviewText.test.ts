import { describe, expect, it } from "@effect/vitest"
import {
  describeHiddenCharacters,
  findHiddenCharacters,
  hiddenKind,
  markHidden,
  markHiddenInLine,
  renderForReview
} from "../../src/core/reviewText.ts"
import { sanitizeForTerminal } from "../../src/core/terminalText.ts"

/** Runs `code` as a function body: what the engine does with it, not what it looks like. */
const evaluate = (code: string): unknown => new Function(code)()

describe("a U+2028 hidden after a // comment", () => {
  const code = "let wrote = false\n// harmless comment\u2028wrote = true\nreturn wrote\n"

  it("ends the comment for JavaScript, so the code after it runs", () => {
    expect(evaluate(code)).toBe(true)
  })

  it("is found, named with its line, and rendered as the line break it is", () => {
    expect(findHiddenCharacters(code)).toEqual([{ codePoint: 0x2028, kind: "line break", line: 2, column: 20 }])
    expect(describeHiddenCharacters(findHiddenCharacters(code))).toEqual(["line break U+2028 LINE SEPARATOR at line 2"])
    expect(renderForReview(code)).toBe(
      [
        "1 │ let wrote = false",
        "2 │ // harmless comment⟦\\u2028⟧",
        "3 │ wrote = true",
        "4 │ return wrote"
      ].join("\n")
    )
  })

  it("numbers lines as the engine does, so an error's line number points at the right row", () => {
    const thrown = "// a\u2029// b\u2028throw new Error('x')"
    expect(renderForReview(thrown).split("\n")[2]).toBe("3 │ throw new Error('x')")
  })
})

describe("a lone carriage return", () => {
  it("is a line break for JavaScript and is shown as one; \\r\\n is an ordinary line end", () => {
    const code = "let ran = false\r\n// only a comment\rran = true\r\nreturn ran"
    expect(evaluate(code)).toBe(true)
    expect(findHiddenCharacters(code).map((h) => [h.kind, h.line])).toEqual([["line break", 2]])
    expect(renderForReview(code)).toBe("1 │ let ran = false\n2 │ // only a comment⟦\\r⟧\n3 │ ran = true\n4 │ return ran")
  })
})

describe("bidi controls (Trojan Source)", () => {
  // Displayed by a bidi-aware viewer as a comparison with "user", but the string holds the rest.
  const code = `const level = "user"\nif (level != "user\u202E \u2066// Check if admin\u2069 \u2066") {\n  grant()\n}\n`

  it("are each named with the line they are on", () => {
    expect(describeHiddenCharacters(findHiddenCharacters(code))).toEqual([
      "bidi control U+202E RIGHT-TO-LEFT OVERRIDE at line 2",
      "bidi control U+2066 LEFT-TO-RIGHT ISOLATE at line 2",
      "bidi control U+2069 POP DIRECTIONAL ISOLATE at line 2"
    ])
  })

  it("are escaped in the rendered view, which keeps no bidi control", () => {
    const view = renderForReview(code)
    expect(view).toContain(`2 │ if (level != "user⟦\\u202e⟧ ⟦\\u2066⟧// Check if admin⟦\\u2069⟧ ⟦\\u2066⟧") {`)
    expect(view).not.toMatch(/[\u202a-\u202e\u2066-\u2069]/)
  })
})

describe("invisible characters in identifiers and strings", () => {
  it("finds a zero-width non-joiner that makes two different identifiers look the same", () => {
    const code = "const admin = false\nconst admin\u200C = true\nreturn admin\u200C"
    expect(evaluate(code)).toBe(true)
    expect(describeHiddenCharacters(findHiddenCharacters(code))).toEqual(["zero-width character U+200C ZERO WIDTH NON-JOINER at lines 2, 3"])
    expect(renderForReview(code)).toContain("2 │ const admin⟦\\u200c⟧ = true")
  })

  it("finds a Hangul filler used as an identifier", () => {
    const code = "const \u3164 = 'rm'\nrun(\u3164)"
    expect(findHiddenCharacters(code).map((h) => [h.kind, h.line, h.column])).toEqual([["filler", 1, 7], ["filler", 2, 5]])
    expect(describeHiddenCharacters(findHiddenCharacters(code))).toEqual(["filler U+3164 HANGUL FILLER at lines 1, 2"])
  })

  it.each([
    ["soft hyphen", "\u00ad", "invisible format character"],
    ["combining grapheme joiner", "\u034f", "invisible format character"],
    ["Mongolian vowel separator", "\u180e", "invisible format character"],
    ["word joiner", "\u2060", "zero-width character"],
    ["byte order mark", "\ufeff", "zero-width character"],
    ["variation selector", "\ufe0f", "variation selector"],
    ["supplementary variation selector", "\u{e0100}", "variation selector"],
    ["tag character", "\u{e0041}", "tag character"],
    ["no-break space", "\u00a0", "unusual space"],
    ["em space", "\u2003", "unusual space"],
    ["ideographic space", "\u3000", "unusual space"],
    ["escape", "\u001b", "control character"],
    ["vertical tab", "\u000b", "control character"],
    ["form feed", "\u000c", "control character"],
    ["next line (C1)", "\u0085", "control character"],
    ["CSI (C1)", "\u009b", "control character"],
    ["NUL", "\u0000", "control character"],
    ["left-to-right mark", "\u200e", "bidi control"],
    ["Arabic letter mark", "\u061c", "bidi control"],
    ["interlinear annotation", "\ufff9", "invisible format character"]
  ])("classifies a %s", (_, character, kind) => {
    expect(hiddenKind(character, undefined)).toBe(kind)
    const view = renderForReview(`x${character}y`)
    expect(view).toMatch(/^1 │ x⟦\\(e|x[0-9a-f]{2}|u[0-9a-f]{4}|u\{[0-9a-f]+\})⟧y$/)
  })

  it("leaves ordinary text alone: ASCII, tabs, accents, CJK, emoji without selectors", () => {
    const code = "const café = '東京 🙂'\n\tif (a < b) return 'ok'\n"
    expect(findHiddenCharacters(code)).toEqual([])
    expect(renderForReview(code)).toBe("1 │ const café = '東京 🙂'\n2 │ \tif (a < b) return 'ok'")
  })
})

describe("rendering for review", () => {
  it("leaves no hidden or terminal-controlling character in its output, for every code point", () => {
    const leftovers: Array<string> = []
    for (let start = 0; start < 0x110000; start += 0x1000) {
      const chunk = Array.from({ length: 0x1000 }, (_, i) => start + i)
        .filter((code) => code < 0xd800 || code > 0xdfff)
        .map((code) => String.fromCodePoint(code))
        .join("")
      const view = renderForReview(chunk)
      for (const hidden of findHiddenCharacters(view.replace(/^\d+ │ /gm, ""))) leftovers.push(hidden.codePoint.toString(16))
    }
    expect(leftovers).toEqual([])
  })

  it("keeps a one-line field on one line: line breaks and tabs are marked too, for every code point", () => {
    expect(markHiddenInLine("a\nb\tc\u202ed")).toBe("a⟦\\n⟧b⟦\\t⟧c⟦\\u202e⟧d")
    for (let start = 0; start < 0x110000; start += 0x1000) {
      const chunk = Array.from({ length: 0x1000 }, (_, i) => start + i)
        .filter((code) => code < 0xd800 || code > 0xdfff)
        .map((code) => String.fromCodePoint(code))
        .join("")
      const line = markHiddenInLine(chunk)
      expect(line).not.toMatch(/[\n\t]/)
      expect(findHiddenCharacters(line)).toEqual([])
    }
  })

  it("marks with colour or any other marker the caller gives (the shell uses colour on a terminal)", () => {
    expect(renderForReview("a\u200bb", (escaped) => `<${escaped}>`)).toBe("1 │ a<\\u200b>b")
    expect(markHidden("ok\u202eko\n", (escaped) => `[${escaped}]`)).toBe("ok[\\u202e]ko\n")
  })

  it("pads the gutter to the widest line number", () => {
    const view = renderForReview(Array.from({ length: 10 }, (_, i) => `line ${i + 1}`).join("\n"))
    expect(view.split("\n")[0]).toBe(" 1 │ line 1")
    expect(view.split("\n")[9]).toBe("10 │ line 10")
  })

  it("lists at most eight lines of one character, then how many more", () => {
    const code = Array.from({ length: 12 }, () => "a\u00a0b").join("\n")
    expect(describeHiddenCharacters(findHiddenCharacters(code))).toEqual([
      "unusual space U+00A0 NO-BREAK SPACE at lines 1, 2, 3, 4, 5, 6, 7, 8 and 4 more"
    ])
  })

  it("uses the terminal's escapes, one rule for both", () => {
    expect(markHidden("a\u001bb")).toBe(`a⟦${sanitizeForTerminal("\u001b")}⟧b`)
  })
})
