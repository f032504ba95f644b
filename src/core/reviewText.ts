/**
 * What a reviewer sees must be exactly what runs. Some characters change what code does
 * without showing: U+2028 ends a `//` comment for JavaScript but not for the eye, bidi
 * controls reorder what a terminal displays (Trojan Source), zero-width and other invisible
 * format characters hide inside identifiers and strings. This module finds them
 * (`findHiddenCharacters`), names them for a warning (`describeHiddenCharacters`) and renders
 * code for review (`renderForReview`): each one escaped and marked, with a line-number gutter
 * that counts lines the way JavaScript does, so a hidden line break cannot merge two lines.
 * The drafting step refuses drafts that contain any of them, with the same names.
 */
import { escapeCharacter, isControlCharacter } from "./terminalText.ts"

export type HiddenKind =
  | "line break"
  | "control character"
  | "bidi control"
  | "zero-width character"
  | "variation selector"
  | "tag character"
  | "filler"
  | "unusual space"
  | "invisible format character"

export interface HiddenCharacter {
  readonly codePoint: number
  readonly kind: HiddenKind
  /** 1-based, counting lines as JavaScript does (\n, \r\n, a lone \r, U+2028, U+2029). */
  readonly line: number
  /** 1-based, in code points. */
  readonly column: number
}

const BIDI = new Set([0x061c, 0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069])
const ZERO_WIDTH = new Set([0x200b, 0x200c, 0x200d, 0x2060, 0xfeff])
/** Letters that draw nothing, usable in identifiers. */
const FILLERS = new Set([0x115f, 0x1160, 0x3164, 0xffa0, 0x2800])
const UNUSUAL_SPACE = /\p{Zs}/u
/** Format characters and everything Unicode says to draw as nothing (soft hyphen, U+034F, U+180E…). */
const INVISIBLE = /[\p{Cf}\p{Default_Ignorable_Code_Point}]/u

/** Names for the characters met most, so a warning says more than a code point. */
const NAMES: ReadonlyMap<number, string> = new Map([
  [0x0d, "CARRIAGE RETURN"],
  [0x0b, "LINE TABULATION"],
  [0x0c, "FORM FEED"],
  [0x1b, "ESCAPE"],
  [0x85, "NEXT LINE"],
  [0x00, "NULL"],
  [0x08, "BACKSPACE"],
  [0x2028, "LINE SEPARATOR"],
  [0x2029, "PARAGRAPH SEPARATOR"],
  [0x061c, "ARABIC LETTER MARK"],
  [0x200e, "LEFT-TO-RIGHT MARK"],
  [0x200f, "RIGHT-TO-LEFT MARK"],
  [0x202a, "LEFT-TO-RIGHT EMBEDDING"],
  [0x202b, "RIGHT-TO-LEFT EMBEDDING"],
  [0x202c, "POP DIRECTIONAL FORMATTING"],
  [0x202d, "LEFT-TO-RIGHT OVERRIDE"],
  [0x202e, "RIGHT-TO-LEFT OVERRIDE"],
  [0x2066, "LEFT-TO-RIGHT ISOLATE"],
  [0x2067, "RIGHT-TO-LEFT ISOLATE"],
  [0x2068, "FIRST STRONG ISOLATE"],
  [0x2069, "POP DIRECTIONAL ISOLATE"],
  [0x200b, "ZERO WIDTH SPACE"],
  [0x200c, "ZERO WIDTH NON-JOINER"],
  [0x200d, "ZERO WIDTH JOINER"],
  [0x2060, "WORD JOINER"],
  [0xfeff, "ZERO WIDTH NO-BREAK SPACE"],
  [0x00ad, "SOFT HYPHEN"],
  [0x034f, "COMBINING GRAPHEME JOINER"],
  [0x180e, "MONGOLIAN VOWEL SEPARATOR"],
  [0x115f, "HANGUL CHOSEONG FILLER"],
  [0x1160, "HANGUL JUNGSEONG FILLER"],
  [0x3164, "HANGUL FILLER"],
  [0xffa0, "HALFWIDTH HANGUL FILLER"],
  [0x2800, "BRAILLE PATTERN BLANK"],
  [0x00a0, "NO-BREAK SPACE"],
  [0x202f, "NARROW NO-BREAK SPACE"],
  [0x3000, "IDEOGRAPHIC SPACE"]
])

const isLineTerminator = (codePoint: number): boolean =>
  codePoint === 0x0a || codePoint === 0x0d || codePoint === 0x2028 || codePoint === 0x2029

/**
 * Which kind of hidden character `character` is, or `undefined` for one a reader sees as it
 * is (\n, \t, a \r before \n, and every visible character). `next` is the character after it.
 */
export const hiddenKind = (character: string, next: string | undefined): HiddenKind | undefined => {
  const code = character.codePointAt(0) ?? 0
  if (code === 0x0a || code === 0x09 || (code === 0x0d && next === "\n")) return undefined
  if (code === 0x0d || code === 0x2028 || code === 0x2029) return "line break"
  if (isControlCharacter(code)) return "control character"
  if (BIDI.has(code)) return "bidi control"
  if (ZERO_WIDTH.has(code)) return "zero-width character"
  if ((code >= 0xfe00 && code <= 0xfe0f) || (code >= 0xe0100 && code <= 0xe01ef)) return "variation selector"
  if (code >= 0xe0000 && code <= 0xe007f) return "tag character"
  if (FILLERS.has(code)) return "filler"
  if (code !== 0x20 && UNUSUAL_SPACE.test(character)) return "unusual space"
  if (INVISIBLE.test(character)) return "invisible format character"
  return undefined
}

