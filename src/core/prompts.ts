/**
 * Every prompt the agent sends, as functions of their context (SPEC part 17): a reader who
 * wants to know what the model is told opens this file and nothing else.
 */

/** What the file being generated holds, from its extension. */
export interface TargetLanguage {
  readonly name: string
  /** Prose files (Markdown, text) keep their sentences; code files lose the model's chatter. */
  readonly kind: "code" | "prose"
}

const languagesByExtension: Readonly<Record<string, TargetLanguage>> = {
  js: { name: "JavaScript", kind: "code" },
  mjs: { name: "JavaScript", kind: "code" },
  cjs: { name: "JavaScript", kind: "code" },
  jsx: { name: "JavaScript (JSX)", kind: "code" },
  ts: { name: "TypeScript", kind: "code" },
  mts: { name: "TypeScript", kind: "code" },
  tsx: { name: "TypeScript (TSX)", kind: "code" },
  lua: { name: "Lua", kind: "code" },
  py: { name: "Python", kind: "code" },
  rb: { name: "Ruby", kind: "code" },
  go: { name: "Go", kind: "code" },
  rs: { name: "Rust", kind: "code" },
  c: { name: "C", kind: "code" },
  h: { name: "C", kind: "code" },
  cpp: { name: "C++", kind: "code" },
  java: { name: "Java", kind: "code" },
  sh: { name: "POSIX shell", kind: "code" },
  bash: { name: "Bash", kind: "code" },
  sql: { name: "SQL", kind: "code" },
  html: { name: "HTML", kind: "code" },
  css: { name: "CSS", kind: "code" },
  json: { name: "JSON", kind: "code" },
  yaml: { name: "YAML", kind: "code" },
  yml: { name: "YAML", kind: "code" },
  toml: { name: "TOML", kind: "code" },
  md: { name: "Markdown", kind: "prose" },
  txt: { name: "plain text", kind: "prose" }
}

/** The language of `path` by its extension; `undefined` when the extension says nothing. */
export const languageForPath = (path: string): TargetLanguage | undefined => {
  const name = path.slice(path.lastIndexOf("/") + 1)
  const dot = name.lastIndexOf(".")
  return dot <= 0 ? undefined : languagesByExtension[name.slice(dot + 1).toLowerCase()]
}

/**
 * The system prompt of `generate`: the seed's code-generator prompt for the target language,
 * or for the file's contents in general when the language is unknown.
 */
export const codeGeneratorSystemPrompt = (language: TargetLanguage | undefined): string =>
  language === undefined
    ? "You are a file generator. Output ONLY the contents of the requested file. No markdown fences, no explanations, no commentary. Start with the first line of the file."
    : language.kind === "prose"
    ? `You are a ${language.name} writer. Output ONLY the ${language.name} document. No surrounding code fences, no preamble, no commentary about the document. Start with its first line.`
    : `You are a ${language.name} code generator. Output ONLY valid ${language.name} code. No markdown fences, no explanations, no commentary. Start with the first line of code.`

/** A file given to the model as reference, with the path as the user wrote it. */
export interface ContextFile {
  readonly path: string
  readonly contents: string
}

/**
 * The user prompt of `generate-with-context`, in the seed's format (step 1A.2): each file
 * under a `--- path ---` header and followed by one blank line, then the request.
 */
export const contextPrompt = (files: ReadonlyArray<ContextFile>, userPrompt: string): string =>
  [
    "Here are existing source files for reference:\n\n",
    ...files.map((file) => `--- ${file.path} ---\n${file.contents.replace(/\n+$/, "")}\n\n`),
    `Now, using these as reference for style, conventions, and available APIs:\n${userPrompt}`
  ].join("")
