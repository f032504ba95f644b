/**
 * The root command and its global options. Subcommands read these with `yield* root`
 * (the @effect/cli parent-command pattern); @effect/cli reads them before the subcommand, and
 * `hoistRootOptions` (argv.ts) moves them there from wherever the user typed them.
 */
import { Command, Options } from "@effect/cli"

export const globalOptions = {
  config: Options.file("config").pipe(
    Options.withPseudoName("FILE"),
    Options.withDescription("The config file to read (default: $LUALLM_AGENT_CONFIG, else ./luallm-agent.json, else ~/.config/luallm-agent/config.json)"),
    Options.optional
  ),
  llm: Options.text("llm").pipe(
    Options.withPseudoName("live|replay:FILE|record:FILE"),
    Options.withDescription(
      "Which model to talk to: live (the default: the server at llm.base_url), replay:FILE (answers from a recorded cassette, no server needed) or record:FILE (live, appending each exchange to FILE)"
    ),
    Options.optional
  ),
  store: Options.text("store").pipe(
    Options.withPseudoName("file|postgres://…"),
    Options.withDescription("Where tasks and the audit log are kept: file (in state_dir, the default) or a Postgres URL, postgres://user:password@host:port/db"),
    Options.optional
  ),
  on: Options.choice("on", ["auto", "cluster", "local"]).pipe(
    Options.withDescription(
      "Where run, resume, status and approvals approve|reject act: auto (the default: on the task cluster when the Postgres store has a worker running), cluster, or local (this process)"
    ),
    Options.withDefault("auto")
  )
}

export const root = Command.make("luallm-agent", globalOptions)
