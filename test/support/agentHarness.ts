/**
 * An agent wired for tests: real state, approvals, skills and sandbox over temp dirs, an
 * in-memory audit, a scripted Fake LLM and a luallm test double.
 */
import { NodeContext } from "@effect/platform-node"
import { Layer } from "effect"
import { mkdirSync, writeFileSync } from "node:fs"
import { type AgentConfig, configInside } from "../../src/core/config.ts"
import { agentWithApprover } from "../../src/Agent.ts"
import { type Approver, ApproverPause } from "../../src/layers/Approver.ts"
import { AuditTest } from "../../src/layers/Audit.ts"
import { AppConfigFrom } from "../../src/layers/Config.ts"
import { type FakeReply, LlmFake } from "../../src/layers/Llm.ts"
import { LuallmTest } from "../../src/layers/Luallm.ts"

/** A config inside `home` whose plans run without a confirmation (tests of the confirmation set the tier themselves). */
export const testConfig = (home: string, overrides: Partial<AgentConfig> = {}): AgentConfig => {
  const base = configInside(home, { allowedPaths: [`${home}/data/**`] })
  return { ...base, approval_tiers: { ...base.approval_tiers, task_confirmation: "auto" }, ...overrides }
}

/** Writes a trusted skill into the promoted skills dir. */
export const installSkill = (config: AgentConfig, name: string, code: string): void => {
  mkdirSync(config.skills.allowed_dir, { recursive: true })
  writeFileSync(`${config.skills.allowed_dir}/${name}.js`, code)
}

/** The agent over a scripted model; its questions for a human go to `approver`. */
export const agentLayerWith = <E, R, Also = never>(
  config: AgentConfig,
  replies: ReadonlyArray<FakeReply>,
  home: string,
  approver: Layer.Layer<Approver | Also, E, R>
) =>
  agentWithApprover(approver).pipe(
    Layer.provideMerge(LlmFake(replies, { model: "test-model" })),
    Layer.provideMerge(LuallmTest({ servers: [] })),
    Layer.provideMerge(AuditTest),
    Layer.provideMerge(AppConfigFrom(config, { home, cwd: home })),
    Layer.provideMerge(NodeContext.layer)
  )

/** The agent over a scripted model; a question for a human pauses the task. */
export const agentLayer = (config: AgentConfig, replies: ReadonlyArray<FakeReply>, home: string) => agentLayerWith(config, replies, home, ApproverPause)
