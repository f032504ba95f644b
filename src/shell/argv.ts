/**
 * Options a command does not have, found before @effect/cli parses the command line. Its parser
 * reads an unknown `--yse` in `run --yse x` as the request text and then complains about `x`;
 * this check names the option, the command, and the closest one it has (`--yes`).
 *
 * The known options come from the command tree itself (each command's usage, and
 * @effect/cli's built-ins), so a new option needs no change here.
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

/** @effect/cli's own options (`--help`, `--log-level LEVEL`, …), valid on every command. */
const builtIns = (command: Descriptor): ReadonlyArray<KnownOption> =>
  optionsIn(Options.getUsage(BuiltInOptions.builtInOptions(command, Usage.empty, HelpDoc.empty)))

/** `--name`, `-n`, `--name=value`: a word shaped like an option (a request like "-5 °C" is not). */
const optionWord = /^--?[A-Za-z][\w-]*(?:=.*)?$/s

/** A command's name (the first, for a command that has aliases). */
const nameOf = (command: Descriptor): string => Array.from(CommandDescriptor.getNames(command))[0] ?? ""

/** The commands directly below `command`, by name (one without subcommands lists only itself). */
const childrenOf = (command: Descriptor): HashMap.HashMap<string, Descriptor> =>
  HashMap.remove(CommandDescriptor.getSubcommands(command), nameOf(command))

/**
 * The first option in `args` (the words after the program name) that the command it is given
 * to does not have, or none. Options of a command are accepted after its subcommands' names too.
 * `subcommands` are the root's, whole: the tree @effect/cli gives from the root stops at their
 * names (their own children are listed only by each of them), which is deep enough here.
 */
export const findUnknownOption = (
  program: string,
  root: Descriptor,
  subcommands: ReadonlyArray<Descriptor>,
  args: ReadonlyArray<string>
): Option.Option<UnknownOption> => {
  let known: Array<KnownOption> = [...builtIns(root), ...optionsIn(CommandDescriptor.getUsage(root))]
  let children = HashMap.fromIterable(subcommands.map((command) => [nameOf(command), command] as const))
  const path = [program]
  for (let i = 0; i < args.length; i++) {
    const word = args[i] ?? ""
    if (word === "--") break
    if (optionWord.test(word)) {
      const name = word.split("=")[0] ?? word
      const option = known.find((candidate) => candidate.names.includes(name))
      if (option === undefined) return Option.some(new UnknownOption({ option: name, command: path.join(" "), suggestion: closest(name, known) }))
      if (option.takesValue && !word.includes("=")) i++
      continue
    }
    const sub = HashMap.get(children, word)
    if (Option.isSome(sub)) {
      known = [...known, ...optionsIn(CommandDescriptor.getUsage(sub.value))]
      children = childrenOf(sub.value)
      path.push(word)
    }
  }
  return Option.none()
}

/** The known long option nearest to `name` (at most two edits away), as @effect/cli's own suggestions measure it. */
const closest = (name: string, known: ReadonlyArray<KnownOption>): string | null =>
  known
    .flatMap((option) => option.names.filter((candidate) => candidate.startsWith("--")))
    .map((candidate) => ({ candidate, distance: levensteinDistance(name, candidate, CliConfig.defaultConfig) }))
    .filter(({ distance }) => distance <= 2)
    .sort((a, b) => a.distance - b.distance)[0]?.candidate ?? null

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

