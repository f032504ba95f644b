/**
 * Process entry point. Expected failures (tagged errors) become one message on stderr and
 * a meaningful exit code; only defects (bugs) print a trace. Ctrl-C and SIGTERM interrupt the
 * command at once (skills run in worker threads, so this thread is always free to hear them):
 * what it holds is released, a task keeps its last saved state, and the exit code says so.
 */
import { ValidationError } from "@effect/cli"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Exit, FiberRef, HashSet } from "effect"
import { runCli } from "./cli.ts"
import { ExitCodes, renderError } from "./exit.ts"
import { plainUnlessColour, stderrLines } from "./ui.ts"

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
  // Our log lines are the only ones: runMain's pretty logger would print them again, decorated.
  Effect.locally(FiberRef.currentLoggers, HashSet.make(stderrLines)),
  (effect) => Effect.consoleWith((console) => Effect.withConsole(effect, plainUnlessColour(console))),
  Effect.provide(NodeContext.layer)
)

NodeRuntime.runMain(program, {
  teardown: (exit, onExit) => onExit(Exit.isInterrupted(exit) ? ExitCodes.interrupted : Exit.isFailure(exit) ? ExitCodes.failure : ExitCodes.ok)
})
