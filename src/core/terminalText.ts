/**
 * Text from outside (a model's answer, a skill's output, a file name) reaches the terminal
 * only through `sanitizeForTerminal`: escape sequences and other control characters could
 * otherwise move the cursor, rewrite earlier lines or set the window title.
 */

// C0 controls except \n and \t, DEL, and C1 controls (which include the 8-bit CSI).
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g

/** Replaces each control character with a visible `\xNN` / `\u00NN`-style escape. */
export const sanitizeForTerminal = (text: string): string =>
  text.replace(CONTROL, (c) => {
    const code = c.charCodeAt(0)
    return code === 0x1b ? "\\e" : code === 0x0d ? "\\r" : `\\x${code.toString(16).padStart(2, "0")}`
  })
