/**
 * Runs every hostile model answer (hostileCases.ts) through the real agent over a temp dir
 * and checks how it ends: accepted, retried with feedback then successful, or a clear failure.
 * Never a defect, never a hang (each case has a generous time limit), and never a write
 * outside what the agent may change: its state dir, its drafts dir, and the promoted skills
 * dir only after a human approved.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Cause, Console, Effect, Exit, Option } from "effect"
import { createHash } from "node:crypto"
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join, relative } from "node:path"
import { Agent } from "../../src/Agent.ts"
import type { Task } from "../../src/core/task.ts"
import { Approvals } from "../../src/layers/Approvals.ts"
import { AuditMemory } from "../../src/layers/Audit.ts"
import { type FakeReply, LlmRequests } from "../../src/layers/Llm.ts"
import { builtinSkillsDir } from "../../src/packageRoot.ts"
import { agentLayer, installSkill, testConfig } from "../support/agentHarness.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"
import { addSkill, type HostileCase, hostileCases } from "./hostileCases.ts"

/** Every file under `dir` with a hash of its content. */
const tree = (dir: string): ReadonlyMap<string, string> => {
  const files = new Map<string, string>()
  const walk = (at: string) => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const full = join(at, entry.name)
      if (entry.isDirectory()) walk(full)
      else files.set(relative(dir, full), createHash("sha256").update(readFileSync(full)).digest("hex"))
    }
  }
  walk(dir)
  return files
}

const changedPaths = (before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>): ReadonlyArray<string> =>
  [...new Set([...before.keys(), ...after.keys()])].filter((file) => before.get(file) !== after.get(file)).sort()

const withHome = (replies: ReadonlyArray<FakeReply>, home: string): ReadonlyArray<FakeReply> =>
  replies.map((reply) =>
    reply.answer._tag === "Content" ? { ...reply, answer: { ...reply.answer, content: reply.answer.content.replaceAll("{home}", home) } } : reply
  )

const describeExpectation = (testCase: HostileCase): string => {
  switch (testCase.expect._tag) {
    case "Accepted":
      return "accepted as it is"
    case "Retried":
      return "retried with feedback, then succeeds"
    case "Failed":
      return "fails clearly"
  }
}

/** What each case ended with, printed after the corpus ran. */
const outcomes: Array<string> = []

/** Runs the task; a draft that waits for approval is approved by "the human", then resumed. */
const drive = (testCase: HostileCase) =>
  Effect.gen(function*() {
    const agent = yield* Agent
    const first = yield* agent.run(testCase.prompt)
    if (first.paused?.reason !== "approval" || testCase.approve !== true) return { task: first.task, approved: false }
    const approvals = yield* Approvals
    const [pending] = yield* approvals.listPending
    if (pending === undefined) return { task: first.task, approved: false }
    yield* approvals.resolve(pending.id, true, "reviewed by the hostile corpus test")
    const done = yield* agent.resume()
    return { task: done.task, approved: true }
  })

