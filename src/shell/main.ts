/**
 * Process entry point. Expected failures (tagged errors) become one message on stderr and
 * a meaningful exit code; only defects (bugs) print a trace.
 */
import { ValidationError } from "@effect/cli"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect } from "effect"
import { runCli } from "./cli.ts"
import { renderError } from "./errors.ts"
import { ExitCodes } from "./exit.ts"

const program = Effect.suspend(() => runCli(process.argv)).pipe(
  Effect.as<number>(ExitCodes.ok),
  Effect.catchAll((error) => {
    // @effect/cli has already printed a usage problem with the help text.
    if (ValidationError.isValidationError(error)) return Effect.succeed<number>(ExitCodes.usage)
    const rendered = renderError(error)
    return Effect.as(rendered.message === "" ? Effect.void : Console.error(rendered.message), rendered.code)
  }),
  Effect.flatMap((code) =>
    Effect.sync(() => {
      process.exitCode = code
    })
  ),
  Effect.provide(NodeContext.layer)
)

NodeRuntime.runMain(program)
