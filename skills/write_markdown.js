/* @skill {
  "name": "write_markdown",
  "version": "1.0.0",
  "description": "Renders a Markdown document (the title as a # heading, each section as a ## heading followed by its body) and writes it through write_file, so it refuses to replace an existing file unless overwrite is true, creates missing parent directories, and is bounded by allowed_paths like write_file. Titles and headings are plain text: characters Markdown would read as formatting are escaped and line breaks become spaces. Bodies are Markdown and are written as given (line endings normalised). Returns {path, bytes}. render({title, sections}) returns the text without writing.",
  "dependencies": ["write_file"],
  "paths": [],
  "urls": [],
  "public_functions": ["run", "render"],
  "args": {
    "title": "string: the document title, plain text",
    "sections": "array of {heading: string (plain text), body: string (Markdown)}, in order; may be empty",
    "output_path": "string: the .md file to write; it must lie inside allowed_paths",
    "overwrite": "boolean, default false: true to replace a file that already exists"
  }
} */
import { run as writeFile } from "write_file"

/**
 * A heading's text as literal Markdown: one line, with backslash escapes for the characters
 * that would start emphasis, code, links, HTML, strikethrough or a closing # sequence, and
 * for an & that would begin a named entity (numeric ones, &#…;, are defused by escaping #).
 */
export function escapeHeading(text) {
  return text
    .replace(/\s+/g, " ")
    .trim()
    .replace(/[\\`*_[\]<>#~]/g, "\\$&")
    .replace(/&(?=[A-Za-z][A-Za-z0-9]*;)/g, "\\&")
}

function plainText(value, what) {
  if (typeof value !== "string") throw new TypeError(`${what} must be a string, got ${value === null ? "null" : typeof value}`)
  const text = escapeHeading(value)
  if (text === "") throw new TypeError(`${what} must not be empty`)
  return text
}

/** A body's Markdown with LF line endings and no blank lines at either end. */
const normaliseBody = (body) => body.replace(/\r\n?/g, "\n").replace(/^\s*\n|\s+$/g, "")

function renderSection(section, index) {
  const what = `sections[${index}]`
  if (section === null || typeof section !== "object" || Array.isArray(section)) {
    throw new TypeError(`${what} must be an object like {"heading": "Summary", "body": "…"}, got ${JSON.stringify(section)}`)
  }
  const heading = plainText(section.heading, `${what}.heading`)
  const body = section.body === undefined ? "" : section.body
  if (typeof body !== "string") throw new TypeError(`${what}.body must be a string of Markdown, got ${body === null ? "null" : typeof body}`)
  const text = normaliseBody(body)
  return text === "" ? `## ${heading}\n` : `## ${heading}\n\n${text}\n`
}

/** The document's Markdown text, ending with one newline. */
export function render(document) {
  if (document === null || typeof document !== "object" || Array.isArray(document)) {
    throw new TypeError(`expected {"title": "…", "sections": [{"heading": "…", "body": "…"}]}, got ${JSON.stringify(document)}`)
  }
  const title = plainText(document.title, "title")
  const sections = document.sections === undefined ? [] : document.sections
  if (!Array.isArray(sections)) throw new TypeError(`sections must be an array of {heading, body}, got ${JSON.stringify(sections)}`)
  return [`# ${title}\n`, ...sections.map(renderSection)].join("\n")
}

/** `write` is write_file's run, or in tests anything that takes {path, content, overwrite}. */
export function writeMarkdownWith(write, args) {
  const content = render(args)
  const { output_path: path, overwrite } = args
  if (typeof path !== "string" || path.trim() === "") {
    throw new TypeError(`"output_path" must be a non-empty string naming the .md file to write, got ${JSON.stringify(path)}`)
  }
  if (overwrite !== undefined && typeof overwrite !== "boolean") {
    throw new TypeError(`"overwrite" must be true or false, got ${JSON.stringify(overwrite)}`)
  }
  return write({ path, content, overwrite: overwrite === true })
}

export function run(args) {
  return writeMarkdownWith(writeFile, args)
}
