/**
 * The host `exec` capability's policy (SPEC parts 16 and 18): which commands run, with which
 * options, and which of their arguments name files. Pure: it reads an argv and says what it
 * means; `globals.ts` then checks every file it names like `fs` does and runs the command.
 *
 * Why a parser and not a list of bad options: GNU tools accept `--outp` for `--output`,
 * `-no FILE` for `-n -o FILE`, `-oFILE`, an option's value in the next word and options after
 * the operands, so a deny-list is always one spelling short. Here every command has a table of
 * the options known to be safe (they only change what is printed), each option is parsed the
 * way getopt_long parses it, and anything not in the table — unknown, abbreviated, a value
 * where none belongs — is refused. The command then receives a canonical argv built from the
 * parse, not the skill's words: each option alone in its exact long form (`--lines=5`) or as
 * `-X VALUE`, then `--`, then the operands. So the tool's own parser can only see what this
 * parser saw, and an operand can never be read as an option.
 *
 * Arguments that name files (operands, and values such as `grep -f FILE` or `find -newer FILE`)
 * come back as `Path` words for the caller to check and replace by their resolved path. A
 * relative one is left as written: commands run in an empty directory of their own, so it names
 * nothing there. Options that make the command walk below its operands (`grep -r`, `ls -R`,
 * `find`) are reported, so the caller can require that everything below is allowed.
 */
import { Either } from "effect"

export const allowedCommands = ["ls", "wc", "head", "tail", "grep", "find", "cat", "sort", "uniq"] as const
export type AllowedCommand = (typeof allowedCommands)[number]

/**
 * What an option's value is: opaque text the tool never opens or runs (a count, a regex, a
 * glob, a format), one of fixed words, or a file the tool reads (checked like an operand).
 */
export type ValueKind = "text" | "path" | ReadonlyArray<string>

export interface OptionSpec {
  /** The short name without `-`, e.g. `n`. */
  readonly short?: string
  /** The long name without `--`, e.g. `lines`. */
  readonly long?: string
  /** Absent for a flag. */
  readonly value?: ValueKind
  /** The option makes the command read everything below its operands. */
  readonly recurses?: boolean
  /** grep's `-e`/`-f`: the patterns come from the option, so every operand is a file. */
  readonly givesPattern?: boolean
}

/** How a command's operands are read. */
export type Operands =
  | "files" // every operand is a file the command reads
  | "pattern-then-files" // grep: the first operand is the pattern, unless -e/-f gave one
  | "one-file" // uniq: a second operand would be an output file

export interface CommandSpec {
  readonly options: ReadonlyArray<OptionSpec>
  /** Known options that are refused, with why (`-o` / `--output` → "writes files"). */
  readonly refused: Readonly<Record<string, string>>
  readonly operands: Operands
  /** Arguments the host always passes first (grep never blocks on a FIFO or device). */
  readonly fixed?: ReadonlyArray<string>
  /** head/tail: `-5` as the first argument means `--lines=5` (the obsolescent form). */
  readonly obsoleteCount?: boolean
}

const flag = (short: string | undefined, long?: string, extra: Partial<OptionSpec> = {}): OptionSpec => ({
  ...(short === undefined ? {} : { short }),
  ...(long === undefined ? {} : { long }),
  ...extra
})
const withValue = (short: string | undefined, long: string | undefined, value: ValueKind, extra: Partial<OptionSpec> = {}): OptionSpec =>
  flag(short, long, { value, ...extra })

const followsSymlinks = "follows symlinks, which can lead outside the checked paths"
const listOfFiles = "reads a list of file names from a file, past the path checks"

/** Options of `head` and `tail` that only choose what is printed. */
const headTailOptions: ReadonlyArray<OptionSpec> = [
  withValue("c", "bytes", "text"),
  withValue("n", "lines", "text"),
  flag("q", "quiet"),
  flag(undefined, "silent"),
  flag("v", "verbose"),
  flag("z", "zero-terminated")
]

