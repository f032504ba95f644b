/**
 * How code is shown wherever a human reviews it (the interactive `[V]iew`, `approvals show`,
 * `skills show`): with JavaScript's line numbers in a gutter and every character a reader
 * could not see escaped and marked (reverse video on a terminal, `⟦\u2028⟧` elsewhere), and
 * a warning that names each such character and its line. The rule itself is `core/reviewText.ts`.
 */
import { bracketMark, describeHiddenCharacters, findHiddenCharacters, markHiddenInLine, type Mark, renderForReview } from "../core/reviewText.ts"
import { colourEnabled, dim, warn } from "./ui.ts"

/** Reverse video on a terminal (colour only there), `⟦…⟧` anywhere else. */
export const hiddenMark: Mark = (escaped) => (colourEnabled() ? `\u001b[7;31m${escaped}\u001b[0m` : bracketMark(escaped))

/**
 * A one-line field from a file under review (a description, a path, a test's name), kept on one
 * line with hidden characters, line breaks and tabs shown.
 */
export const reviewed = (text: string): string => markHiddenInLine(text, hiddenMark)

/** Warning lines for the hidden characters of `text` (`what`: "code", "tests"); none when there are none. */
export const hiddenCharacterWarnings = (what: string, text: string, indent = "  "): ReadonlyArray<string> => {
  const found = describeHiddenCharacters(findHiddenCharacters(text))
  if (found.length === 0) return []
  return [
    `${indent}${warn(`${what}: characters a reader cannot see (the code view shows each one escaped and marked):`)}`,
    ...found.map((line) => `${indent}    ${line}`)
  ]
}

/** A file for review: a header naming it, then its text with the gutter and the marks. */
export const codeView = (what: string, file: string, text: string): string =>
  [dim(`--- ${what}: ${reviewed(file)} ---`), renderForReview(text, hiddenMark)].join("\n")
