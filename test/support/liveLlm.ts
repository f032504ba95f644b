/** The Live `Llm` layer as the CLI builds it, over real HTTP, for tests against the loopback server. */
import { NodeHttpClient } from "@effect/platform-node"
import { Context, Effect, Layer } from "effect"
import { type AgentConfig, defaultConfig } from "../../src/core/config.ts"
import { AppConfigFrom } from "../../src/layers/Config.ts"
import { Llm, LlmLive } from "../../src/layers/Llm.ts"
import { LuallmLive } from "../../src/layers/Luallm.ts"
import { TestPlatform } from "./tmp.ts"

/** Defaults inside `dir`, no luallm (discovery must not be needed unless a test sets up a state file), a 1 s idle limit. */
export const configFor = (
  dir: string,
  llm: Partial<AgentConfig["llm"]>,
  change: (config: AgentConfig) => AgentConfig = (c) => c
): AgentConfig => {
  const config = defaultConfig({ home: dir, cwd: dir, builtinSkillsDir: `${dir}/skills` })
  return change({
    ...config,
    luallm: { ...config.luallm, binary: `${dir}/no-luallm`, state_file: `${dir}/state.json` },
    llm: { ...config.llm, base_url: null, api_key: null, ...llm },
    limits: { ...config.limits, llm_timeout_seconds: 1 }
  })
}

/** The Live layer for `config`, kept for the test's scope. */
export const liveLlm = (config: AgentConfig) =>
  Effect.map(
    Layer.build(
      LlmLive.pipe(
        Layer.provide(LuallmLive),
        Layer.provide(AppConfigFrom(config)),
        Layer.provide(Layer.merge(NodeHttpClient.layer, TestPlatform))
      )
    ),
    Context.get(Llm)
  )
