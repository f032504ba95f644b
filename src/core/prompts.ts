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

// ---------------------------------------------------------------------------------------------
// Planning

/** A skill as the planner sees it. */
export interface SkillSummary {
  readonly name: string
  readonly description: string
  /** What `run` takes, as its metadata describes it (`{ "path": "string: the file" }`). */
  readonly args: Readonly<Record<string, string>>
}

/** The graph format, written for a model. Kept next to the few-shot example that shows it. */
export const graphSchemaDescription = `A plan is one JSON object: {"nodes": [ ... ]}. Each node has:
- "id": a short unique identifier (letters, digits, "_" or "-"), e.g. "read", "summary", "1".
- "depends_on": the ids of nodes that must finish first (may be []). No cycles.
- "action": one of
  - "skill": run a skill. Fields: "skill_name" (an existing skill, or a new one written as a lowercase identifier like "csv_sum"), "skill_args" (an object of arguments), and for a skill that does not exist yet "description" (what it must do, precisely: inputs, output, edge cases).
  - "llm_call": ask the language model. Field: "prompt_template", a text where {node_id} is replaced by that node's result; every node it names must be in its depends_on (directly or through other nodes).
  - "decision": choose a branch. Fields: "condition" (an expression over "result" (the result of its first dependency) or {node_id}: comparisons == != < <= > >=, length, length({id}), contains, starts_with, ends_with, and/or/not, parentheses, numbers and "strings"), "if_true" and "if_false" (ids of nodes that list the decision in their depends_on; the branch not taken is skipped).
- Optional: "max_retries" (default 2).
Use as few nodes as the task needs. Prefer existing skills. Use llm_call for reasoning over text and skills for files, data and exact computation.`

export const planningFewShot = `Example. Request: "Summarise the sales in ~/data/sales.csv and write the summary to ~/data/summary.md"
Skills: read_csv, write_markdown.
Plan:
{"nodes": [
  {"id": "rows", "action": "skill", "skill_name": "read_csv", "skill_args": {"path": "~/data/sales.csv", "has_header": true}, "depends_on": []},
  {"id": "total", "action": "skill", "skill_name": "sum_column", "skill_args": {"path": "~/data/sales.csv", "column": "amount"}, "description": "Read a CSV file with a header row and return the sum of the numeric values in the named column as a number; skip empty cells; throw an error naming the column if it does not exist.", "depends_on": []},
  {"id": "summary", "action": "llm_call", "prompt_template": "Write a three-sentence summary of these sales rows: {rows}. The total is {total}.", "depends_on": ["rows", "total"]},
  {"id": "big", "action": "decision", "condition": "{total} > 10000", "if_true": "write", "if_false": "note", "depends_on": ["total"]},
  {"id": "write", "action": "skill", "skill_name": "write_markdown", "skill_args": {"title": "Sales", "sections": [{"heading": "Summary", "body": "{summary}"}], "output_path": "~/data/summary.md"}, "depends_on": ["big", "summary"]},
  {"id": "note", "action": "llm_call", "prompt_template": "Say in one sentence that sales of {total} were below target.", "depends_on": ["big"]}
]}`

const describeSkill = (skill: SkillSummary): string => {
  const args = Object.entries(skill.args)
  const argText = args.length === 0 ? "" : ` Args: ${args.map(([name, about]) => `${name} (${about})`).join(", ")}.`
  return `- ${skill.name}: ${skill.description}${argText}`
}

/** The planning system prompt: the skills there are, the models running, the format, an example. */
export const planningSystemPrompt = (context: {
  readonly skills: ReadonlyArray<SkillSummary>
  readonly models: ReadonlyArray<string>
}): string =>
  [
    "You are the planner of luallm-agent. You turn a user's request into a task graph that the agent executes. You never execute anything yourself.",
    "",
    "Available skills:",
    context.skills.length === 0 ? "(none yet)" : context.skills.map(describeSkill).join("\n"),
    "If the request needs a capability no skill has, use a new skill name with a precise \"description\"; the agent will write that skill, test it and ask a human to approve it.",
    "",
    `Models running: ${context.models.length === 0 ? "(unknown)" : context.models.join(", ")}.`,
    "",
    graphSchemaDescription,
    "",
    planningFewShot,
    "",
    "Answer with the JSON plan only: no prose, no markdown fences."
  ].join("\n")

/** The user message of a planning call; after a rejected plan, the errors to fix. */
export const planningUserPrompt = (request: string, feedback: string | null): string =>
  feedback === null
    ? `Request: ${request}`
    : `Request: ${request}\n\nYour previous plan was rejected with these errors:\n${feedback}\nAnswer with a corrected JSON plan only.`

// ---------------------------------------------------------------------------------------------
// Skill drafting

