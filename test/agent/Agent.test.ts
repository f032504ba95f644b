import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { Agent } from "../../src/Agent.ts"
import { MAX_JSON_DEPTH } from "../../src/core/jsonText.ts"
import { newTask, type Task } from "../../src/core/task.ts"
import { Approvals } from "../../src/layers/Approvals.ts"
import { AuditMemory } from "../../src/layers/Audit.ts"
import { FakeReply, LlmHttpError, LlmRequests, LlmUnreachable } from "../../src/layers/Llm.ts"
import { LuallmCalls, ModelNotRunning } from "../../src/layers/Luallm.ts"
import { State } from "../../src/layers/State.ts"
import { agentLayer, installSkill, testConfig } from "../support/agentHarness.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

const addSkill = `/* @skill {"name": "add", "version": "1.0.0", "description": "Adds two numbers", "public_functions": ["run"], "args": {"a": "number", "b": "number"}} */
export function run({ a, b }) { return a + b }
`
const plan = (nodes: ReadonlyArray<Record<string, unknown>>) => JSON.stringify({ nodes })
const sumPlan = plan([
  { id: "sum", action: "skill", skill_name: "add", skill_args: { a: 2, b: 3 } },
  { id: "say", action: "llm_call", prompt_template: "The sum is {sum}. Say it in words.", depends_on: ["sum"] }
])

const doubleSkill = (factor: number) => `/* @skill {"name": "double", "version": "1.0.0", "description": "Doubles a number", "public_functions": ["run"], "args": {"n": "number"}} */
export function run({ n }) { return n * ${factor} }
`
const doubleTests = `const { run } = require("double")
test("doubles 2", () => { assert.equal(run({ n: 2 }), 4) })
test("doubles 0", () => { assert.equal(run({ n: 0 }), 0) })
`
const doublePlan = plan([
  { id: "d", action: "skill", skill_name: "double", skill_args: { n: 21 }, description: "Return twice the number n." }
])
/** A model that plans with a missing `double` and drafts it right the first time. */
const draftsDouble = [
  FakeReply.content(doublePlan, { when: "Request:" }),
  FakeReply.content(doubleSkill(2), { when: "Write the skill file" }),
  FakeReply.content(doubleTests, { when: "Write double.test.js" })
]

/** "Double 21" drafts a skill and pauses for its approval; "Add 2 and 3" completes. */
const pausedAndDoneReplies = [
  FakeReply.content(doublePlan, { when: "Request: Double 21" }),
  FakeReply.content(doubleSkill(2), { when: "Write the skill file" }),
  FakeReply.content(doubleTests, { when: "Write double.test.js" }),
  FakeReply.content(sumPlan, { when: "Request: Add" }),
  FakeReply.content("five", { when: "The sum is 5" })
]