/** The tables: one per command, options as GNU coreutils 9 / grep 3 document them. */
export const commandSpecs: Readonly<Record<Exclude<AllowedCommand, "find">, CommandSpec>> = {
  cat: {
    options: [
      flag("A", "show-all"),
      flag("b", "number-nonblank"),
      flag("e"),
      flag("E", "show-ends"),
      flag("n", "number"),
      flag("s", "squeeze-blank"),
      flag("t"),
      flag("T", "show-tabs"),
      flag("u"),
      flag("v", "show-nonprinting")
    ],
    refused: {},
    operands: "files"
  },
  ls: {
    options: [
      flag("a", "all"),
      flag("A", "almost-all"),
      flag("b", "escape"),
      flag("B", "ignore-backups"),
      flag("c"),
      flag("C"),
      flag("d", "directory"),
      flag("f"),
      flag("F", "classify"),
      flag("g"),
      flag("G", "no-group"),
      flag("h", "human-readable"),
      flag(undefined, "si"),
      flag("i", "inode"),
      flag("k", "kibibytes"),
      flag("l"),
      flag("m"),
      flag("n", "numeric-uid-gid"),
      flag("N", "literal"),
      flag("o"),
      flag("p"),
      flag("q", "hide-control-chars"),
      flag(undefined, "show-control-chars"),
      flag("Q", "quote-name"),
      flag("r", "reverse"),
      flag("R", "recursive", { recurses: true }),
      flag("s", "size"),
      flag("S"),
      flag("t"),
      flag("u"),
      flag("U"),
      flag("v"),
      flag("x"),
      flag("X"),
      flag("1"),
      flag(undefined, "full-time"),
      flag(undefined, "group-directories-first"),
      withValue(undefined, "sort", ["none", "size", "time", "version", "extension", "width"]),
      withValue(undefined, "time", ["atime", "access", "use", "ctime", "status", "birth", "creation", "mtime", "modification"]),
      withValue(undefined, "format", ["across", "commas", "horizontal", "long", "single-column", "verbose", "vertical"]),
      withValue(undefined, "indicator-style", ["none", "slash", "file-type", "classify"]),
      withValue(undefined, "quoting-style", ["literal", "locale", "shell", "shell-always", "shell-escape", "shell-escape-always", "c", "escape"]),
      withValue(undefined, "time-style", "text"),
      withValue(undefined, "block-size", "text"),
      withValue("w", "width", "text"),
      withValue("T", "tabsize", "text"),
      withValue("I", "ignore", "text"),
      withValue(undefined, "hide", "text")
    ],
    refused: {
      "-L": followsSymlinks,
      "--dereference": followsSymlinks,
      "-H": followsSymlinks,
      "--dereference-command-line": followsSymlinks,
      "--dereference-command-line-symlink-to-dir": followsSymlinks
    },
    operands: "files"
  },
  wc: {
    options: [
      flag("c", "bytes"),
      flag("m", "chars"),
      flag("l", "lines"),
      flag("L", "max-line-length"),
      flag("w", "words"),
      withValue(undefined, "total", ["auto", "always", "only", "never"])
    ],
    refused: { "--files0-from": listOfFiles },
    operands: "files"
  },
  head: { options: headTailOptions, refused: {}, operands: "files", obsoleteCount: true },
  tail: {
    options: headTailOptions,
    refused: {
      "-f": "follows the file and never returns",
      "--follow": "follows the file and never returns",
      "-F": "follows the file and never returns",
      "--retry": "keeps trying to open the file",
      "--pid": "waits for another process",
      "-s": "only matters while following a file",
      "--sleep-interval": "only matters while following a file",
      "--max-unchanged-stats": "only matters while following a file"
    },
    operands: "files",
    obsoleteCount: true
  },
  sort: {
    options: [
      flag("b", "ignore-leading-blanks"),
      flag("d", "dictionary-order"),
      flag("f", "ignore-case"),
      flag("g", "general-numeric-sort"),
      flag("i", "ignore-nonprinting"),
      flag("M", "month-sort"),
      flag("h", "human-numeric-sort"),
      flag("n", "numeric-sort"),
      flag("R", "random-sort"),
      flag("r", "reverse"),
      flag("V", "version-sort"),
      flag("c", "check"),
      flag("C"),
      flag("m", "merge"),
      flag("s", "stable"),
      flag("u", "unique"),
      flag("z", "zero-terminated"),
      flag(undefined, "debug"),
      withValue("k", "key", "text"),
      withValue("t", "field-separator", "text"),
      withValue(undefined, "sort", ["general-numeric", "human-numeric", "month", "numeric", "random", "version"])
    ],
    refused: {
      "-o": "writes files: it names the file sort writes its output to",
      "--output": "writes files: it names the file sort writes its output to",
      "-T": "writes files: temporary files go to the host's own directory for the run",
      "--temporary-directory": "writes files: temporary files go to the host's own directory for the run",
      "--compress-program": "runs another program",
      "--files0-from": listOfFiles,
      "--random-source": "reads a file of its own choosing",
      "-S": "sets how much memory sort takes, which the host leaves at its default",
      "--buffer-size": "sets how much memory sort takes, which the host leaves at its default",
      "--parallel": "sets how many threads sort starts, which the host leaves at its default"
    },
    operands: "files"
  },
  uniq: {
    options: [
      flag("c", "count"),
      flag("d", "repeated"),
      flag("D"),
      flag("i", "ignore-case"),
      flag("u", "unique"),
      flag("z", "zero-terminated"),
      withValue("f", "skip-fields", "text"),
      withValue("s", "skip-chars", "text"),
      withValue("w", "check-chars", "text")
    ],
    refused: {},
    operands: "one-file"
  },
  grep: {
    options: [
      flag("E", "extended-regexp"),
      flag("F", "fixed-strings"),
      flag("G", "basic-regexp"),
      flag("P", "perl-regexp"),
      flag("i", "ignore-case"),
      flag("y"),
      flag(undefined, "no-ignore-case"),
      flag("v", "invert-match"),
      flag("w", "word-regexp"),
      flag("x", "line-regexp"),
      flag("c", "count"),
      flag("L", "files-without-match"),
      flag("l", "files-with-matches"),
      flag("o", "only-matching"),
      flag("q", "quiet"),
      flag(undefined, "silent"),
      flag("s", "no-messages"),
      flag("b", "byte-offset"),
      flag("H", "with-filename"),
      flag("h", "no-filename"),
      flag("n", "line-number"),
      flag("T", "initial-tab"),
      flag("Z", "null"),
      flag("z", "null-data"),
      flag("a", "text"),
      flag("I"),
      flag("U", "binary"),
      flag(undefined, "line-buffered"),
      flag("r", "recursive", { recurses: true }),
      withValue("e", "regexp", "text", { givesPattern: true }),
      withValue("f", "file", "path", { givesPattern: true }),
      withValue("m", "max-count", "text"),
      withValue("A", "after-context", "text"),
      withValue("B", "before-context", "text"),
      withValue("C", "context", "text"),
      withValue(undefined, "include", "text"),
      withValue(undefined, "exclude", "text"),
      withValue(undefined, "exclude-dir", "text"),
      withValue(undefined, "exclude-from", "path"),
      withValue(undefined, "binary-files", ["binary", "text", "without-match"]),
      withValue(undefined, "label", "text")
    ],
    refused: {
      "-R": `${followsSymlinks}; use -r, which does not follow them`,
      "--dereference-recursive": `${followsSymlinks}; use -r, which does not follow them`,
      "-d": "chooses how directories are read (recurse would skip the recursion checks); use -r to search below a directory",
      "--directories": "chooses how directories are read (recurse would skip the recursion checks); use -r to search below a directory",
      "-D": "chooses how devices and FIFOs are read; the host always skips them so a search never blocks",
      "--devices": "chooses how devices and FIFOs are read; the host always skips them so a search never blocks"
    },
    operands: "pattern-then-files",
    fixed: ["--devices=skip"]
  }
}

