/**
 * `luallm-agent config`: the effective configuration, each value with where it came from
 * (default, the file, or an environment variable). Secrets (`llm.api_key`) are shown only as
 * set or not, with their source, and a Postgres store's password as `***`: the output is safe to
 * paste into an issue.
 */
import { Command as Cli, Options } from "@effect/cli"
import { Console, Effect } from "effect"
import { describeSource, describeStore, leafKeys, maskSecrets, secretKeys } from "../../core/config.ts"
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
  { json: Options.boolean("json").pipe(Options.withDescription("Print { file, values, sources } as JSON (secrets masked)")) },
  ({ json }) =>
    Effect.gen(function*() {
      const app = yield* AppConfig
      const values = maskSecrets({ ...app.config, store: describeStore(app.config.store) })
      const keys = leafKeys(app.config).map((key) => key.join("."))
      const sourceOf = (key: string) => describeSource(app.sources.get(key) ?? { _tag: "default" })
      if (json) {
        return yield* printJson({
          file: app.file._tag === "Some" ? app.file.value : null,
          values,
          sources: Object.fromEntries(keys.map((key) => [key, sourceOf(key)]))
        })
      }
      yield* Console.log(`config file: ${app.file._tag === "Some" ? app.file.value : "(none found; defaults and environment)"}`)
      for (const key of keys) {
        const value = valueAt(values, key.split("."))
        yield* Console.log(`${key} = ${secretKeys.has(key) && typeof value === "string" ? value : JSON.stringify(value)}  ${dim(`(${sourceOf(key)})`)}`)
      }
    }).pipe(provideConfig)
).pipe(Cli.withDescription("Print the effective configuration and where each value came from\nllm.api_key is shown only as set or not, and from where."))
