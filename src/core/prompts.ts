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
// One task's calls: plan, draft, tests, rework and graph nodes
//
// Every call of a task sends the same system prompt (`agentSystemPrompt`) and puts what is
// particular to the call in the user message. The long stable part comes first and is byte for
// byte the same from the plan to the last node, so a server with a prompt cache (llama-server's
// `cache_prompt`, Ollama, vLLM's prefix caching) processes it once per task.

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
  - "llm_call": ask the language model. Field: "prompt_template", a text where {node_id} is replaced by that node's result; every node it names must be in its depends_on (directly or through other nodes). Optional "output_schema": a JSON schema (type, properties, required, items, enum) when the answer must be JSON of that shape.
  - "decision": choose a branch. Fields: "condition" (an expression over "result" (the result of its first dependency) or {node_id}: comparisons == != < <= > >=, length, length({id}), contains, starts_with, ends_with, and/or/not, parentheses, numbers and "strings"), "if_true" and "if_false" (ids of nodes that list the decision in their depends_on; the branch not taken is skipped).
- Optional: "max_retries" (default 2).
Use as few nodes as the task needs. Prefer existing skills. Use llm_call for reasoning over text and skills for files, data and exact computation.`

export const planningFewShot = `Example. Request: "Summarise the sales in ~/data/sales.csv and write the summary to ~/data/summary.md"
Skills: read_csv, write_markdown.
Plan:
{"nodes": [
  {"id": "rows", "depends_on": [], "action": "skill", "skill_name": "read_csv", "skill_args": {"path": "~/data/sales.csv", "has_header": true}},
  {"id": "total", "depends_on": [], "action": "skill", "skill_name": "sum_column", "skill_args": {"path": "~/data/sales.csv", "column": "amount"}, "description": "Read a CSV file with a header row and return the sum of the numeric values in the named column as a number; skip empty cells; throw an error naming the column if it does not exist."},
  {"id": "summary", "depends_on": ["rows", "total"], "action": "llm_call", "prompt_template": "Write a three-sentence summary of these sales rows: {rows}. The total is {total}."},
  {"id": "big", "depends_on": ["total"], "action": "decision", "condition": "{total} > 10000", "if_true": "write", "if_false": "note"},
  {"id": "write", "depends_on": ["big", "summary"], "action": "skill", "skill_name": "write_markdown", "skill_args": {"title": "Sales", "sections": [{"heading": "Summary", "body": "{summary}"}], "output_path": "~/data/summary.md"}},
  {"id": "note", "depends_on": ["big"], "action": "llm_call", "prompt_template": "Say in one sentence that sales of {total} were below target."}
]}`

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

/**
 * How much of a prompt's shrinkable parts is kept. A prompt that would not fit the model's
 * context is built again with the next of `shrinkSteps`, each shorter than the one before.
 */
export interface PromptShrink {
  /** `full`: each skill with its description and arguments; `brief`: its name and one line. */
  readonly catalogue: "full" | "brief"
  /** The most characters kept of a node's input, earlier feedback or test output (head and tail); `null`: all. */
  readonly excerpt: number | null
}

export const shrinkSteps: ReadonlyArray<PromptShrink> = [
  { catalogue: "full", excerpt: null },
  { catalogue: "brief", excerpt: null },
  { catalogue: "brief", excerpt: 8_000 },
  { catalogue: "brief", excerpt: 2_000 },
  { catalogue: "brief", excerpt: 500 }
]

/**
 * The most characters of one node's result an llm_call prompt quotes, however much context
 * the model has: results pass between skills whole (a skill may read a large file and hand on
 * its rows), but a model gets an excerpt, with a note saying how much was left out.
 */
export const maxNodeInputChars = 16_000

/** How much of each node result a prompt at this shrink step quotes. */
export const nodeInputExcerpt = (shrink: PromptShrink): number => Math.min(shrink.excerpt ?? maxNodeInputChars, maxNodeInputChars)

/** What a shrink step left out, for the audit log and for a failure message. */
export const describeShrink = (shrink: PromptShrink): ReadonlyArray<string> => [
  ...(shrink.catalogue === "brief" ? ["the skill catalogue cut to names and one line each"] : []),
  ...(shrink.excerpt === null ? [] : [`node inputs and earlier feedback cut to ${shrink.excerpt} characters each`])
]

/**
 * `text` cut to at most `max` characters: its head and its tail around a note saying how much
 * was left out, so the model knows it sees an excerpt. `null` keeps it whole.
 */
export const excerpt = (text: string, max: number | null): string => {
  if (max === null || text.length <= max) return text
  const head = Math.ceil(max * 0.6)
  const tail = Math.floor(max * 0.4)
  return `${text.slice(0, head)}\n[… ${text.length - head - tail} characters left out here to fit the model's context …]\n${text.slice(text.length - tail)}`
}

/** The first sentence of a description, for the brief catalogue. */
const firstSentence = (text: string): string => /^.*?[.!?](?=\s|$)/.exec(text.trim())?.[0] ?? text.trim()

const describeSkill = (skill: SkillSummary, catalogue: PromptShrink["catalogue"]): string => {
  if (catalogue === "brief") return `- ${skill.name}: ${firstSentence(skill.description)}`
  const args = Object.entries(skill.args)
  const argText = args.length === 0 ? "" : ` Args: ${args.map(([name, about]) => `${name} (${about})`).join(", ")}.`
  return `- ${skill.name}: ${skill.description}${argText}`
}

