/**
 * An agent wired for tests: real state, approvals, skills and sandbox over temp dirs, an
 * in-memory audit, a scripted Fake LLM and a luallm test double.
 */
import { NodeContext } from "@effect/platform-node"
import { Layer } from "effect"
import { mkdirSync, writeFileSync } from "node:fs"
import { type AgentConfig, configInside } from "../../src/core/config.ts"
import { AgentDefault } from "../../src/Agent.ts"
import { AuditTest } from "../../src/layers/Audit.ts"
import { AppConfigFrom } from "../../src/layers/Config.ts"
import { type FakeReply, LlmFake } from "../../src/layers/Llm.ts"
import { LuallmTest } from "../../src/layers/Luallm.ts"

export const testConfig = (home: string, overrides: Partial<AgentConfig> = {}): AgentConfig => ({
  ...configInside(home, { allowedPaths: [`${home}/data/**`] }),
  ...overrides
})

/** Writes a trusted skill into the promoted skills dir. */
export const installSkill = (config: AgentConfig, name: string, code: string): void => {
  mkdirSync(config.skills.allowed_dir, { recursive: true })
  writeFileSync(`${config.skills.allowed_dir}/${name}.js`, code)
}

export const agentLayer = (config: AgentConfig, replies: ReadonlyArray<FakeReply>, home: string) =>
  AgentDefault.pipe(
    Layer.provideMerge(LlmFake(replies, { model: "test-model" })),
    Layer.provideMerge(LuallmTest({ servers: [] })),
    Layer.provideMerge(AuditTest),
    Layer.provideMerge(AppConfigFrom(config, { home, cwd: home })),
    Layer.provideMerge(NodeContext.layer)
  )