const runCase = (testCase: HostileCase) =>
  Effect.gen(function*() {
    const home = yield* tempDir
    const base = testConfig(home)
    // The shipped skills too (shell_safe, write_file), as a user has them; exec granted by the
    // tier, so a hostile command meets the sandbox's refusal rather than a human's question.
    const config = testConfig(home, {
      skills: { ...base.skills, builtin_dir: builtinSkillsDir },
      limits: { ...base.limits, skill_timeout_seconds: 1 },
      approval_tiers: { ...base.approval_tiers, skill_exec: "auto" }
    })
    installSkill(config, "add", addSkill)
    mkdirSync(`${home}/data`, { recursive: true })
    writeFileSync(`${home}/data/victim.txt`, "the user's data\n")
    writeFileSync(`${home}/precious.txt`, "outside allowed_paths\n")
    const before = tree(home)

    const run = yield* Effect.gen(function*() {
      const exit = yield* drive(testCase).pipe(Effect.timeout("25 seconds"), Effect.exit)
      const requests = yield* (yield* LlmRequests).requests
      const audit = yield* (yield* AuditMemory).entries
      return { exit, requests, audit }
    }).pipe(Effect.provide(agentLayer(config, withHome(testCase.replies, home), home)))

    // Never a defect or a hang: the run ends with a task or a tagged, explained error.
    if (Exit.isFailure(run.exit)) {
      expect(Cause.isDie(run.exit.cause), `a defect: ${Cause.pretty(run.exit.cause)}`).toBe(false)
    }
    const failure = Exit.isFailure(run.exit) ? Cause.failureOption(run.exit.cause) : Option.none()
    if (Option.isSome(failure)) expect(failure.value._tag, "a hang: the case did not finish in time").not.toBe("TimeoutException")
    const ended: { readonly task: Task; readonly approved: boolean } | undefined = Exit.isSuccess(run.exit) ? run.exit.value : undefined

    // Only the agent's own directories change; skills/ only after a human approved.
    const approved = ended?.approved === true
    const changed = changedPaths(before, tree(home))
    const outside = changed.filter((file) =>
      !file.startsWith("state/") && !file.startsWith("drafts/") && !(approved && file.startsWith("skills/"))
    )
    expect(outside, "files changed outside the agent's own directories").toEqual([])
    expect(readFileSync(`${home}/data/victim.txt`, "utf8")).toBe("the user's data\n")
    expect(readFileSync(`${home}/precious.txt`, "utf8")).toBe("outside allowed_paths\n")

    const lastMessages = run.requests.map((request) => request.messages.at(-1)?.content ?? "")
    // A hostile answer is never echoed back at its full size (1 MB answers, 10,000 errors).
    const largest = Math.max(0, ...run.requests.flatMap((request) => request.messages.map((message) => message.content.length)))
    expect(largest).toBeLessThan(64 * 1024)
    const expectation = testCase.expect
    switch (expectation._tag) {
      case "Accepted":
      case "Retried": {
        expect(ended?.task.error ?? null).toBeNull()
        expect(ended?.task.state).toBe("complete")
        if (testCase.result !== undefined) expect(ended?.task.result).toEqual(testCase.result)
        if (expectation._tag === "Accepted") {
          expect(ended?.task.plan_attempts).toBe(1)
          expect(ended?.task.draft?.attempt ?? 1).toBeLessThanOrEqual(1)
        } else {
          // The problem went back to the model in a later request.
          expect(lastMessages.slice(1).some((message) => expectation.feedback.test(message)), `no request carried ${expectation.feedback}`).toBe(true)
        }
        // Tests are written once: a hostile rework does not get them rewritten.
        if (testCase.stage === "rework") expect(lastMessages.filter((message) => message.includes("Write double.test.js"))).toHaveLength(1)
        break
      }
      case "Failed": {
        const message = ended !== undefined ? ended.task.error ?? "" : Option.match(failure, { onNone: () => "", onSome: (error) => error.message })
        if (ended !== undefined) expect(ended.task.state).toBe("failed")
        else expect(Option.map(failure, (error) => error._tag)).toEqual(Option.some(expect.any(String)))
        expect(message).toMatch(expectation.message)
        break
      }
    }
    const how = ended === undefined
      ? `error ${Option.match(failure, { onNone: () => "?", onSome: (error) => error._tag })}`
      : `${ended.task.state} after ${ended.task.plan_attempts} plan(s)${ended.task.draft === null ? "" : `, ${ended.task.draft.attempt} draft(s)`}${approved ? ", approved" : ""}`
    const skillRuns = run.audit.filter((entry) => entry.event === "skill.start").length
    outcomes.push(`${testCase.stage.padEnd(6)} ${testCase.name}: ${how}; ${run.requests.length} model requests, ${skillRuns} skill runs, ${changed.length} files changed`)
    return ended
  }).pipe(Effect.provide(TestPlatform))

describe("hostile model answers", () => {
  afterAll(() => Effect.runPromise(Console.log(`hostile corpus, ${outcomes.length} cases:\n${outcomes.join("\n")}`)))

  for (const testCase of hostileCases) {
    it.scopedLive(`${testCase.stage}: ${testCase.name} → ${describeExpectation(testCase)}`, () => runCase(testCase), 40_000)
  }

  it.scopedLive("the injected text is the node's result and the next prompt's data, and nothing else ran", () =>
    Effect.gen(function*() {
      const injectionCase = hostileCases.find((c) => c.name.startsWith("prompt-injection"))
      if (injectionCase === undefined) return yield* Effect.dieMessage("the corpus lost its injection case")
      const task = yield* runCase(injectionCase)
      const page = task?.task.graph?.nodes.find((node) => node.id === "page")
      expect(page?.result).toContain("IGNORE ALL PREVIOUS INSTRUCTIONS")
      expect(task?.task.graph?.nodes.map((node) => node.id)).toEqual(["page", "echo"])
    }))
})