/** One word of the argv the command receives: as is, or a file to check and replace. */
export type Word =
  | { readonly _tag: "Literal"; readonly text: string }
  | {
    readonly _tag: "Path"
    /** The file name as the skill wrote it. */
    readonly path: string
    /** Put before the resolved path in the same word (`--file=`), or "". */
    readonly prefix: string
    /** An operand (a starting point of a recursion) or an option's value (read as one file). */
    readonly role: "operand" | "value"
  }

export interface ParsedCommand {
  readonly command: AllowedCommand
  readonly words: ReadonlyArray<Word>
  /** The command reads everything below its operands (grep -r, ls -R, find). */
  readonly recursive: boolean
  /** What makes it recursive, for the refusal message (`-r`, `find`). */
  readonly recursion: string
}

export const isAllowedCommand = (command: string): command is AllowedCommand =>
  (allowedCommands as ReadonlyArray<string>).includes(command)

const literal = (text: string): Word => ({ _tag: "Literal", text })
const pathWord = (path: string, prefix: string, role: "operand" | "value"): Word => ({ _tag: "Path", path, prefix, role })

/** The canonical spelling of an option: its long form when it has one. */
const canonicalName = (option: OptionSpec): string => (option.long !== undefined ? `--${option.long}` : `-${option.short ?? ""}`)