/** What a skill's code can use: the sandbox's contract, told to the model that writes one. */
export const skillEnvironment = `A skill is one JavaScript file that runs in a QuickJS sandbox: plain ECMAScript 2023 only. There is no Node.js, no process, no Buffer, no network, no import of modules other than declared skills. These globals exist:
- fs.readFile(path) → string; fs.writeFile(path, text); fs.appendFile(path, text); fs.exists(path) → boolean; fs.listDir(path) → string[]; fs.mkdir(path); fs.open(path, "r"|"w"|"a") → handle, fs.read(handle, maxBytes) → string (null at the end), fs.write(handle, text), fs.close(handle). Every path must match the skill's declared "paths" (and the user's allowed paths); anything else is refused.
- require("other_skill") for skills listed in "dependencies"; print(...) and console.log/info/warn/error(...) for output; log(event, data) to the audit log.
The file starts with a metadata header, JSON inside a block comment, then the code:
/* @skill {"name": "<name>", "version": "1.0.0", "description": "<one sentence>", "dependencies": [], "paths": ["<globs of the files it reads or writes, e.g. ~/data/**>"], "urls": [], "public_functions": ["run"], "args": {"<arg>": "<type: meaning>"}} */
In "paths", "dir/*" means the entries of dir, "dir/**" everything below it; write a "*/" inside a glob as "*\\/" (e.g. "**\\/*.csv").
Then export the entry point, either as an ES module (export function run(args) { ... }) or as CommonJS (module.exports = { run }). run receives one object of arguments and returns a JSON-compatible value (it may be async). Throw an Error with a clear message for bad input.`

/** What a skill's test file can use. */
export const skillTestEnvironment = `Tests are one JavaScript file, <name>.test.js, run in the same sandbox. Get the skill with const skill = require("<name>") (or import { run } from "<name>" for an ES module skill). Globals: test(name, fn) (fn may be async), describe(name, fn), assert.equal(actual, expected), assert.notEqual, assert.deepEqual, assert.ok(value), assert.throws(fn, /message pattern/), assert.rejects(asyncFn), assert.match(text, /pattern/). Tests must not depend on files existing unless the skill creates them itself; prefer testing the skill's pure logic and its error messages. Writes during tests go to a scratch copy, never to the user's files.`

export interface SkillDraftContext {
  readonly name: string
  readonly purpose: string
  readonly exampleArgs: unknown
  /** The user's request the skill serves. */
  readonly request: string
  readonly allowedPaths: ReadonlyArray<string>
}

const describeDraft = (context: SkillDraftContext): string =>
  [
    `Skill name: ${context.name}`,
    `What it must do: ${context.purpose}`,
    `The plan calls it with arguments like: ${JSON.stringify(context.exampleArgs)}`,
    `The user's request: ${context.request}`,
    `Paths the user allows skills to touch: ${context.allowedPaths.length === 0 ? "(none: the skill must not use fs)" : context.allowedPaths.join(", ")}`
  ].join("\n")

/** System prompt for writing a skill's code (first draft and rework). */
export const skillCodeSystemPrompt = (): string =>
  [
    "You write skills for luallm-agent: small, correct, well-tested JavaScript functions that a human will review before they are trusted.",
    skillEnvironment,
    "Output ONLY the JavaScript file, starting with the /* @skill ... */ header. No markdown fences, no explanations."
  ].join("\n\n")

export const skillCodeUserPrompt = (context: SkillDraftContext): string =>
  `${describeDraft(context)}\n\nWrite the skill file for "${context.name}". Declare in "paths" only what it needs, within the allowed paths.`

/** System prompt for writing a skill's tests. */
export const skillTestSystemPrompt = (): string =>
  [
    "You write the tests of luallm-agent skills.",
    skillTestEnvironment,
    "Output ONLY the JavaScript test file. No markdown fences, no explanations."
  ].join("\n\n")

export const skillTestUserPrompt = (context: SkillDraftContext, code: string): string =>
  `${describeDraft(context)}\n\nThe skill's code:\n${code}\n\nWrite ${context.name}.test.js: 3 to 8 focused tests of its behaviour and its errors.`

/** The user message of a rework: the code, its tests and exactly how they failed. */
export const skillReworkUserPrompt = (context: SkillDraftContext, code: string, tests: string, failure: string): string =>
  [
    describeDraft(context),
    `The current code of ${context.name}.js:\n${code}`,
    `Its tests (${context.name}.test.js):\n${tests}`,
    `The tests failed like this:\n${failure}`,
    `Fix the skill so the tests pass; if a test is clearly wrong about what the skill must do, still fix the code to match the purpose above. Output ONLY the corrected ${context.name}.js file, header first.`
  ].join("\n\n")

// ---------------------------------------------------------------------------------------------
// Graph nodes

/** The system prompt of an `llm_call` node; its user message is the interpolated template. */
export const nodeSystemPrompt = (): string =>
  "You are a careful assistant inside an automated task. Answer the request directly, without preamble."
