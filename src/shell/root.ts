/**
 * The root command and its global options. Subcommands read these with `yield* root`
 * (the @effect/cli parent-command pattern); @effect/cli reads them before the subcommand, and
 * `hoistRootOptions` (argv.ts) moves them there from wherever the user typed them.
 */
import { Command, Options } from "@effect/cli"

export const globalOptions = {
  config: Options.file("config").pipe(
    Options.withDescription("Config file (default: $LUALLM_AGENT_CONFIG, ./luallm-agent.json, ~/.config/luallm-agent/config.json)"),
    Options.optional
  ),
  llm: Options.text("llm").pipe(
    Options.withDescription("Which LLM to talk to: live (default), replay:<cassette.jsonl> or record:<cassette.jsonl>"),
    Options.optional
  ),
  store: Options.text("store").pipe(
    Options.withDescription("Where tasks and the audit log are kept: file (state_dir, the default) or postgres://user:password@host:port/db"),
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
