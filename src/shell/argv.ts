/**
 * The command line read against the command tree before @effect/cli parses it.
 *
 * Options a command does not have are found here. Its parser reads an unknown `--yse` in
 * `run --yse x` as the request text and then complains about `x`; this check names the option,
 * the command, and the closest one it has (`--yes`). The known options come from the command tree
 * itself (each command's usage, and the built-ins offered), so a new option needs no change here.
 *
 * So is a request for help (`--help`, `-h`, `help COMMAND`, a group given no subcommand): help.ts
 * shows it, from the same tree.
 *
 * The root's own options (`--config`, `--llm`, `--store`, `--on`) may stand after the command too:
 * `hoistRootOptions` moves them before it, where @effect/cli reads them.
 *
 * `--log-level` is taken out here too and applied to the whole command: @effect/cli's own
 * handling of it depends on where it stands (before a subcommand, or after a flag at the end,
 * it is refused), and our progress lines are log lines it filters.
 */
import { BuiltInOptions, CommandDescriptor, HelpDoc, Options, Usage } from "@effect/cli"
import { levensteinDistance } from "@effect/cli/AutoCorrect"
import * as CliConfig from "@effect/cli/CliConfig"
import { Data, Either, HashMap, LogLevel, Option } from "effect"

export class UnknownOption extends Data.TaggedError("UnknownOption")<{
  readonly option: string
  /** The command as typed so far: `luallm-agent approvals show`. */
  readonly command: string
  readonly suggestion: string | null
}> {
  override get message() {
    const guess = this.suggestion === null ? "" : ` Did you mean ${this.suggestion}?`
    return `${this.command} has no option ${this.option}.${guess} \`${this.command} --help\` lists its options.`
  }
}

/** An option's names and whether it takes a value (`--tail 5`). */
interface KnownOption {
  readonly names: ReadonlyArray<string>
  readonly takesValue: boolean
}

const optionsIn = (usage: Usage.Usage): ReadonlyArray<KnownOption> => {
  switch (usage._tag) {
    case "Named":
      return usage.names.some((name) => name.startsWith("-"))
        ? [{ names: usage.names, takesValue: Option.isSome(usage.acceptedValues) }]
        : []
    case "Optional":
    case "Repeated":
      return optionsIn(usage.usage)
    case "Concat":
    case "Alternation":
      return [...optionsIn(usage.left), ...optionsIn(usage.right)]
    case "Empty":
    case "Mixed":
      return []
  }
}

type Descriptor = CommandDescriptor.Command<unknown>

/**
 * The built-ins of @effect/cli this CLI offers, on every command: `-h/--help`, `--version` and
 * `--log-level LEVEL`. Its `--wizard` and `--completions` are not offered (the help does not
 * describe them, and the wizard waits on a terminal that a script does not have), so they are
 * refused like any unknown option.
 */
const offeredBuiltIns = new Set(["--help", "--version", "--log-level"])
const builtIns = (command: Descriptor): ReadonlyArray<KnownOption> =>
  optionsIn(Options.getUsage(BuiltInOptions.builtInOptions(command, Usage.empty, HelpDoc.empty))).filter((option) =>
    option.names.some((name) => offeredBuiltIns.has(name))
  )

/** `--name`, `-n`, `--name=value`: a word shaped like an option (a request like "-5 °C" is not). */
const optionWord = /^--?[A-Za-z][\w-]*(?:=.*)?$/s

/** A command's name (the first, for a command that has aliases). */
const nameOf = (command: Descriptor): string => Array.from(CommandDescriptor.getNames(command))[0] ?? ""

/** A command and the commands below it (none for one that takes no subcommand). */
export interface CommandNode {
  readonly name: string
  readonly descriptor: Descriptor
  /** The root's in the order given; below it, by name (@effect/cli keeps no order for a command's subcommands). */
  readonly children: ReadonlyArray<CommandNode>
}

const nodeOf = (descriptor: Descriptor): CommandNode => ({
  name: nameOf(descriptor),
  descriptor,
  children: Array.from(HashMap.values(HashMap.remove(CommandDescriptor.getSubcommands(descriptor), nameOf(descriptor))))
    .map(nodeOf)
    .sort((a, b) => a.name.localeCompare(b.name))
})