/** The option and its value as the command receives them. */
const emit = (option: OptionSpec, value: string | undefined): ReadonlyArray<Word> => {
  const name = canonicalName(option)
  if (value === undefined) return [literal(name)]
  const joined = option.long !== undefined
  if (option.value === "path") return joined ? [pathWord(value, `${name}=`, "value")] : [literal(name), pathWord(value, "", "value")]
  return joined ? [literal(`${name}=${value}`)] : [literal(name), literal(value)]
}

const describeChoices = (choices: ReadonlyArray<string>) => choices.join(", ")

/** The options a command allows, for a refusal message. */
export const allowedOptionsOf = (spec: CommandSpec): string =>
  spec.options
    .map((option) => {
      const names = [option.short === undefined ? undefined : `-${option.short}`, option.long === undefined ? undefined : `--${option.long}`]
        .filter((name) => name !== undefined)
        .join("/")
      return option.value === undefined ? names : `${names} VALUE`
    })
    .join(", ")

interface Parser {
  readonly command: AllowedCommand
  readonly spec: CommandSpec
  readonly args: ReadonlyArray<string>
}

/** A refusal: one sentence saying what was refused and why. */
type Refused = string

const unknownOption = ({ command, spec }: Parser, spelled: string): Refused => {
  const reason = spec.refused[spelled]
  if (reason !== undefined) return `${command}'s ${spelled} ${reason}`
  return `${spelled} is not an option ${command} may be given (it allows ${allowedOptionsOf(spec)})`
}

/** `--name` / `--name=value` / `--name value`: exact names only, never abbreviations. */
const parseLong = (p: Parser, index: number): Either.Either<{ readonly words: ReadonlyArray<Word>; readonly next: number; readonly option: OptionSpec }, Refused> => {
  const arg = p.args[index] ?? ""
  const equals = arg.indexOf("=")
  const name = equals === -1 ? arg.slice(2) : arg.slice(2, equals)
  const option = p.spec.options.find((o) => o.long === name)
  if (option === undefined) {
    const refusedLongs = Object.keys(p.spec.refused).filter((key) => key.startsWith("--"))
    const longs = [...p.spec.options.flatMap((o) => (o.long === undefined ? [] : [`--${o.long}`])), ...refusedLongs]
    const spelled = `--${name}`
    if (p.spec.refused[spelled] !== undefined) return Either.left(unknownOption(p, spelled))
    const expansions = name === "" ? [] : longs.filter((long) => long.startsWith(spelled))
    if (expansions.length > 0) {
      const refusedOne = expansions.find((long) => p.spec.refused[long] !== undefined)
      return Either.left(
        refusedOne !== undefined
          ? `${spelled} abbreviates ${refusedOne}, and ${p.command}'s ${refusedOne} ${p.spec.refused[refusedOne] ?? ""}`
          : `${spelled} is an abbreviation (of ${expansions.join(" or ")}); write long options in full`
      )
    }
    return Either.left(unknownOption(p, spelled))
  }
  if (option.value === undefined) {
    return equals === -1 ? Either.right({ words: emit(option, undefined), next: index + 1, option }) : Either.left(`${p.command}'s --${name} takes no value`)
  }
  const value = equals === -1 ? p.args[index + 1] : arg.slice(equals + 1)
  if (value === undefined) return Either.left(`${p.command}'s --${name} needs a value (write --${name}=VALUE)`)
  return Either.map(checkValue(p, `--${name}`, option, value), () => ({ words: emit(option, value), next: equals === -1 ? index + 2 : index + 1, option }))
}

const checkValue = (p: Parser, spelled: string, option: OptionSpec, value: string): Either.Either<void, Refused> => {
  const kind = option.value
  if (kind === undefined || kind === "text" || kind === "path") return Either.void
  return kind.includes(value) ? Either.void : Either.left(`${p.command}'s ${spelled} must be one of ${describeChoices(kind)}, not "${value}"`)
}

