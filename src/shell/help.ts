/**
 * The help of every command, made in this one place from the command tree: each command's own
 * description and those of its arguments and options (what @effect/cli's `getHelp` gives), with
 * @effect/cli's boilerplate left out — the line naming a value's type ("A user-defined piece of
 * text."), "This setting is optional." and the built-ins this CLI does not offer (`--wizard`,
 * `--completions`) — and with examples (below) that work as printed: a test parses each one
 * against the command tree.
 *
 * It is shown for `--help` or `-h`, `help COMMAND`, and a command that needs a subcommand given
 * none (argv.ts `helpAskedFor`), as a HelpDoc rendered by @effect/cli (bold headings on a
 * terminal; main.ts drops colour elsewhere).
 */
import { CliConfig, CommandDescriptor, HelpDoc, Usage } from "@effect/cli"
import * as Span from "@effect/cli/HelpDoc/Span"
import type { CommandNode } from "./argv.ts"

/**
 * Examples per command (by its words after the program name), in the order shown. The ids are
 * examples too (an approval's or task's id, or its first 4+ characters). Written as a shell takes
 * them; template literals, so that the quotes in them are the ones a user types.
 */
export const examples: Readonly<Record<string, ReadonlyArray<string>>> = {
  "": [`luallm-agent doctor`, `luallm-agent run "Summarise ~/data/q1.csv"`, `luallm-agent help run`],
  run: [
    `luallm-agent run "Summarise ~/data/q1.csv"`,
    `luallm-agent run --plan-only "Summarise ~/data/q1.csv"`,
    `luallm-agent run --yes --json "Count the words in ~/notes"`,
    `luallm-agent run --yes --allow-exec "Count the error lines in ~/logs/app.log"`
  ],
  resume: [
    `luallm-agent resume`,
    `luallm-agent resume --task 5f0c --yes`,
    `luallm-agent resume --task 5f0c --allow-exec --json`,
    `luallm-agent resume --task 5f0c --retry-failed`
  ],
  status: [`luallm-agent status`, `luallm-agent status --task 5f0c --json`],
  tasks: [`luallm-agent tasks`, `luallm-agent tasks --json`],
  reset: [`luallm-agent reset --task 5f0c`],
  worker: [`luallm-agent --store postgres://agent:secret@127.0.0.1:5432/agent worker --port 7400`],
  approvals: [`luallm-agent approvals list`, `luallm-agent approvals show 3f2a9c1e`],
  "approvals list": [`luallm-agent approvals list`, `luallm-agent approvals list --json`],
  "approvals show": [`luallm-agent approvals show 3f2a9c1e`],
  "approvals retest": [`luallm-agent approvals retest 3f2a9c1e`],
  "approvals approve": [`luallm-agent approvals approve 3f2a9c1e`],
  "approvals reject": [`luallm-agent approvals reject 3f2a9c1e --reason "it reads files outside ~/data"`],
  skills: [`luallm-agent skills list`, `luallm-agent skills test read_csv`],
  "skills list": [`luallm-agent skills list`, `luallm-agent skills list --json`],
  "skills show": [`luallm-agent skills show read_csv`, `luallm-agent skills show csv_sum --draft`],
  "skills run": [`luallm-agent skills run read_csv --args '{"path": "~/data/q1.csv"}'`],
  "skills test": [`luallm-agent skills test read_csv`, `luallm-agent skills test csv_sum --draft`, `luallm-agent skills test shell_safe --allow-exec`],
  demo: [`luallm-agent demo`],
  doctor: [`luallm-agent doctor`, `luallm-agent --config ./luallm-agent.json doctor --json`],
  config: [`luallm-agent config`, `luallm-agent config --json`],
  log: [`luallm-agent log --tail 20`, `luallm-agent log --task 5f0c --json`],
  stats: [`luallm-agent stats`, `luallm-agent stats --since 2025-06-01 --json`],
  "quick-prompt": [`luallm-agent quick-prompt "Say hello"`, `luallm-agent quick-prompt --model qwen2.5-7b-instruct "What is a CSV file?"`],
  generate: [`luallm-agent generate ~/code/fizzbuzz.py "A Python function fizzbuzz(n) that returns the lines 1..n"`],
  "generate-with-context": [
    `luallm-agent generate-with-context ~/code/test_fizzbuzz.py ~/code/fizzbuzz.py "pytest tests for fizzbuzz"`
  ]
}

