/**
 * `luallm-agent config`: the effective configuration, each value with where it came from
 * (default, the file, or an environment variable). A Postgres store's password is shown as `***`.
 */
import { Command as Cli, Options } from "@effect/cli"
import { Console, Effect } from "effect"
import { describeSource, describeStore, leafKeys } from "../../core/config.ts"
import { AppConfig } from "../../layers/Config.ts"
import { provideConfig } from "../runtime.ts"
import { dim, printJson } from "../ui.ts"

const valueAt = (value: unknown, key: ReadonlyArray<string>): unknown =>
  key.reduce<unknown>(
    (current, part) => (typeof current === "object" && current !== null ? (current as Record<string, unknown>)[part] : undefined),
    value
  )

export const configCommand = Cli.make(
  "config",
  { json: Options.boolean("json").pipe(Options.withDescription("Print { file, values, sources } as JSON")) },
  ({ json }) =>
    Effect.gen(function*() {
      const app = yield* AppConfig
      const shown = { ...app.config, store: describeStore(app.config.store) }
      const keys = leafKeys(shown).map((key) => key.join("."))
      const sourceOf = (key: string) => describeSource(app.sources.get(key) ?? { _tag: "default" })
      if (json) {
        return yield* printJson({
          file: app.file._tag === "Some" ? app.file.value : null,
          values: shown,
          sources: Object.fromEntries(keys.map((key) => [key, sourceOf(key)]))
        })
      }
      yield* Console.log(`config file: ${app.file._tag === "Some" ? app.file.value : "(none found; defaults and environment)"}`)
      for (const key of keys) {
        const value = JSON.stringify(valueAt(shown, key.split(".")))
        yield* Console.log(`${key} = ${value}  ${dim(`(${sourceOf(key)})`)}`)
      }
    }).pipe(provideConfig)
).pipe(Cli.withDescription("Print the effective configuration and where each value came from"))