/** `-x`, `-xyz` (flags together), `-nVALUE`, `-n VALUE`: getopt's reading of a short cluster. */
const parseShort = (p: Parser, index: number): Either.Either<{ readonly words: Array<Word>; readonly next: number; readonly options: Array<OptionSpec> }, Refused> => {
  const arg = p.args[index] ?? ""
  const words: Array<Word> = []
  const options: Array<OptionSpec> = []
  for (let j = 1; j < arg.length; j++) {
    const letter = arg[j] ?? ""
    const spelled = `-${letter}`
    const option = p.spec.options.find((o) => o.short === letter)
    if (option === undefined) {
      const inCluster = arg.length > 2 ? ` (in ${arg})` : ""
      return Either.left(`${unknownOption(p, spelled)}${inCluster}`)
    }
    options.push(option)
    if (option.value === undefined) {
      words.push(...emit(option, undefined))
      continue
    }
    const joined = arg.slice(j + 1)
    const value = joined !== "" ? joined : p.args[index + 1]
    if (value === undefined) return Either.left(`${p.command}'s ${spelled} needs a value (the next argument)`)
    const checked = checkValue(p, spelled, option, value)
    if (Either.isLeft(checked)) return Either.left(checked.left)
    words.push(...emit(option, value))
    return Either.right({ words, next: joined !== "" ? index + 1 : index + 2, options })
  }
  return Either.right({ words, next: index + 1, options })
}

const parseWithSpec = (command: Exclude<AllowedCommand, "find">, args: ReadonlyArray<string>): Either.Either<ParsedCommand, Refused> => {
  const spec = commandSpecs[command]
  const p: Parser = { command, spec, args }
  const optionWords: Array<Word> = []
  const operands: Array<string> = []
  let recursion: string | undefined
  let patternGiven = false
  const used = (option: OptionSpec, spelled: string) => {
    if (option.recurses === true) recursion ??= spelled
    if (option.givesPattern === true) patternGiven = true
  }
  let index = 0
  const first = args[0]
  if (spec.obsoleteCount === true && first !== undefined && /^-\d+$/.test(first)) {
    optionWords.push(literal(`--lines=${first.slice(1)}`))
    index = 1
  }
  while (index < args.length) {
    const arg = args[index] ?? ""
    if (arg === "--") {
      operands.push(...args.slice(index + 1))
      break
    }
    if (arg.startsWith("--")) {
      const parsed = parseLong(p, index)
      if (Either.isLeft(parsed)) return Either.left(parsed.left)
      optionWords.push(...parsed.right.words)
      used(parsed.right.option, arg.split("=")[0] ?? arg)
      index = parsed.right.next
    } else if (arg.startsWith("-") && arg !== "-") {
      if (spec.obsoleteCount === true && /^-\d+$/.test(arg)) {
        return Either.left(`${command} reads a bare count like ${arg} only as its first argument; write -n ${arg.slice(1)}`)
      }
      const parsed = parseShort(p, index)
      if (Either.isLeft(parsed)) return Either.left(parsed.left)
      optionWords.push(...parsed.right.words)
      for (const option of parsed.right.options) used(option, `-${option.short ?? ""}`)
      index = parsed.right.next
    } else {
      // GNU tools permute: an operand does not end the options, so later options still count.
      operands.push(arg)
      index++
    }
  }
  if (spec.operands === "one-file" && operands.length > 1) {
    return Either.left(`${command}'s second operand is an output file it would write; give it one input file`)
  }
  const pattern = spec.operands === "pattern-then-files" && !patternGiven ? operands.slice(0, 1) : []
  const files = operands.slice(pattern.length)
  const words: Array<Word> = [
    ...(spec.fixed ?? []).map(literal),
    ...optionWords,
    literal("--"),
    ...pattern.map(literal),
    ...files.map((file) => pathWord(file, "", "operand"))
  ]
  return Either.right({ command, words, recursive: recursion !== undefined, recursion: recursion ?? "" })
}

// ---- find ------------------------------------------------------------------------------------

/** What a word of a find expression is: it stands alone, or takes a value of some kind. */
type FindToken = { readonly value?: ValueKind }

const alone: FindToken = {}
const text: FindToken = { value: "text" }
const file: FindToken = { value: "path" }

