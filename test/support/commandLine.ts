/**
 * Whether a `luallm-agent …` command line would run, checked in this process the way the CLI
 * reads it: `readCommandLine` first (global options moved, unknown options refused, help
 * requests answered), then @effect/cli's parser against the CLI's own command tree.
 */
import { CliConfig, CommandDescriptor, HelpDoc } from "@effect/cli"
import { NodeContext } from "@effect/platform-node"
import { Effect, Either } from "effect"
import { cli, programName, readCommandLine } from "../../src/shell/cli.ts"

/** The words of a command as a shell splits them (quotes grouped, `&&` ends a command). */
export const shellWords = (command: string): ReadonlyArray<ReadonlyArray<string>> =>
  command.split("&&").map((part) => Array.from(part.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g), (m) => m[1] ?? m[2] ?? m[3] ?? ""))

/** Why `words` (after `luallm-agent`) would not run, or undefined when they parse (or ask for help). */
export const whyNotParsed = (words: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const line = readCommandLine(words)
    if (Either.isLeft(line)) return line.left.message
    if (line.right._tag === "Help") return undefined
    const parsed = yield* Effect.either(CommandDescriptor.parse(cli.descriptor, [programName, ...line.right.args], CliConfig.defaultConfig))
    if (Either.isLeft(parsed)) return HelpDoc.toAnsiText(parsed.left.error).trim()
    const directive = parsed.right
    return directive._tag === "UserDefined" && directive.leftover.length > 0 ? `left over: ${directive.leftover.join(" ")}` : undefined
  }).pipe(Effect.provide(NodeContext.layer))