describe("agent", () => {
  it.scoped("completes a plan that uses existing skills, passing results downstream", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const config = testConfig(home)
      installSkill(config, "add", addSkill)
      const replies = [
        FakeReply.content(sumPlan, { when: "Request:" }),
        FakeReply.content("five", { when: "The sum is 5" })
      ]
      const outcome = yield* Effect.gen(function*() {
        const agent = yield* Agent
        const outcome = yield* agent.run("Add 2 and 3 and say it")
        const events = (yield* (yield* AuditMemory).entries).map((e) => e.event)
        const saved = yield* (yield* State).load(outcome.task.id)
        return { outcome, events, saved }
      }).pipe(Effect.provide(agentLayer(config, replies, home)))
      expect(outcome.outcome.task.state).toBe("complete")
      expect(outcome.outcome.task.result).toEqual({ say: "five" })
      expect(outcome.outcome.task.graph?.nodes.map((n) => [n.id, n.status, n.result])).toEqual([["sum", "complete", 5], ["say", "complete", "five"]])
      expect(Option.getOrThrow(outcome.saved).state).toBe("complete")
      expect(outcome.events).toEqual(expect.arrayContaining(["task.start", "task.transition", "llm.call", "skill.start", "skill.end", "node.complete", "task.complete"]))
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("fails a node whose skill returns data nested deeper than a saved task may hold, and the task stays loadable", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const config = testConfig(home)
      installSkill(config, "nest", `/* @skill {"name": "nest", "version": "1.0.0", "public_functions": ["run"]} */
export function run({ depth }) { let v = 1; for (let i = 0; i < depth; i++) v = [v]; return v }
`)
      const nestPlan = (depth: number) => plan([{ id: "n", action: "skill", skill_name: "nest", skill_args: { depth }, max_retries: 0 }])
      const outcome = yield* Effect.gen(function*() {
        const outcome = yield* (yield* Agent).run("Nest deeply")
        const saved = yield* (yield* State).load(outcome.task.id)
        return { outcome, saved }
      }).pipe(Effect.provide(agentLayer(config, [FakeReply.content(nestPlan(MAX_JSON_DEPTH + 1))], home)))
      expect(outcome.outcome.task.state).toBe("failed")
      expect(outcome.outcome.task.error).toContain(`Skill nest returned a value that is not JSON the agent accepts (it nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels`)
      expect(Option.getOrThrow(outcome.saved).state).toBe("failed")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("counts the tokens a task uses in the saved task, and fails a node whose call would pass limits.max_task_tokens", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const base = testConfig(home)
      // Enough for the plan (its prompt, some 2k tokens, and 100 for the answer), not for the node call after it.
      const config = {
        ...base,
        llm: { ...base.llm, max_tokens: { plan: 100, code: 100, node: 100 } },
        limits: { ...base.limits, max_task_tokens: 4_000 }
      }
      installSkill(config, "add", addSkill)
      const replies = [
        FakeReply.content(sumPlan, { when: "Request:", usage: { prompt_tokens: 3_000, completion_tokens: 500 } }),
        FakeReply.content("five", { when: "The sum is 5" })
      ]
      const result = yield* Effect.gen(function*() {
        const agent = yield* Agent
        const outcome = yield* agent.run("Add 2 and 3 and say it")
        const saved = yield* (yield* State).load(outcome.task.id)
        return { outcome, saved }
      }).pipe(Effect.provide(agentLayer(config, replies, home)))
      // The node's call is refused before it is sent: the node fails, and with it the task.
      expect(result.outcome.task.state).toBe("failed")
      expect(result.outcome.task.error).toMatch(/The task has used 3500 tokens; the next node call would add up to \d+, past limits\.max_task_tokens \(4000\)\./)
      expect(Option.getOrThrow(result.saved).tokens_used).toBe(3_500)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("an llm_call node with an output_schema asks for that schema and stores the parsed JSON; a wrong shape fails it", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const config = testConfig(home)
      const totals = { type: "object", properties: { total: { type: "number" } }, required: ["total"] }
      const schemaPlan = plan([{ id: "count", action: "llm_call", prompt_template: "Count to five.", output_schema: totals }])
      const run = (answers: ReadonlyArray<string>) =>
        Effect.gen(function*() {
          const outcome = yield* (yield* Agent).run("Count")
          const requests = yield* (yield* LlmRequests).requests
          return { outcome, requests }
        }).pipe(Effect.provide(agentLayer(config, [
          FakeReply.content(schemaPlan, { when: "Request:" }),
          ...answers.map((answer) => FakeReply.content(answer, { when: "Count to five" }))
        ], home)))
      const good = yield* run(["```json\n{\"total\": 5}\n```"])
      expect(good.outcome.task.result).toEqual({ count: { total: 5 } })
      expect(good.requests.at(-1)?.output).toEqual({ name: "node_count", schema: totals })
      expect(good.requests.at(-1)?.messages[1]?.content).toContain(`matching this JSON schema: ${JSON.stringify(totals)}`)
      const bad = yield* run(["{\"sum\": 5}", "{\"sum\": 5}", "{\"sum\": 5}"])
      expect(bad.outcome.task.state).toBe("failed")
      expect(bad.outcome.task.error).toContain(`The answer of node "count" does not match its output_schema: answer.total: is missing.`)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("retries an invalid plan with the validation errors, then succeeds", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const config = testConfig(home)
      installSkill(config, "add", addSkill)
      const cyclic = plan([
        { id: "a", action: "llm_call", prompt_template: "x", depends_on: ["b"] },
        { id: "b", action: "llm_call", prompt_template: "y", depends_on: ["a"] }
      ])
      const replies = [
        FakeReply.content(`Sure! ${cyclic}`, { when: /^(?![\s\S]*previous plan was rejected)Job: plan/ }),
        FakeReply.content(sumPlan, { when: "previous plan was rejected" }),
        FakeReply.content("five", { when: "The sum is 5" })
      ]
      const result = yield* Effect.gen(function*() {
        const outcome = yield* (yield* Agent).run("Add 2 and 3")
        const requests = yield* (yield* LlmRequests).requests
        return { outcome, requests }
      }).pipe(Effect.provide(agentLayer(config, replies, home)))
      expect(result.outcome.task.state).toBe("complete")
      const retry = result.requests[1]?.messages.at(-1)?.content ?? ""
      expect(retry).toContain("previous plan was rejected")
      expect(retry).toContain("cycle")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("fails with a clear message when plan retries are exhausted", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const config = testConfig(home, { limits: { ...testConfig(home).limits, max_plan_retries: 1 } })
      const replies = [FakeReply.content("I don't know."), FakeReply.content("{\"nodes\": [")]
      const outcome = yield* Effect.gen(function*() {
        return yield* (yield* Agent).run("Do it")
      }).pipe(Effect.provide(agentLayer(config, replies, home)))
      expect(outcome.task.state).toBe("failed")
      expect(outcome.task.error).toContain("did not produce a valid plan in 2 attempts")
      expect(outcome.task.error).toContain("cut off")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("drafts a missing skill, reworks it after failing tests, pauses for approval, then promotes and completes", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const config = testConfig(home)
      const replies = [
        FakeReply.content(doublePlan, { when: "Request:" }),
        FakeReply.content("```js\n" + doubleSkill(3) + "```", { when: "Write the skill file" }),
        FakeReply.content(doubleTests, { when: "Write double.test.js" }),
        FakeReply.content(doubleSkill(2), { when: "The tests failed like this" })
      ]
      const layer = agentLayer(config, replies, home)
      const first = yield* Effect.gen(function*() {
        const agent = yield* Agent
        const outcome = yield* agent.run("Double 21")
        const pending = yield* (yield* Approvals).listPending
        return { outcome, pending }
      }).pipe(Effect.provide(layer))
      expect(first.outcome.task.state).toBe("approval")
      expect(first.outcome.paused?.reason).toBe("approval")
      expect(first.outcome.task.draft?.attempt).toBe(2)
      expect(first.pending.map((p) => p.skill_name)).toEqual(["double"])
      expect(existsSync(`${config.skills.allowed_dir}/double.js`)).toBe(false)

      // Resuming before a human decided changes nothing.
      const stillPaused = yield* Effect.flatMap(Agent, (agent) => agent.resume()).pipe(Effect.provide(layer))
      expect(stillPaused.paused?.reason).toBe("approval")

      const approvalId = first.pending[0]?.id ?? ""
      const done = yield* Effect.gen(function*() {
        yield* (yield* Approvals).resolve(approvalId, true, "reviewed")
        return yield* (yield* Agent).resume()
      }).pipe(Effect.provide(layer))
      expect(done.task.state).toBe("complete")
      expect(done.task.result).toEqual({ d: 42 })
      expect(readFileSync(`${config.skills.allowed_dir}/double.js`, "utf8")).toContain("n * 2")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("sends back a draft whose code or tests hold a hidden character, naming it and its line, and never writes it", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const config = testConfig(home)
      // A U+2028 ends the comment for JavaScript: the "comment" is code that runs.
      const hiddenCode = doubleSkill(2).replace("export function run", "// harmless\u2028globalThis.x = 1\nexport function run")
      const hiddenTests = doubleTests.replace("doubles 0", "doubles\u202e 0")
      const replies = [
        FakeReply.content(doublePlan, { when: "Request:" }),
        FakeReply.content(hiddenCode, { when: "Write the skill file" }),
        FakeReply.content(doubleSkill(2), { when: "line break U+2028 LINE SEPARATOR at line 2" }),
        FakeReply.content(hiddenTests, { when: "Write double.test.js" }),
        FakeReply.content(doubleSkill(2), { when: "bidi control U+202E RIGHT-TO-LEFT OVERRIDE at line 3" }),
        FakeReply.content(doubleTests, { when: "Write double.test.js" })
      ]
      const outcome = yield* Effect.gen(function*() {
        const outcome = yield* (yield* Agent).run("Double 21")
        const requests = yield* (yield* LlmRequests).requests
        return { outcome, requests }
      }).pipe(Effect.provide(agentLayer(config, replies, home)))
      expect(outcome.outcome.task.state).toBe("approval")
      const prompts = outcome.requests.map((r) => r.messages.at(-1)?.content ?? "")
      expect(prompts.some((p) => p.includes("The code holds characters a reviewer cannot see (no draft may hold any): line break U+2028 LINE SEPARATOR at line 2"))).toBe(true)
      expect(prompts.some((p) => p.includes("The tests hold characters a reviewer cannot see (no draft may hold any): bidi control U+202E RIGHT-TO-LEFT OVERRIDE at line 3"))).toBe(true)
      expect(readFileSync(`${config.skills.agent_dir}/double.js`, "utf8")).toBe(doubleSkill(2))
      expect(readFileSync(`${config.skills.agent_dir}/double.test.js`, "utf8")).toBe(doubleTests)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("promotes the tested code and tests even when the draft files are swapped after the human approved", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const config = testConfig(home)
      const layer = agentLayer(config, draftsDouble, home)
      const done = yield* Effect.gen(function*() {
        const agent = yield* Agent
        const approvals = yield* Approvals
        yield* agent.run("Double 21")
        const [pending] = yield* approvals.listPending
        yield* approvals.resolve(pending?.id ?? "", true, "reviewed")
        writeFileSync(`${config.skills.agent_dir}/double.test.js`, "test('owned', () => {})\n")
        writeFileSync(`${config.skills.agent_dir}/double.js`, doubleSkill(1000))
        return yield* agent.resume()
      }).pipe(Effect.provide(layer))
      expect(done.task.state).toBe("complete")
      expect(done.task.result).toEqual({ d: 42 })
      expect(readFileSync(`${config.skills.allowed_dir}/double.js`, "utf8")).toBe(doubleSkill(2))
      expect(readFileSync(`${config.skills.allowed_dir}/double.test.js`, "utf8")).toBe(doubleTests)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("fails with the reason when a human rejects the draft", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const config = testConfig(home)
      const layer = agentLayer(config, draftsDouble, home)
      const done = yield* Effect.gen(function*() {
        const agent = yield* Agent
        yield* agent.run("Double 21")
        const approvals = yield* Approvals
        const [pending] = yield* approvals.listPending
        yield* approvals.resolve(pending?.id ?? "", false, "I do not want this skill")
        return yield* agent.resume()
      }).pipe(Effect.provide(layer))
      expect(done.task.state).toBe("failed")
      expect(done.task.error).toContain("I do not want this skill")
      expect(existsSync(`${config.skills.allowed_dir}/double.js`)).toBe(false)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("waits for a model that is not running and continues after it starts", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const config = testConfig(home)
      installSkill(config, "add", addSkill)
      const notRunning = new ModelNotRunning({ model: "test-model", running: [], startCommand: "luallm start test-model" })
      const replies = [
        FakeReply.fail(notRunning, { when: "Request:" }),
        FakeReply.content(sumPlan, { when: "Request:" }),
        FakeReply.content("five", { when: "The sum is 5" })
      ]
      const { done, first } = yield* Effect.gen(function*() {
        const agent = yield* Agent
        const first = yield* agent.run("Add")
        const done = yield* agent.resume()
        return { first, done }
      }).pipe(Effect.provide(agentLayer(config, replies, home)))
      expect(first.task.state).toBe("model_wait")
      expect(first.paused?.next_command).toBe(`luallm start test-model && luallm-agent resume --task ${first.task.id.slice(0, 8)}`)
      expect(done.task.state).toBe("complete")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("starts a model that stopped mid-task itself when model_policy.auto_start and the model_start tier allow it", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const base = testConfig(home)
      const config = {
        ...base,
        model_policy: { ...base.model_policy, auto_start: true },
        approval_tiers: { ...base.approval_tiers, model_start: "auto" as const }
      }
      installSkill(config, "add", addSkill)
      const notRunning = new ModelNotRunning({ model: "test-model", running: [], startCommand: "luallm start test-model" })
      const replies = [
        FakeReply.fail(notRunning, { when: "Request:" }),
        FakeReply.content(sumPlan, { when: "Request:" }),
        FakeReply.content("five", { when: "The sum is 5" })
      ]
      const { calls, outcome } = yield* Effect.gen(function*() {
        const outcome = yield* (yield* Agent).run("Add")
        const calls = yield* (yield* LuallmCalls).calls
        return { outcome, calls }
      }).pipe(Effect.provide(agentLayer(config, replies, home)))
      expect(outcome.paused).toBeNull()
      expect(outcome.task.state).toBe("complete")
      expect(calls).toContainEqual({ action: "start", model: "test-model" })
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("fails when the step limit is reached", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const config = testConfig(home, { limits: { ...testConfig(home).limits, max_task_steps: 2, max_plan_retries: 10 } })
      const replies = [FakeReply.content("no plan"), FakeReply.content("no plan"), FakeReply.content("no plan")]
      const outcome = yield* Effect.flatMap(Agent, (agent) => agent.run("x")).pipe(Effect.provide(agentLayer(config, replies, home)))
      expect(outcome.task.state).toBe("failed")
      expect(outcome.task.error).toContain("step limit (2 transitions")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("starts a second task while another is unfinished: both are saved, each with its own state", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const config = testConfig(home)
      installSkill(config, "add", addSkill)
      const replies = pausedAndDoneReplies
      const { first, list, second } = yield* Effect.gen(function*() {
        const agent = yield* Agent
        const first = yield* agent.run("Double 21")
        const second = yield* agent.run("Add 2 and 3")
        return { first, second, list: yield* agent.tasks }
      }).pipe(Effect.provide(agentLayer(config, replies, home)))
      expect(first.task.state).toBe("approval")
      expect(second.task.state).toBe("complete")
      expect(second.task.id).not.toBe(first.task.id)
      expect(list.tasks.map((t) => [t.id, t.state])).toEqual(
        expect.arrayContaining([[second.task.id, "complete"], [first.task.id, "approval"]])
      )
      expect(list.tasks).toHaveLength(2)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("reset discards a task itself and rejects its pending approval, leaving other tasks alone", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const config = testConfig(home)
      installSkill(config, "add", addSkill)
      const replies = pausedAndDoneReplies
      const result = yield* Effect.gen(function*() {
        const agent = yield* Agent
        const paused = yield* agent.run("Double 21")
        const other = yield* agent.run("Add 2 and 3")
        // No id: the most recent unfinished task, not the newer finished one.
        const reset = yield* agent.reset()
        const approvals = yield* Approvals
        const record = yield* approvals.get(paused.task.draft?.approval_id ?? "")
        const entries = yield* (yield* AuditMemory).entries
        const gone = yield* Effect.flip(agent.task(paused.task.id))
        return { paused, other, reset, record, entries, gone, list: yield* agent.tasks }
      }).pipe(Effect.provide(agentLayer(config, replies, home)))
      expect(result.reset).toEqual({ id: result.paused.task.id, state: "approval", rejectedApprovals: [result.record.id] })
      expect(result.record.status).toBe("rejected")
      expect(result.record.reason).toContain("discarded")
      expect(result.gone._tag).toBe("TaskNotFound")
      expect(result.list.tasks.map((t) => t.id)).toEqual([result.other.task.id])
      const resolveLine = result.entries.find((e) => e.event === "approval.resolve")
      expect(resolveLine?.task_id).toBe(result.paused.task.id)
      expect(result.entries.find((e) => e.event === "task.reset")?.task_id).toBe(result.paused.task.id)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("resumes a task killed during graph execution without re-running completed nodes", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const config = testConfig(home)
      mkdirSync(`${home}/data`, { recursive: true })
      // A skill with a side effect: it appends its tag to a file each time it runs.
      installSkill(config, "mark", `/* @skill {"name": "mark", "version": "1.0.0", "public_functions": ["run"], "paths": ["${home}/data/**"]} */
export function run({ tag }) { fs.appendFile("${home}/data/marks.txt", tag + "\\n"); return tag }
`)
      writeFileSync(`${home}/data/marks.txt`, "one\n")
      const node = (id: string, depends_on: ReadonlyArray<string>, status: "complete" | "running", result?: string) => ({
        id,
        action: "skill" as const,
        skill_name: "mark",
        skill_args: { tag: id },
        depends_on,
        status,
        retries: 0,
        max_retries: 0,
        ...(result === undefined ? {} : { result })
      })
      // What a process killed while running node "two" leaves behind.
      const killed: Task = {
        ...newTask("task-killed", "mark twice", "2026-01-01T00:00:00.000Z"),
        state: "graph_exec",
        steps: 3,
        model: "test-model",
        graph: {
          nodes: [node("one", [], "complete", "one"), node("two", ["one"], "running")],
          metadata: { prompt: "mark twice", created_at: "2026-01-01T00:00:00.000Z", model: "test-model" }
        }
      }
      const done = yield* Effect.gen(function*() {
        yield* (yield* State).save(killed)
        return yield* (yield* Agent).resume({ task: "task-kil" })
      }).pipe(Effect.provide(agentLayer(config, [], home)))
      expect(done.task.state).toBe("complete")
      expect(readFileSync(`${home}/data/marks.txt`, "utf8")).toBe("one\ntwo\n")
      expect(done.task.result).toEqual({ two: "two" })
    }).pipe(Effect.provide(TestPlatform)))

  describe("a model that stops answering, and a retry", () => {
    const unreachable = new LlmUnreachable({ url: "http://127.0.0.1:8089/v1/chat/completions", reason: "connect ECONNREFUSED", attempts: 3, startCommand: "luallm start m" })

    it.scoped("pauses while planning (not an error) and continues the same task on resume", () =>
      Effect.gen(function*() {
        const home = yield* tempDir
        const config = testConfig(home)
        installSkill(config, "add", addSkill)
        const replies = [
          FakeReply.fail(unreachable, { when: "Request:" }),
          FakeReply.content(sumPlan, { when: "Request:" }),
          FakeReply.content("five", { when: "The sum is 5" })
        ]
        const { done, first, events } = yield* Effect.gen(function*() {
          const agent = yield* Agent
          const first = yield* agent.run("Add")
          const done = yield* agent.resume({ task: first.task.id })
          const events = (yield* (yield* AuditMemory).entries).map((e) => e.event)
          return { first, done, events }
        }).pipe(Effect.provide(agentLayer(config, replies, home)))
        expect(first.task).toMatchObject({ state: "model_wait", resume_state: "planning" })
        expect(first.paused?.message).toContain("Could not reach the LLM at http://127.0.0.1:8089/v1/chat/completions: connect ECONNREFUSED (3 attempts)")
        expect(first.paused?.next_command).toBe(`luallm-agent resume --task ${first.task.id.slice(0, 8)}`)
        expect(done.task).toMatchObject({ id: first.task.id, state: "complete", result: { say: "five" } })
        expect(events).toEqual(expect.arrayContaining(["llm.error", "task.paused", "task.resume", "task.complete"]))
      }).pipe(Effect.provide(TestPlatform)))

    it.scoped("a 400 (a request the server refuses) is an error, not a pause; the task stays saved where it was", () =>
      Effect.gen(function*() {
        const home = yield* tempDir
        const config = testConfig(home)
        const refused = new LlmHttpError({ url: "http://x/v1/chat/completions", status: 400, body: "bad", attempts: 1, retryAfter: null })
        const { error, tasks } = yield* Effect.gen(function*() {
          const agent = yield* Agent
          const error = yield* Effect.flip(agent.run("Add"))
          return { error, tasks: (yield* agent.tasks).tasks }
        }).pipe(Effect.provide(agentLayer(config, [FakeReply.fail(refused)], home)))
        expect(error._tag).toBe("LlmHttpError")
        expect(tasks.map((t) => t.state)).toEqual(["planning"])
      }).pipe(Effect.provide(TestPlatform)))

    it.scoped("retryFailed plans again a task whose plans were all invalid, and a retry of a complete task is refused", () =>
      Effect.gen(function*() {
        const home = yield* tempDir
        const config = testConfig(home, { limits: { ...testConfig(home).limits, max_plan_retries: 1 } })
        installSkill(config, "add", addSkill)
        const replies = [
          FakeReply.content("no plan", { when: "Request:" }),
          FakeReply.content("still no plan", { when: "Request:" }),
          FakeReply.content(sumPlan, { when: "Request:" }),
          FakeReply.content("five", { when: "The sum is 5" })
        ]
        const { failed, retried, refused, events } = yield* Effect.gen(function*() {
          const agent = yield* Agent
          const failed = yield* agent.run("Add")
          const retried = yield* agent.resume({ retryFailed: true })
          const refused = yield* Effect.flip(agent.resume({ task: failed.task.id, retryFailed: true }))
          const events = (yield* (yield* AuditMemory).entries).map((e) => e.event)
          return { failed, retried, refused, events }
        }).pipe(Effect.provide(agentLayer(config, replies, home)))
        expect(failed.task.state).toBe("failed")
        expect(failed.task.error).toContain(`luallm-agent resume --task ${failed.task.id.slice(0, 8)} --retry-failed`)
        expect(retried.task).toMatchObject({ id: failed.task.id, state: "complete", result: { say: "five" }, error: null })
        expect(refused).toMatchObject({ _tag: "NothingToRetry", id: failed.task.id, state: "complete" })
        expect(events).toEqual(expect.arrayContaining(["task.failed", "task.retry", "task.complete"]))
      }).pipe(Effect.provide(TestPlatform)))
  })

  describe("a rework may rewrite the tests when they are the problem", () => {
    /** The first draft's tests are unusable; the rework that asks for tests gets a good pair. */
    const scripted = (badTests: string) => [
      FakeReply.content(doublePlan, { when: "Request:" }),
      FakeReply.content(JSON.stringify({ code: doubleSkill(2), tests: badTests }), { when: "Write the skill file" }),
      FakeReply.content(JSON.stringify({ code: doubleSkill(2), tests: doubleTests }), { when: "write its tests again" }),
      // What a code-only rework would get: the same code, the same tests, until the retry limit.
      ...Array.from({ length: 4 }, () => FakeReply.content(JSON.stringify({ code: doubleSkill(2) }), { when: "The tests failed like this" }))
    ]

    const draftWith = (badTests: string) =>
      Effect.gen(function*() {
        const home = yield* tempDir
        const config = testConfig(home)
        return yield* Effect.gen(function*() {
          const outcome = yield* (yield* Agent).run("Double 21")
          const approvals = yield* Approvals
          const [pending] = yield* approvals.listPending
          const tested = pending === undefined ? null : yield* approvals.tested(pending)
          const prompts = (yield* (yield* LlmRequests).requests).map((r) => r.messages.at(-1)?.content ?? "")
          return { outcome, tested, prompts, pending }
        }).pipe(Effect.provide(agentLayer(config, scripted(badTests), home)))
      })

    it.scoped("a test file that is the skill's code (no tests registered): the rework asks for code and tests, and ends in approval with the new tests", () =>
      Effect.gen(function*() {
        const { outcome, pending, prompts, tested } = yield* draftWith(doubleSkill(2))
        expect(outcome.task.state).toBe("approval")
        expect(outcome.task.draft?.attempt).toBe(2)
        const rework = prompts.find((prompt) => prompt.startsWith("Job: fix a skill whose tests cannot be used"))
        expect(rework).toContain("double.test.js registers no tests")
        expect(rework).toContain(`"tests": "<the whole new double.test.js>"`)
        expect(prompts.some((prompt) => prompt.includes("The tests failed like this"))).toBe(false)
        // The approval shows the tests that ran: the new ones.
        expect(tested?.tests).toBe(doubleTests)
        expect(pending?.test_report).toMatchObject({ total: 2, passed: 2 })
      }).pipe(Effect.provide(TestPlatform)))

    it.scoped("tests that fail inside the test file (calling what does not exist) are written again too", () =>
      Effect.gen(function*() {
        const broken = `const { run } = require("double")\ntest("doubles 2", () => { assert.equal(twice(run({ n: 2 })), 4) })\n`
        const { outcome, prompts, tested } = yield* draftWith(broken)
        expect(outcome.task.state).toBe("approval")
        const rework = prompts.find((prompt) => prompt.startsWith("Job: fix a skill whose tests cannot be used"))
        expect(rework).toContain("The test \"doubles 2\" fails inside double.test.js itself, not in an assertion: ReferenceError")
        expect(tested?.tests).toBe(doubleTests)
      }).pipe(Effect.provide(TestPlatform)))

    it.scoped("tests that fail on their assertions keep: the rework asks for the code only", () =>
      Effect.gen(function*() {
        const home = yield* tempDir
        const config = testConfig(home)
        const replies = [
          FakeReply.content(doublePlan, { when: "Request:" }),
          FakeReply.content(JSON.stringify({ code: doubleSkill(3), tests: doubleTests }), { when: "Write the skill file" }),
          FakeReply.content(JSON.stringify({ code: doubleSkill(2), tests: "test(\"weakened\", () => {})" }), { when: "The tests failed like this" })
        ]
        const { outcome, tested } = yield* Effect.gen(function*() {
          const outcome = yield* (yield* Agent).run("Double 21")
          const approvals = yield* Approvals
          const [pending] = yield* approvals.listPending
          return { outcome, tested: pending === undefined ? null : yield* approvals.tested(pending) }
        }).pipe(Effect.provide(agentLayer(config, replies, home)))
        expect(outcome.task.state).toBe("approval")
        expect(tested?.tests).toBe(doubleTests)
      }).pipe(Effect.provide(TestPlatform)))
  })
})