/** find's expression words that only test, print or steer the walk (findutils 4.9). */
export const findExpression: Readonly<Record<string, FindToken>> = {
  // operators
  "(": alone,
  ")": alone,
  "!": alone,
  ",": alone,
  "-not": alone,
  "-a": alone,
  "-and": alone,
  "-o": alone,
  "-or": alone,
  // options of the walk
  "-depth": alone,
  "-mount": alone,
  "-xdev": alone,
  "-noleaf": alone,
  "-ignore_readdir_race": alone,
  "-noignore_readdir_race": alone,
  "-daystart": alone,
  "-warn": alone,
  "-nowarn": alone,
  "-maxdepth": text,
  "-mindepth": text,
  "-regextype": text,
  // tests
  "-empty": alone,
  "-executable": alone,
  "-readable": alone,
  "-writable": alone,
  "-false": alone,
  "-true": alone,
  "-nogroup": alone,
  "-nouser": alone,
  "-amin": text,
  "-atime": text,
  "-cmin": text,
  "-ctime": text,
  "-mmin": text,
  "-mtime": text,
  "-used": text,
  "-fstype": text,
  "-gid": text,
  "-uid": text,
  "-group": text,
  "-user": text,
  "-inum": text,
  "-links": text,
  "-name": text,
  "-iname": text,
  "-path": text,
  "-ipath": text,
  "-wholename": text,
  "-iwholename": text,
  "-lname": text,
  "-ilname": text,
  "-regex": text,
  "-iregex": text,
  "-perm": text,
  "-size": text,
  "-type": text,
  "-context": text,
  "-newer": file,
  "-anewer": file,
  "-cnewer": file,
  "-samefile": file,
  // actions that print to stdout
  "-print": alone,
  "-print0": alone,
  "-printf": text,
  "-ls": alone,
  "-prune": alone,
  "-quit": alone
}

export const findRefused: Readonly<Record<string, string>> = {
  "-exec": "runs programs",
  "-execdir": "runs programs",
  "-ok": "runs programs",
  "-okdir": "runs programs",
  "-delete": "deletes files",
  "-fprint": "writes files",
  "-fprint0": "writes files",
  "-fprintf": "writes files",
  "-fls": "writes files",
  "-follow": followsSymlinks,
  "-L": followsSymlinks,
  "-H": followsSymlinks,
  "-xtype": "looks through symlinks, which can reach outside the checked paths",
  "-files0-from": listOfFiles,
  "-D": "is a debugging option",
  "-O": "is a debugging option"
}

/** `-newerXY REFERENCE`: Y = t reads REFERENCE as a date, anything else as a file. */
const newerToken = (word: string): FindToken | undefined => {
  const match = /^-newer([aBcm])([aBcmt])$/.exec(word)
  if (match === null) return undefined
  return match[2] === "t" ? text : file
}

const isExpressionStart = (word: string): boolean => word.startsWith("-") || ["(", ")", "!", ","].includes(word)

/** `find [-P] [starting-point…] [expression]`: every expression word from the table. */
const parseFind = (args: ReadonlyArray<string>): Either.Either<ParsedCommand, Refused> => {
  let index = 0
  const words: Array<Word> = []
  while (args[index] === "-P") index++
  while (index < args.length && !isExpressionStart(args[index] ?? "")) {
    words.push(pathWord(args[index] ?? "", "", "operand"))
    index++
  }
  const maxDepths: Array<string> = []
  for (; index < args.length; index++) {
    const word = args[index] ?? ""
    const refused = findRefused[word] ?? (/^-O\d*$/.test(word) ? findRefused["-O"] : undefined)
    if (refused !== undefined) return Either.left(`find's ${word} ${refused}`)
    const token = findExpression[word] ?? newerToken(word)
    if (token === undefined) {
      return Either.left(
        isExpressionStart(word)
          ? `find's ${word} is not a test, action or operator find may be given (it allows ${Object.keys(findExpression).join(" ")} and -newerXY)`
          : `find reads "${word}" as part of its expression, where it means nothing: starting points come before the expression`
      )
    }
    words.push(literal(word))
    if (token.value === undefined) continue
    const value = args[index + 1]
    if (value === undefined) return Either.left(`find's ${word} needs a value (the next argument)`)
    index++
    if (word === "-maxdepth") maxDepths.push(value)
    words.push(token.value === "path" ? pathWord(value, "", "value") : literal(value))
  }
  // `-maxdepth 0` (and no other depth) looks at the starting points only.
  const walks = !(maxDepths.length > 0 && maxDepths.every((depth) => depth === "0"))
  return Either.right({ command: "find", words, recursive: walks, recursion: walks ? "find" : "" })
}

/**
 * Reads `command` and `args` against the policy: the canonical argv with the words that name
 * files marked, or why it is refused (one sentence for `CommandNotAllowed`).
 */
export const parseCommand = (command: string, args: ReadonlyArray<string>): Either.Either<ParsedCommand, string> => {
  if (!isAllowedCommand(command)) {
    return Either.left(`only ${allowedCommands.join(", ")} may be run (as argv, never through a shell)`)
  }
  return command === "find" ? parseFind(args) : parseWithSpec(command, args)
}