/**
 * The command tree: the root and, in their order, its subcommands with theirs. They are given
 * whole: the tree @effect/cli gives from the root stops at their names (their own children are
 * listed only by each of them), which is deep enough here.
 */
export const commandTree = (root: Descriptor, subcommands: ReadonlyArray<Descriptor>): CommandNode => ({
  name: nameOf(root),
  descriptor: root,
  children: subcommands.map(nodeOf)
})

/** The words after the program name, as the command tree reads them. */
export interface Reading {
  /** The commands named, the root first: [luallm-agent, approvals, show]. */
  readonly path: ReadonlyArray<CommandNode>
  /** The first option that the command it is given to does not have. */
  readonly unknown: Option.Option<UnknownOption>
  /** The options given, by the name typed (`--help`, `-h`, `--json`), values left out. */
  readonly options: ReadonlyArray<string>
  /** The other words (a request, an id), each with the commands named before it. */
  readonly operands: ReadonlyArray<{ readonly word: string; readonly path: ReadonlyArray<CommandNode> }>
}

/**
 * Reads `args` (the words after the program name) against the command tree. Options of a command
 * are accepted after its subcommands' names too; after `--` every word is an operand.
 */
export const readArgs = (tree: CommandNode, args: ReadonlyArray<string>): Reading => {
  let known: Array<KnownOption> = [...builtIns(tree.descriptor), ...optionsIn(CommandDescriptor.getUsage(tree.descriptor))]
  const path: Array<CommandNode> = [tree]
  const options: Array<string> = []
  const operands: Array<{ readonly word: string; readonly path: ReadonlyArray<CommandNode> }> = []
  let unknown = Option.none<UnknownOption>()
  for (let i = 0; i < args.length; i++) {
    const word = args[i] ?? ""
    if (word === "--") {
      operands.push(...args.slice(i + 1).map((rest) => ({ word: rest, path: [...path] })))
      break
    }
    if (optionWord.test(word)) {
      const name = word.split("=")[0] ?? word
      const option = known.find((candidate) => candidate.names.includes(name))
      options.push(name)
      if (option === undefined && Option.isNone(unknown)) {
        const command = path.map((node) => node.name).join(" ")
        unknown = Option.some(new UnknownOption({ option: name, command, suggestion: closestOption(name, known) }))
      }
      if (option !== undefined && option.takesValue && !word.includes("=")) i++
      continue
    }
    const sub = path.at(-1)?.children.find((child) => child.name === word)
    if (sub === undefined) {
      operands.push({ word, path: [...path] })
    } else {
      known = [...known, ...optionsIn(CommandDescriptor.getUsage(sub.descriptor))]
      path.push(sub)
    }
  }
  return { path, unknown, options, operands }
}

export class UnknownCommand extends Data.TaggedError("UnknownCommand")<{
  readonly word: string
  /** The command as typed so far: `luallm-agent approvals`. */
  readonly command: string
  readonly commands: ReadonlyArray<string>
}> {
  override get message() {
    const near = closest(this.word, this.commands)
    const guess = near === null ? "" : ` Did you mean ${near}?`
    return `${this.command} has no command ${JSON.stringify(this.word)}.${guess} Its commands: ${this.commands.join(", ")}; \`${this.command} --help\` describes them.`
  }
}

/**
 * The command whose help the words ask for, if they do: `--help` or `-h` anywhere (before a `--`)
 * asks for the help of the command named; `help COMMAND…` as the first word for that command's;
 * a command that needs a subcommand (the root, `approvals`, `skills`) given none, nor any other
 * word or `--version`, shows its help rather than an error. A word after `help` that is no command
 * of the one before it is an UnknownCommand.
 */