/**
 * The system prompt of every call of a task: who the model is in this agent, the graph format
 * with its example, the sandbox skills run in, and the skill catalogue last (a skill promoted
 * mid-task changes only the end of it).
 */
export const agentSystemPrompt = (context: {
  readonly skills: ReadonlyArray<SkillSummary>
  readonly catalogue: PromptShrink["catalogue"]
}): string =>
  [
    "You are the model inside luallm-agent. In one task you are asked, one request at a time, to plan (turn the user's request into a task graph that the agent executes), to write a missing skill and its tests, to fix a skill whose tests failed, and to answer single steps of the plan. Each request says which job it is; do only that job. You never execute anything yourself.",
    "",
    "# Task graphs",
    graphSchemaDescription,
    "",
    planningFewShot,
    "",
    "# Skills",
    skillEnvironment,
    "",
    skillTestEnvironment,
    "",
    "# Available skills",
    context.skills.length === 0 ? "(none yet)" : context.skills.map((skill) => describeSkill(skill, context.catalogue)).join("\n"),
    "If the request needs a capability no skill has, use a new skill name with a precise \"description\"; the agent will write that skill, test it and ask a human to approve it."
  ].join("\n")

/** The user message of a planning call; after a rejected plan, the errors to fix. */
export const planningUserPrompt = (context: {
  readonly request: string
  readonly feedback: string | null
  readonly models: ReadonlyArray<string>
  readonly shrink: PromptShrink
}): string =>
  [
    `Job: plan. Models running: ${context.models.length === 0 ? "(unknown)" : context.models.join(", ")}.`,
    "",
    `Request: ${context.request}`,
    ...(context.feedback === null ? [] : ["", `Your previous plan was rejected with these errors:\n${excerpt(context.feedback, context.shrink.excerpt)}`]),
    "",
    "Answer with the JSON plan only: no prose, no markdown fences."
  ].join("\n")

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

/** The user message of a first draft: the skill file and its tests, as one JSON object. */
export const skillCodeUserPrompt = (context: SkillDraftContext): string =>
  [
    "Job: write a missing skill and its tests.",
    describeDraft(context),
    `Write the skill file for "${context.name}" and its tests. Declare in "paths" only what it needs, within the allowed paths. The tests (${context.name}.test.js): 3 to 8 focused tests of its behaviour and its errors.`,
    `Answer with one JSON object and nothing else: {"code": "<the whole ${context.name}.js, header first>", "tests": "<the whole ${context.name}.test.js>"}.`
  ].join("\n\n")

/** The user message of a call for tests alone (when a draft came without usable tests). */
export const skillTestUserPrompt = (context: SkillDraftContext, code: string): string =>
  [
    "Job: write the tests of a skill.",
    describeDraft(context),
    `The skill's code:\n${code}`,
    `Write ${context.name}.test.js: 3 to 8 focused tests of its behaviour and its errors.`,
    `Answer with one JSON object and nothing else: {"tests": "<the whole ${context.name}.test.js>"}.`
  ].join("\n\n")

/** The user message of a rework: the code, its tests and exactly how they failed. */
export const skillReworkUserPrompt = (
  context: SkillDraftContext,
  code: string,
  tests: string,
  failure: string,
  shrink: PromptShrink
): string =>
  [
    "Job: fix a skill whose tests failed.",
    describeDraft(context),
    `The current code of ${context.name}.js:\n${code}`,
    `Its tests (${context.name}.test.js):\n${tests}`,
    `The tests failed like this:\n${excerpt(failure, shrink.excerpt)}`,
    `Fix the skill so the tests pass; if a test is clearly wrong about what the skill must do, still fix the code to match the purpose above.`,
    `Answer with one JSON object and nothing else: {"code": "<the whole corrected ${context.name}.js, header first>"}.`
  ].join("\n\n")

/**
 * The user message of a rework whose tests are the problem (they could not run, registered none,
 * or broke inside the test file): the code and new tests, in one answer; the new tests replace
 * the old ones.
 */
export const skillReworkWithTestsUserPrompt = (
  context: SkillDraftContext,
  code: string,
  tests: string,
  problem: string,
  failure: string,
  shrink: PromptShrink
): string =>
  [
    "Job: fix a skill whose tests cannot be used, and write its tests again.",
    describeDraft(context),
    `The current code of ${context.name}.js:\n${code}`,
    `Its tests (${context.name}.test.js):\n${tests === "" ? "(none)" : tests}`,
    `Why the tests must be written again: ${problem}`,
    `How they ran:\n${excerpt(failure, shrink.excerpt)}`,
    `Write the skill file again (fixed if it needs it) and new tests for it: 3 to 8 focused tests of its behaviour and its errors, in a file that only calls test(name, fn) and assert.*, never the skill's own code. They replace the old tests.`,
    `Answer with one JSON object and nothing else: {"code": "<the whole ${context.name}.js, header first>", "tests": "<the whole new ${context.name}.test.js>"}.`
  ].join("\n\n")

/** The user message of an `llm_call` node: its interpolated prompt, and the answer's shape when it declares one. */
export const nodeUserPrompt = (context: {
  readonly id: string
  readonly prompt: string
  readonly outputSchema: unknown
}): string =>
  [
    `Job: answer step "${context.id}" of the plan directly, without preamble.`,
    ...(context.outputSchema === undefined
      ? []
      : [`Answer with one JSON value and nothing else, matching this JSON schema: ${JSON.stringify(context.outputSchema)}`]),
    "",
    context.prompt
  ].join("\n")
