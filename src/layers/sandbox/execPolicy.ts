/**
 * The host `exec` capability's policy (SPEC part 16, for `shell_safe`): argv only, never a
 * shell, only read-only tools from a fixed list, and none of their options that write files,
 * delete them, run other programs or never return. Arguments that look like paths are
 * checked by the caller against the skill's paths and `allowed_paths` and replaced by their
 * resolved form; everything else is passed as a plain argument, so `;`, `|`, `$(…)` and
 * globs mean nothing. Commands run in an empty directory, so bare file names find nothing.
 */
import { Either } from "effect"
import { hasParentSegment } from "../../core/pathGlob.ts"

export const allowedCommands = ["ls", "wc", "head", "tail", "grep", "find", "cat", "sort", "uniq"] as const

const isAllowedCommand = (command: string): command is (typeof allowedCommands)[number] =>
  (allowedCommands as ReadonlyArray<string>).includes(command)

/** True for arguments that name a path: absolute, `~`, containing `/`, or a `..` segment. */
export const looksLikePath = (arg: string): boolean =>
  arg.startsWith("/") || arg.startsWith("~") || arg.includes("/") || hasParentSegment(arg)

const findActions = new Set(["-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprint0", "-fprintf", "-fls"])

/** Options of `uniq` that take a value in the next argument. */
const uniqValueOptions = new Set(["-f", "-s", "-w"])

/** Why `arg` is refused for `command`, or undefined when it is fine. */
const refusedOption = (command: (typeof allowedCommands)[number], arg: string): string | undefined => {
  switch (command) {
    case "find":
      return findActions.has(arg) ? `find's ${arg} runs programs, deletes or writes files` : undefined
    case "sort":
      if (/^--(output|compress-program|temporary-directory)(=|$)/.test(arg) || /^-[^-]*[oT]/.test(arg)) {
        return `sort's ${arg} writes files or runs a program`
      }
      return undefined
    case "tail":
      return /^(-[^-]*[fF]|--follow)/.test(arg) ? `tail's ${arg} never returns` : undefined
    default:
      return undefined
  }
}

/**
 * Checks `command` and `args` against the policy. On success, returns the indices of the
 * arguments that must be checked (and replaced) as paths.
 */
export const checkCommand = (command: string, args: ReadonlyArray<string>): Either.Either<ReadonlyArray<number>, string> => {
  if (!isAllowedCommand(command)) {
    return Either.left(`only ${allowedCommands.join(", ")} may be run (as argv, never through a shell)`)
  }
  let operands = 0
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? ""
    const refused = refusedOption(command, arg)
    if (refused !== undefined) return Either.left(refused)
    if (command === "uniq") {
      if (uniqValueOptions.has(arg)) i++
      else if (!arg.startsWith("-") && ++operands > 1) return Either.left("uniq's second operand is an output file it would write")
    }
  }
  return Either.right(args.flatMap((arg, index) => (looksLikePath(arg) ? [index] : [])))
}
