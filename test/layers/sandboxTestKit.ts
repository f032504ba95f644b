/**
 * Shared set-up for the sandbox and skills tests: a temporary home with an allowed `data`
 * directory, a config pointing every luallm-agent directory into it, and the layers.
 */
import { NodeContext } from "@effect/platform-node"
import { Effect, Either, Layer } from "effect"
import { mkdirSync, mkdtempSync, realpathSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseMetadata } from "../../src/core/skillMeta.ts"
import { AuditMemory, AuditTest } from "../../src/layers/Audit.ts"
import { type AgentConfig, AppConfigFrom, defaultConfig } from "../../src/layers/Config.ts"
import { type RunMode, type RunRequest, sandboxLayer, type SandboxOptions, type SkillSource, trusted } from "../../src/layers/Sandbox.ts"

export interface Fixture {
  /** The temporary home (real path): `~` in skills and config. */
  readonly home: string
  /** `~/data`, the only allowed path. */
  readonly data: string
  /** `~/outside`, not allowed. */
  readonly outside: string
  readonly config: AgentConfig
  readonly cleanup: () => void
}

export const makeFixture = (overrides: (config: AgentConfig, home: string) => AgentConfig = (c) => c): Fixture => {
  const home = realpathSync(mkdtempSync(join(tmpdir(), "luallm-sandbox-test-")))
  const data = join(home, "data")
  const outside = join(home, "outside")
  for (const dir of [data, outside, join(home, "skills"), join(home, "drafts"), join(home, "builtin")]) mkdirSync(dir, { recursive: true })
  const defaults = defaultConfig({ home, cwd: home, builtinSkillsDir: join(home, "builtin") })
  const config: AgentConfig = {
    ...defaults,
    allowed_paths: [`${data}/**`],
    skills: { allowed_dir: join(home, "skills"), agent_dir: join(home, "drafts"), builtin_dir: join(home, "builtin") },
    state_dir: join(home, "state"),
    audit: { ...defaults.audit, path: join(home, "state", "audit.jsonl") },
    limits: { ...defaults.limits, skill_timeout_seconds: 1, skill_memory_mb: 32 }
  }
  return { home, data, outside, config: overrides(config, home), cleanup: () => rmSync(home, { recursive: true, force: true }) }
}

/** Config (with the fixture's home and cwd), in-memory audit and the sandbox over node. */
export const sandboxTestLayer = (fixture: Fixture, options: SandboxOptions = {}) =>
  sandboxLayer({ home: fixture.home, cwd: fixture.home }, undefined, options).pipe(
    Layer.provideMerge(AuditTest),
    Layer.provideMerge(AppConfigFrom(fixture.config, { home: fixture.home, cwd: fixture.home })),
    Layer.provideMerge(NodeContext.layer)
  )

/** A skill from its source text; the file name only appears in messages. */
export const skillSource = (code: string, file = "/virtual/skill.js"): SkillSource => ({
  meta: Either.getOrThrowWith(parseMetadata(code, file), (problem) => new Error(problem.reason)),
  file,
  code
})

/** A header for inline test skills. */
export const header = (fields: Record<string, unknown> = {}): string =>
  `/* @skill ${JSON.stringify({ name: "probe", version: "1.0.0", public_functions: ["run"], ...fields }).replaceAll("*/", "*\\/")} */\n`

export const runRequest = (
  skill: SkillSource,
  options: { readonly dependencies?: ReadonlyArray<SkillSource>; readonly mode?: RunMode; readonly grantExec?: boolean } = {}
): RunRequest => ({
  skill,
  dependencies: new Map((options.dependencies ?? []).map((d) => [d.meta.name, d])),
  mode: options.mode ?? trusted,
  grantExec: options.grantExec ?? false
})

/** The audit events recorded so far with the given name. */
export const auditEvents = (event: string) =>
  Effect.map(Effect.flatMap(AuditMemory, (memory) => memory.entries), (entries) => entries.filter((e) => e.event === event).map((e) => e.data))