/** One JavaScript line: its text and the terminator that ended it ("" at the end of the text). */
interface SourceLine {
  readonly text: string
  readonly terminator: string
}

/** Splits `text` into lines exactly where JavaScript ends them. */
const sourceLines = (text: string): ReadonlyArray<SourceLine> => {
  const lines: Array<SourceLine> = []
  let start = 0
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (!isLineTerminator(code)) continue
    const terminator = code === 0x0d && text.charCodeAt(i + 1) === 0x0a ? "\r\n" : text.charAt(i)
    lines.push({ text: text.slice(start, i), terminator })
    i += terminator.length - 1
    start = i + 1
  }
  lines.push({ text: text.slice(start), terminator: "" })
  return lines
}

/** Every hidden character of `text`, in order, with where it is. */
export const findHiddenCharacters = (text: string): ReadonlyArray<HiddenCharacter> =>
  sourceLines(text).flatMap((line, index) => {
    const found: Array<HiddenCharacter> = []
    let column = 0
    for (const character of line.text) {
      column++
      const kind = hiddenKind(character, undefined)
      if (kind !== undefined) found.push({ codePoint: character.codePointAt(0) ?? 0, kind, line: index + 1, column })
    }
    const ending = hiddenKind(line.terminator.charAt(0), line.terminator.charAt(1) || undefined)
    if (line.terminator !== "" && ending !== undefined) {
      found.push({ codePoint: line.terminator.codePointAt(0) ?? 0, kind: ending, line: index + 1, column: column + 1 })
    }
    return found
  })

const hex = (codePoint: number): string => `U+${codePoint.toString(16).toUpperCase().padStart(4, "0")}`

const lineList = (lines: ReadonlyArray<number>): string => {
  const shown = lines.slice(0, 8).join(", ")
  const more = lines.length > 8 ? ` and ${lines.length - 8} more` : ""
  return `${lines.length === 1 ? "line" : "lines"} ${shown}${more}`
}

/**
 * One line per distinct character, in order of first appearance:
 * `line break U+2028 LINE SEPARATOR at line 3`, `zero-width character U+200B ZERO WIDTH SPACE at lines 4, 9`.
 */
export const describeHiddenCharacters = (found: ReadonlyArray<HiddenCharacter>): ReadonlyArray<string> => {
  const groups = new Map<number, { readonly kind: HiddenKind; readonly lines: Array<number> }>()
  for (const hidden of found) {
    const group = groups.get(hidden.codePoint) ?? { kind: hidden.kind, lines: [] }
    if (group.lines.at(-1) !== hidden.line) group.lines.push(hidden.line)
    groups.set(hidden.codePoint, group)
  }
  return Array.from(groups, ([codePoint, { kind, lines }]) => {
    const name = NAMES.get(codePoint)
    return `${kind} ${hex(codePoint)}${name === undefined ? "" : ` ${name}`} at ${lineList(lines)}`
  })
}

/** How a hidden character is marked in a review: `⟦\u2028⟧` off a terminal, colour on one. */
export type Mark = (escaped: string) => string

export const bracketMark: Mark = (escaped) => `⟦${escaped}⟧`

/** `text` with every hidden character escaped and marked; \n and \t stay, a \r is always shown. */
export const markHidden = (text: string, mark: Mark = bracketMark): string => {
  let out = ""
  for (const character of text) out += hiddenKind(character, undefined) === undefined ? character : mark(escapeCharacter(character))
  return out
}

/**
 * A one-line field from a file under review (a description, a path, a test's name or failure)
 * as one line: every hidden character marked, and line breaks and tabs too, so the field
 * cannot start a line of its own that looks like one of the summary's.
 */
export const markHiddenInLine = (text: string, mark: Mark = bracketMark): string => {
  let out = ""
  for (const character of text) {
    out += character === "\n" || character === "\t" || hiddenKind(character, undefined) !== undefined ? mark(escapeCharacter(character)) : character
  }
  return out
}

/**
 * `text` as a reviewer must see it: a gutter with JavaScript's line numbers, and every hidden
 * character (a line break other than \n or \r\n included, at the end of the line it ends)
 * escaped and marked. Nothing invisible or terminal-controlling is left in the output.
 */
export const renderForReview = (text: string, mark: Mark = bracketMark): string => {
  const lines = sourceLines(text)
  // A final newline ends the last line; it does not start an empty one.
  const shown = lines.length > 1 && lines.at(-1)?.text === "" ? lines.slice(0, -1) : lines
  const width = String(shown.length).length
  return shown.map((line, index) => {
    const body = markHidden(line.text, mark)
    const ending = line.terminator === "\n" || line.terminator === "\r\n" || line.terminator === "" ? "" : mark(escapeCharacter(line.terminator))
    return `${String(index + 1).padStart(width)} │ ${body}${ending}`
  }).join("\n")
}