/** The options every command takes besides its own: the root's, and the built-ins this CLI offers. */
const builtInOptions: ReadonlyArray<readonly [string, string]> = [
  ["--log-level LEVEL", "How much of the log to print on stderr: all, trace, debug, info (the default: progress lines), warning (hides them), error, fatal or none. It may stand anywhere."],
  ["-h, --help", "Show the help of the command it follows; `luallm-agent help COMMAND` does the same."],
  ["--version", "Print the version."]
]

/** Our descriptions, not @effect/cli's defaults: no built-ins, and usage with one name per option. */
const config: CliConfig.CliConfig = { ...CliConfig.defaultConfig, showBuiltIns: false, showAllNames: false }

/**
 * The sentences @effect/cli adds to a description (after the line naming the type, dropped apart).
 * A default is said in the option's own description: @effect/cli names only some of them.
 */
const boilerplate = [
  /^This setting is optional\./,
  /^This (option|argument) (must|may) be repeated/,
  /^This (option|argument) can be set from environment variables\.$/,
  /^Will prompt the user for input/,
  /^This setting is a property argument/,
  /^May be specified (a single time|multiple times)/
]

const spanText = (span: Span.Span): string => {
  switch (span._tag) {
    case "Text":
    case "URI":
      return span.value
    case "Sequence":
      return spanText(span.left) + spanText(span.right)
    case "Highlight":
    case "Strong":
    case "Weak":
      return spanText(span.value)
  }
}

/** A help document's blocks in order, its sequences flattened. */
const blocksOf = (doc: HelpDoc.HelpDoc): ReadonlyArray<HelpDoc.HelpDoc> =>
  doc._tag === "Sequence" ? [...blocksOf(doc.left), ...blocksOf(doc.right)] : doc._tag === "Empty" ? [] : [doc]

const textOf = (doc: HelpDoc.HelpDoc): string =>
  doc._tag === "Paragraph" || doc._tag === "Header" ? spanText(doc.value) : blocksOf(doc).map(textOf).join("\n")

/** The blocks under each heading (DESCRIPTION, ARGUMENTS, OPTIONS) of a command's own help. */
const sectionsOf = (descriptor: CommandDescriptor.Command<unknown>): ReadonlyMap<string, ReadonlyArray<HelpDoc.HelpDoc>> => {
  const sections = new Map<string, Array<HelpDoc.HelpDoc>>()
  let current: Array<HelpDoc.HelpDoc> = []
  for (const block of blocksOf(CommandDescriptor.getHelp(descriptor, config))) {
    if (block._tag === "Header") sections.set(textOf(block), (current = []))
    else current.push(block)
  }
  return sections
}

/**
 * A command's one-line description: the first line of what it was given with
 * `Command.withDescription` (its own help shows the lines after it too).
 */
export const descriptionOf = (node: CommandNode): string => (sectionsOf(node.descriptor).get("DESCRIPTION") ?? []).map(textOf).join("\n").split("\n")[0] ?? ""

/** Each argument or option of a section with its own description only: the first paragraph (the value's type) and the boilerplate go. */
const definitionsOf = (blocks: ReadonlyArray<HelpDoc.HelpDoc>): ReadonlyArray<readonly [string, ReadonlyArray<string>]> =>
  blocks.flatMap((block) => (block._tag === "DescriptionList" ? block.definitions : [])).map(([term, doc]) => {
    const [, ...paragraphs] = blocksOf(doc).map(textOf)
    const said = paragraphs.filter((text) => !boilerplate.some((pattern) => pattern.test(text)))
    // `(-y, --yes)`: the parentheses group the names in a usage line, not in a list.
    const names = spanText(term).replace(/^\((.*)\)$/s, "$1")
    return [names, said] as const
  })