export const helpAskedFor = (reading: Reading): Option.Option<Either.Either<ReadonlyArray<CommandNode>, UnknownCommand>> => {
  const { operands, options, path } = reading
  if (options.includes("--help") || options.includes("-h")) return Option.some(Either.right(path))
  const [first, ...rest] = operands
  if (first !== undefined && first.word === "help" && first.path.length === 1) {
    const stray = rest.find((operand) => (operand.path.at(-1)?.children.length ?? 0) > 0)
    if (stray === undefined) return Option.some(Either.right(path))
    const command = stray.path.map((node) => node.name).join(" ")
    return Option.some(Either.left(new UnknownCommand({ word: stray.word, command, commands: stray.path.at(-1)?.children.map((child) => child.name) ?? [] })))
  }
  const needsSubcommand = (path.at(-1)?.children.length ?? 0) > 0
  return needsSubcommand && operands.length === 0 && !options.includes("--version") ? Option.some(Either.right(path)) : Option.none()
}

/** The candidate nearest to `word` (at most two edits away), as @effect/cli's own suggestions measure it. */
const closest = (word: string, candidates: ReadonlyArray<string>): string | null =>
  candidates
    .map((candidate) => ({ candidate, distance: levensteinDistance(word, candidate, CliConfig.defaultConfig) }))
    .filter(({ distance }) => distance <= 2)
    .sort((a, b) => a.distance - b.distance)[0]?.candidate ?? null

/** The known long option nearest to `name`. */
const closestOption = (name: string, known: ReadonlyArray<KnownOption>): string | null =>
  closest(name, known.flatMap((option) => option.names.filter((candidate) => candidate.startsWith("--"))))

export class LogLevelInvalid extends Data.TaggedError("LogLevelInvalid")<{ readonly value: string }> {
  override get message() {
    return `--log-level ${JSON.stringify(this.value)} is not a level. Give one of ${levelNames.join(", ")} (warning hides the progress lines, debug shows everything).`
  }
}

const levelNames = LogLevel.allLevels.map((level) => level._tag.toLowerCase())

/**
 * `--log-level LEVEL` (or `--log-level=LEVEL`), wherever it stands before a `--`, taken out of
 * `args`: the level, if one was given, and the words left for the command line parser.
 */
export const takeLogLevel = (
  args: ReadonlyArray<string>
): Either.Either<{ readonly level: Option.Option<LogLevel.LogLevel>; readonly rest: ReadonlyArray<string> }, LogLevelInvalid> => {
  const rest: Array<string> = []
  let value: string | undefined
  for (let i = 0; i < args.length; i++) {
    const word = args[i] ?? ""
    if (word === "--") {
      rest.push(...args.slice(i))
      break
    }
    if (word === "--log-level") {
      value = args[++i] ?? ""
    } else if (word.startsWith("--log-level=")) {
      value = word.slice("--log-level=".length)
    } else {
      rest.push(word)
    }
  }
  if (value === undefined) return Either.right({ level: Option.none(), rest })
  const level = LogLevel.allLevels.find((candidate) => candidate._tag.toLowerCase() === value?.toLowerCase())
  return level === undefined ? Either.left(new LogLevelInvalid({ value })) : Either.right({ level: Option.some(level), rest })
}

/**
 * `args` with the root command's own options (and their values) moved to the front, wherever
 * they stood before a `--`: `run --store postgres://… "request"` parses as
 * `--store postgres://… run "request"`. No subcommand has an option of the same name, so nothing
 * is taken from a command.
 */
export const hoistRootOptions = (root: Descriptor, args: ReadonlyArray<string>): ReadonlyArray<string> => {
  const rootOptions = optionsIn(CommandDescriptor.getUsage(root))
  const hoisted: Array<string> = []
  const rest: Array<string> = []
  for (let i = 0; i < args.length; i++) {
    const word = args[i] ?? ""
    if (word === "--") {
      rest.push(...args.slice(i))
      break
    }
    const option = optionWord.test(word) ? rootOptions.find((candidate) => candidate.names.includes(word.split("=")[0] ?? word)) : undefined
    if (option === undefined) {
      rest.push(word)
    } else if (option.takesValue && !word.includes("=") && i + 1 < args.length) {
      hoisted.push(word, args[++i] ?? "")
    } else {
      hoisted.push(word)
    }
  }
  return [...hoisted, ...rest]
}

