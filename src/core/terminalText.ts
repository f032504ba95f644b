/**
 * Text from outside (a model's answer, a skill's output, a file name) reaches the terminal
 * only through `sanitizeForTerminal`: escape sequences and other control characters could
 * otherwise move the cursor, rewrite earlier lines or set the window title. Code under review
 * goes further (`reviewText.ts`), with the same escapes.
 */

// C0 controls except \n and \t, DEL, and C1 controls (which include the 8-bit CSI).
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g

/** Whether the code point is a control character the terminal would act on (not \n or \t). */
export const isControlCharacter = (codePoint: number): boolean =>
  (codePoint <= 0x1f && codePoint !== 0x0a && codePoint !== 0x09) || (codePoint >= 0x7f && codePoint <= 0x9f)

/** One character as a visible escape: `\e`, `\r`, `\x0b`, `\u2028`, `\u{e0041}`. */
export const escapeCharacter = (character: string): string => {
  const code = character.codePointAt(0) ?? 0
  if (code === 0x1b) return "\\e"
  if (code === 0x0d) return "\\r"
  if (code === 0x0a) return "\\n"
  if (code === 0x09) return "\\t"
  if (code <= 0xff) return `\\x${code.toString(16).padStart(2, "0")}`
  if (code <= 0xffff) return `\\u${code.toString(16).padStart(4, "0")}`
  return `\\u{${code.toString(16)}}`
}

/** Replaces each control character with a visible `\xNN`-style escape. */
export const sanitizeForTerminal = (text: string): string => text.replace(CONTROL, escapeCharacter)