const definitionList = (definitions: ReadonlyArray<readonly [string, ReadonlyArray<string>]>): ReadonlyArray<HelpDoc.HelpDoc> => {
  const [first, ...rest] = definitions.map(([term, texts]): [Span.Span, HelpDoc.HelpDoc] => [Span.text(term), HelpDoc.blocks(texts.map((text) => HelpDoc.p(text)))])
  return first === undefined ? [] : [HelpDoc.descriptionList([first, ...rest])]
}

/** Lines as one paragraph: HelpDoc puts a blank line between paragraphs. */
const lines = (texts: ReadonlyArray<string>): HelpDoc.HelpDoc => HelpDoc.p(texts.join("\n"))

const section = (title: string, blocks: ReadonlyArray<HelpDoc.HelpDoc>): ReadonlyArray<HelpDoc.HelpDoc> =>
  blocks.length === 0 ? [] : [HelpDoc.h1(title), ...blocks]

/** Each command below `node`, depth first, with its words after `node`'s and its description. */
const commandsBelow = (node: CommandNode, prefix: ReadonlyArray<string> = []): ReadonlyArray<readonly [string, string]> =>
  node.children.flatMap((child) => [[[...prefix, child.name].join(" "), descriptionOf(child)] as const, ...commandsBelow(child, [...prefix, child.name])])

/**
 * The help of the last command of `path` (the root first), as a HelpDoc: title, description,
 * usage, arguments, options, commands below it, examples, and where the global options are.
 */
export const helpFor = (program: string, version: string, path: ReadonlyArray<CommandNode>): HelpDoc.HelpDoc => {
  const node = path.at(-1)
  if (node === undefined) return HelpDoc.empty
  const isRoot = path.length === 1
  const words = path.slice(1).map((command) => command.name)
  const full = [program, ...words].join(" ")
  const sections = sectionsOf(node.descriptor)
  const parents = isRoot ? [] : [program, ...words.slice(0, -1)]
  const commands = commandsBelow(node)
  // @effect/cli leaves out the `<command>` that its usage of a command with subcommands ends with.
  const usage = Usage.enumerate(CommandDescriptor.getUsage(node.descriptor), config)
    .map((span) => [...parents, spanText(span)].join(" "))
    .map((line) => `$ ${commands.length > 0 && !line.endsWith("<command>") ? `${line} <command>` : line}`)
  const width = Math.max(0, ...commands.map(([name]) => name.length)) + 3
  const shown = examples[words.join(" ")] ?? []
  const globals = `Global options (${["--config", "--llm", "--store", "--on", "--log-level"].join(", ")}) go before or after the command: \`${program} --help\` describes them.`
  return HelpDoc.blocks([
    HelpDoc.h1(Span.code(isRoot ? `${program} ${version}` : full)),
    ...(sections.get("DESCRIPTION") ?? []),
    ...section("USAGE", [lines(usage)]),
    ...section("ARGUMENTS", definitionList(definitionsOf(sections.get("ARGUMENTS") ?? []))),
    ...section(isRoot ? "GLOBAL OPTIONS" : "OPTIONS", definitionList([
      ...definitionsOf(sections.get("OPTIONS") ?? []),
      ...(isRoot ? builtInOptions.map(([term, text]) => [term, [text]] as const) : [])
    ])),
    ...section("COMMANDS", commands.length === 0 ? [] : [lines(commands.map(([name, description]) => `  ${name.padEnd(width)}${description}`))]),
    ...section("EXAMPLES", shown.length === 0 ? [] : [lines(shown.map((example) => `$ ${example}`))]),
    ...(commands.length > 0 ? [HelpDoc.p(`\`${full} <command> --help\` describes a command.${isRoot ? "" : ` ${globals}`}`)] : isRoot ? [] : [HelpDoc.p(globals)])
  ])
}
