import { describe, expect, it } from "@effect/vitest"
import type { Graph } from "../../src/core/graph.ts"
import { Schema } from "effect"
import { newTask, Task as TaskSchema, type Task } from "../../src/core/task.ts"
import { Command, commandFor, Event, type Limits, retryOf, transition } from "../../src/core/taskMachine.ts"

const limits: Limits = { max_task_steps: 50, max_plan_retries: 2, max_skill_retries: 1 }
const now = "2026-01-01T00:00:00.000Z"
const graph: Graph = {
  nodes: [{ id: "a", action: "skill", skill_name: "csv_sum", skill_args: {}, depends_on: [], status: "pending", retries: 0, max_retries: 1 }],
  metadata: { prompt: "p", created_at: now, model: "m" }
}
const skill = { name: "csv_sum", purpose: "sum a column", example_args: { path: "/d/a.csv" } }
const passing = { total: 2, passed: 2, failed: 0, results: [] }
const failing = { total: 2, passed: 1, failed: 1, results: [] }
const tested = { code_sha256: "c".repeat(64), test_sha256: "d".repeat(64) }

/** Applies events in order, returning every intermediate task. */
const run = (start: Task, events: ReadonlyArray<Event>, lim: Limits = limits) =>
  events.reduce<Array<Task>>((tasks, event) => {
    const last = tasks[tasks.length - 1] ?? start
    return [...tasks, transition(last, event, lim, now).task]
  }, [])

const last = <A>(items: ReadonlyArray<A>): A => {
  const item = items[items.length - 1]
  if (item === undefined) throw new Error("no items")
  return item
}

describe("task machine", () => {
  it("goes pending → planning → graph_exec → complete when every skill exists", () => {
    const tasks = run(newTask("t", "sum", now), [
      Event.ModelReady({ model: "m" }),
      Event.Planned({ graph, missing: [] }),
      Event.GraphFinished({ graph, failed: [], result: { a: 3 } })
    ])
    expect(tasks.map((t) => t.state)).toEqual(["planning", "graph_exec", "complete"])
    expect(last(tasks)).toMatchObject({ result: { a: 3 }, model: "m", steps: 3, error: null })
  })

  it("asks for each state's command", () => {
    const task = newTask("t", "sum", now)
    expect(commandFor(task)).toEqual(Command.EnsureModel())
    expect(commandFor({ ...task, state: "planning", plan_attempts: 1, plan_feedback: "- x" })).toEqual(
      Command.Plan({ attempt: 2, feedback: "- x" })
    )
    expect(commandFor({ ...task, state: "graph_exec", graph })).toEqual(Command.ExecuteGraph({ graph }))
    expect(commandFor({ ...task, state: "complete" })).toEqual(Command.Finished())
  })

  it("retries an invalid plan with its errors, then fails with a clear message when retries are spent", () => {
    const planning = transition(newTask("t", "sum", now), Event.ModelReady({ model: "m" }), limits, now).task
    const tasks = run(planning, [
      Event.PlanRejected({ errors: ["node b depends on unknown node z"] }),
      Event.PlanRejected({ errors: ["cycle a → b → a"] }),
      Event.PlanRejected({ errors: ["cycle a → b → a"] })
    ])
    expect(tasks.map((t) => t.state)).toEqual(["planning", "planning", "failed"])
    expect(commandFor(tasks[0] as Task)).toEqual(Command.Plan({ attempt: 2, feedback: "- node b depends on unknown node z" }))
    expect(last(tasks).error).toContain("did not produce a valid plan in 3 attempts")
    expect(last(tasks).error).toContain("cycle a → b → a")
  })

  it("drafts, tests, reworks and requests approval for a missing skill, then runs the graph once it is approved", () => {
    const tasks = run(newTask("t", "sum", now), [
      Event.ModelReady({ model: "m" }),
      Event.Planned({ graph, missing: [skill] }),
      Event.Drafted({ codePath: "/d/csv_sum.js", testPath: "/d/csv_sum.test.js" }),
      Event.TestsFailed({ report: failing, feedback: "expected 3, got 2" }),
      Event.Drafted({ codePath: "/d/csv_sum.js", testPath: "/d/csv_sum.test.js" }),
      Event.TestsPassed({ report: passing, tested }),
      Event.ApprovalRequested({ approvalId: "ap-1" }),
      Event.ApprovalPending(),
      Event.Approved(),
      Event.GraphFinished({ graph, failed: [], result: 3 })
    ])
    expect(tasks.map((t) => t.state)).toEqual([
      "planning",
      "skill_draft",
      "skill_test",
      "rework",
      "skill_test",
      "approval",
      "approval",
      "approval",
      "graph_exec",
      "complete"
    ])
    const rework = tasks[3] as Task
    expect(rework.draft).toMatchObject({ attempt: 1, feedback: "expected 3, got 2" })
    expect(commandFor(rework)._tag).toBe("ReworkSkill")
    // Filing the record does not pause: the next step asks the Approver, and "not now" pauses.
    const requested = tasks[6] as Task
    expect(requested.paused).toBeNull()
    expect(commandFor(requested)).toEqual(Command.CheckApproval({ draft: requested.draft as NonNullable<Task["draft"]>, approvalId: "ap-1" }))
    expect((tasks[7] as Task).paused).toEqual({
      reason: "approval",
      message: `The drafted skill "csv_sum" passes its tests and waits for a human to review and approve it.`,
      next_command: "luallm-agent resume --task t   (or: luallm-agent approvals approve ap-1 && luallm-agent resume --task t)"
    })
    expect((tasks[7] as Task).steps).toBe((tasks[6] as Task).steps)
    expect((tasks[8] as Task).paused).toBeNull()
  })

  /** A task whose draft passed its tests: it waits to file its approval. */
  const awaitingApproval = () =>
    last(run(newTask("t", "sum", now), [
      Event.ModelReady({ model: "m" }),
      Event.Planned({ graph, missing: [skill] }),
      Event.Drafted({ codePath: "/d/csv_sum.js", testPath: "/d/csv_sum.test.js" }),
      Event.TestsPassed({ report: passing, tested })
    ]))

  it("keeps the tested copy's hashes for the approval, and forgets them when a new version is drafted", () => {
    const approval = awaitingApproval()
    expect(approval.draft?.tested).toEqual(tested)
    expect(commandFor(approval)._tag).toBe("RequestApproval")
    const redrafted = transition(approval, Event.Drafted({ codePath: "/d/csv_sum.js", testPath: "/d/csv_sum.test.js" }), limits, now).task
    expect(redrafted.draft?.tested).toBeNull()
  })

  it("tests again before filing an approval when a saved task has no tested copy (saved by an older version)", () => {
    const approval = awaitingApproval()
    const { tested: _, ...older } = approval.draft ?? { tested: null }
    const legacy = Schema.decodeUnknownSync(TaskSchema)({ ...Schema.encodeSync(TaskSchema)(approval), draft: older })
    expect(legacy.draft?.tested).toBeNull()
    expect(commandFor(legacy)._tag).toBe("TestSkill")
  })

  it("fails a draft that still fails after max_skill_retries reworks, naming the draft and the last failure", () => {
    const tasks = run(newTask("t", "sum", now), [
      Event.ModelReady({ model: "m" }),
      Event.Planned({ graph, missing: [skill] }),
      Event.Drafted({ codePath: "/d/csv_sum.js", testPath: "/d/t.js" }),
      Event.TestsFailed({ report: failing, feedback: "boom 1" }),
      Event.Drafted({ codePath: "/d/csv_sum.js", testPath: "/d/t.js" }),
      Event.TestsFailed({ report: failing, feedback: "boom 2" })
    ])
    expect(last(tasks).state).toBe("failed")
    expect(last(tasks).error).toContain("still fails after 2 versions")
    expect(last(tasks).error).toContain("boom 2")
    expect(last(tasks).error).toContain("/d/csv_sum.js")
  })

  it("counts an unusable draft as an attempt and reworks it with the feedback", () => {
    const tasks = run(newTask("t", "sum", now), [
      Event.ModelReady({ model: "m" }),
      Event.Planned({ graph, missing: [skill] }),
      Event.DraftRejected({ feedback: "no @skill metadata block" })
    ])
    expect(last(tasks)).toMatchObject({ state: "rework", draft: { attempt: 1, feedback: "no @skill metadata block" } })
  })

  it("fails with the human's reason when a draft is rejected", () => {
    const tasks = run(newTask("t", "sum", now), [
      Event.ModelReady({ model: "m" }),
      Event.Planned({ graph, missing: [skill] }),
      Event.Drafted({ codePath: "/d/c.js", testPath: "/d/t.js" }),
      Event.TestsPassed({ report: passing, tested }),
      Event.ApprovalRequested({ approvalId: "ap" }),
      Event.Rejected({ reason: "reads too much" })
    ])
    expect(last(tasks).state).toBe("failed")
    expect(last(tasks).error).toContain("rejected the drafted skill \"csv_sum\": reads too much")
  })

  it("drafts several missing skills one after another", () => {
    const other = { name: "md_table", purpose: "format", example_args: {} }
    const tasks = run(newTask("t", "sum", now), [
      Event.ModelReady({ model: "m" }),
      Event.Planned({ graph, missing: [skill, other] }),
      Event.Drafted({ codePath: "/d/c.js", testPath: "/d/t.js" }),
      Event.TestsPassed({ report: passing, tested }),
      Event.ApprovalRequested({ approvalId: "ap" }),
      Event.Approved()
    ])
    expect(last(tasks)).toMatchObject({ state: "skill_draft", draft: { skill: other, attempt: 0 }, missing_skills: [other] })
  })

  it("waits for a model and returns to the state it left", () => {
    const planning = run(newTask("t", "sum", now), [Event.ModelReady({ model: "m" })])
    const tasks = run(last(planning), [
      Event.ModelMissing({ model: "coder", startCommand: "luallm start coder", autoStart: false }),
      Event.ModelMissing({ model: "coder", startCommand: "luallm start coder", autoStart: false }),
      Event.ModelReady({ model: "coder" })
    ])
    expect(tasks.map((t) => t.state)).toEqual(["model_wait", "model_wait", "planning"])
    expect((tasks[0] as Task).paused).toMatchObject({ reason: "model", next_command: "luallm start coder && luallm-agent resume --task t" })
    expect(last(tasks).paused).toBeNull()
  })

  it("does not pause for a missing model the agent may start itself; it waits for that model", () => {
    const planning = run(newTask("t", "sum", now), [Event.ModelReady({ model: "m" })])
    const waiting = transition(last(planning), Event.ModelMissing({ model: "coder", startCommand: "luallm start coder", autoStart: true }), limits, now).task
    expect(waiting).toMatchObject({ state: "model_wait", paused: null, wait_model: "coder", resume_state: "planning" })
    expect(commandFor(waiting)).toEqual(Command.EnsureModel())
    const ready = transition(waiting, Event.ModelReady({ model: "coder" }), limits, now).task
    expect(ready).toMatchObject({ state: "planning", wait_model: null, model: "m" })
  })

  it("fails node failures with each node's error", () => {
    const tasks = run(newTask("t", "sum", now), [
      Event.ModelReady({ model: "m" }),
      Event.Planned({ graph, missing: [] }),
      Event.GraphFinished({ graph, failed: [{ id: "a", error: "PathNotAllowed /etc" }], result: null })
    ])
    expect(last(tasks).state).toBe("failed")
    expect(last(tasks).error).toContain("- node a: PathNotAllowed /etc")
  })

  it("fails when the step limit is reached, naming the limit", () => {
    const tight = { ...limits, max_task_steps: 3, max_plan_retries: 10 }
    const tasks = run(
      newTask("t", "sum", now),
      [
        Event.ModelReady({ model: "m" }),
        Event.PlanRejected({ errors: ["x"] }),
        Event.PlanRejected({ errors: ["x"] })
      ],
      tight
    )
    expect(tasks.map((t) => t.state)).toEqual(["planning", "planning", "failed"])
    expect(last(tasks).error).toContain("step limit (3 transitions")
  })

  describe("a model that does not answer", () => {
    it("pauses in model_wait with the reason and the resume command, from any state that asks a model, and goes back there", () => {
      const planning = last(run(newTask("t-1234567890", "sum", now), [Event.ModelReady({ model: "m" })]))
      const paused = transition(planning, Event.ModelFailed({ model: "m", error: "Could not reach the LLM at http://x: connect ECONNREFUSED." }), limits, now).task
      expect(paused).toMatchObject({ state: "model_wait", resume_state: "planning", wait_model: "m", error: null })
      expect(paused.paused).toEqual({
        reason: "model",
        message: "The model m did not answer: Could not reach the LLM at http://x: connect ECONNREFUSED.\n" +
          "The task is paused in planning and keeps what it has done; once the model answers again, continue it with `luallm-agent resume --task t-123456`.",
        next_command: "luallm-agent resume --task t-123456"
      })
      expect(commandFor(paused)).toEqual(Command.EnsureModel())
      // Still down on resume: it stays paused for the state it left, not for model_wait.
      const again = transition(paused, Event.ModelFailed({ model: null, error: "still down" }), limits, now).task
      expect(again).toMatchObject({ state: "model_wait", resume_state: "planning", wait_model: "m" })
      expect(transition(again, Event.ModelReady({ model: "m" }), limits, now).task).toMatchObject({ state: "planning", paused: null, resume_state: null })
    })

    it("keeps the graph a stopped run left (finished nodes kept) and goes back to running it", () => {
      const executing = last(run(newTask("t", "sum", now), [Event.ModelReady({ model: "m" }), Event.Planned({ graph, missing: [] })]))
      const half: Graph = { ...graph, nodes: [{ ...(graph.nodes[0] as Graph["nodes"][number]), status: "complete", result: 1 }] }
      const paused = transition(executing, Event.ModelFailed({ model: null, error: "HTTP 503", graph: half }), limits, now).task
      expect(paused).toMatchObject({ state: "model_wait", resume_state: "graph_exec", graph: half })
      const back = transition(paused, Event.ModelReady({ model: "m" }), limits, now).task
      expect(commandFor(back)).toEqual(Command.ExecuteGraph({ graph: half }))
    })
  })

  describe("retrying a failed task", () => {
    const failedGraph: Graph = {
      ...graph,
      nodes: [
        { id: "a", action: "skill", skill_name: "mark", skill_args: {}, depends_on: [], status: "complete", retries: 0, max_retries: 1, result: "A" },
        { id: "b", action: "skill", skill_name: "read", skill_args: {}, depends_on: ["a"], status: "failed", retries: 1, max_retries: 1, error: "no file" },
        { id: "c", action: "llm_call", prompt_template: "{b}", depends_on: ["b"], status: "skipped", retries: 0, max_retries: 1 }
      ]
    }

    it("runs the failed nodes again from graph_exec, keeping the completed ones' results", () => {
      const failed = last(run(newTask("t", "sum", now), [
        Event.ModelReady({ model: "m" }),
        Event.Planned({ graph, missing: [] }),
        Event.GraphFinished({ graph: failedGraph, failed: [{ id: "b", error: "no file" }], result: null })
      ]))
      expect(failed.error).toContain("`luallm-agent resume --task t --retry-failed` runs the failed nodes again")
      expect(retryOf(failed)).toMatchObject({ _tag: "Nodes", nodes: ["b"] })
      const next = transition(failed, Event.RetryFailed(), limits, now)
      expect(next.to).toBe("graph_exec")
      expect(next.reason).toContain("retrying the failed node(s) b")
      expect(next.task).toMatchObject({ error: null, paused: null, steps: failed.steps + 1 })
      expect(next.task.graph?.nodes.map((node) => [node.id, node.status, node.result])).toEqual([["a", "complete", "A"], ["b", "pending", undefined], ["c", "pending", undefined]])
    })

    it("plans again a task that failed before its graph ran: no valid plan, a draft that kept failing, a rejected skill", () => {
      const planning = last(run(newTask("t", "sum", now), [Event.ModelReady({ model: "m" })]))
      const noPlan = last(run(planning, [Event.PlanRejected({ errors: ["x"] }), Event.PlanRejected({ errors: ["x"] }), Event.PlanRejected({ errors: ["x"] })]))
      const badDraft = last(run(planning, [
        Event.Planned({ graph, missing: [skill] }),
        Event.Drafted({ codePath: "/d/c.js", testPath: "/d/t.js" }),
        Event.TestsFailed({ report: failing, feedback: "1" }),
        Event.Drafted({ codePath: "/d/c.js", testPath: "/d/t.js" }),
        Event.TestsFailed({ report: failing, feedback: "2" })
      ]))
      const rejected = last(run(planning, [
        Event.Planned({ graph, missing: [skill] }),
        Event.Drafted({ codePath: "/d/c.js", testPath: "/d/t.js" }),
        Event.TestsPassed({ report: passing, tested }),
        Event.ApprovalRequested({ approvalId: "ap" }),
        Event.Rejected({ reason: "no" })
      ]))
      for (const failed of [noPlan, badDraft, rejected]) {
        expect(failed.state).toBe("failed")
        expect(failed.error).toContain("luallm-agent resume --task t --retry-failed")
        expect(retryOf(failed)).toEqual({ _tag: "Plan" })
        const next = transition(failed, Event.RetryFailed(), limits, now).task
        expect(next).toMatchObject({ state: "planning", graph: null, draft: null, missing_skills: [], plan_attempts: 0, plan_feedback: null, error: null })
        expect(commandFor(next)).toEqual(Command.Plan({ attempt: 1, feedback: null }))
      }
    })

    it("changes nothing in a task that did not fail", () => {
      const planning = last(run(newTask("t", "sum", now), [Event.ModelReady({ model: "m" })]))
      const next = transition(planning, Event.RetryFailed(), limits, now)
      expect(next.task.state).toBe("planning")
      expect(next.reason).toBe("only a failed task is retried; this one is planning")
    })
  })

  describe("a human's questions", () => {
    const planned = (missing: ReadonlyArray<typeof skill>) =>
      run(newTask("5f0c2d4e-1111", "sum", now), [Event.ModelReady({ model: "m" }), Event.Planned({ graph, missing, confirm: true })])

    it("keeps a plan that needs confirming in confirmation, and asks for it", () => {
      const waiting = last(planned([skill]))
      expect(waiting).toMatchObject({ state: "confirmation", graph, missing_skills: [skill], draft: null, paused: null })
      expect(commandFor(waiting)).toEqual(Command.ConfirmPlan({ graph, missing: [skill] }))
    })

    it("a confirmed plan drafts its missing skills first, or runs at once; the step names who confirmed", () => {
      const drafting = transition(last(planned([skill])), Event.PlanConfirmed({ by: "the terminal" }), limits, now)
      expect(drafting.task).toMatchObject({ state: "skill_draft", draft: { skill, attempt: 0 }, paused: null })
      expect(drafting.reason).toBe("plan confirmed by the terminal")
      expect(transition(last(planned([])), Event.PlanConfirmed({ by: "--yes" }), limits, now).task.state).toBe("graph_exec")
    })

    it("a declined plan ends the task as declined, saying nothing ran", () => {
      const declined = transition(last(planned([skill])), Event.PlanDeclined({ reason: "wrong file" }), limits, now).task
      expect(declined).toMatchObject({ state: "declined", paused: null })
      expect(declined.error).toBe(
        "The plan was declined (wrong file); nothing ran and no skill was drafted. Run the task again with a more precise request, or see a plan first with `luallm-agent run --plan-only \"<request>\"`."
      )
      expect(commandFor(declined)).toEqual(Command.Finished())
    })

    it("pauses an unanswered plan with the command for its tier, without using up a step", () => {
      const waiting = last(planned([skill]))
      const prompt = transition(waiting, Event.ConfirmationPending({ tier: "prompt" }), limits, now).task
      expect(prompt.steps).toBe(waiting.steps)
      expect(prompt.paused).toEqual({
        reason: "confirmation",
        message: "The plan (1 nodes, drafting csv_sum first) waits for a human to confirm it (approval_tiers.task_confirmation is \"prompt\"); nothing has run. " +
          "`luallm-agent status --task 5f0c2d4e` shows it; confirm it with `luallm-agent resume --task 5f0c2d4e --yes`, or discard the task with `luallm-agent reset --task 5f0c2d4e`.",
        next_command: "luallm-agent resume --task 5f0c2d4e --yes"
      })
      const human = transition(waiting, Event.ConfirmationPending({ tier: "human" }), limits, now).task
      expect(human.paused?.next_command).toBe("luallm-agent resume --task 5f0c2d4e")
      expect(human.paused?.message).toContain("only a human at a terminal may confirm it")
      expect(transition(prompt, Event.PlanConfirmed({ by: "--yes" }), limits, now).task.paused).toBeNull()
    })

    it("records an exec grant for this task and stays ready to run the graph", () => {
      const running = transition(last(planned([])), Event.PlanConfirmed({ by: "--yes" }), limits, now).task
      const granted = transition(running, Event.ExecGranted({ skill: "shell_safe", by: "the terminal" }), limits, "2026-01-02T00:00:00.000Z")
      expect(granted.task).toMatchObject({ state: "graph_exec", exec_grants: [{ skill: "shell_safe", by: "the terminal", at: "2026-01-02T00:00:00.000Z" }] })
      expect(granted.reason).toBe("exec granted to shell_safe for this task by the terminal")
      expect(commandFor(granted.task)).toEqual(Command.ExecuteGraph({ graph }))
    })

    it("pauses once for an exec grant with the command that grants it, and declines when refused", () => {
      const running = transition(last(planned([])), Event.PlanConfirmed({ by: "--yes" }), limits, now).task
      const pending = transition(running, Event.ExecPending({ skill: "shell_safe", tier: "human", commands: ["n: grep -c error /logs/app.log"] }), limits, now).task
      expect(pending).toMatchObject({ state: "graph_exec", steps: running.steps })
      expect(pending.paused?.reason).toBe("exec")
      expect(pending.paused?.next_command).toBe("luallm-agent resume --task 5f0c2d4e --allow-exec")
      expect(pending.paused?.message).toContain("Skill shell_safe runs commands on this machine (to run: n: grep -c error /logs/app.log)")
      expect(pending.paused?.message).toContain("set approval_tiers.skill_exec to \"auto\"")
      const declined = transition(pending, Event.ExecDeclined({ skill: "shell_safe", reason: "" }), limits, now).task
      expect(declined).toMatchObject({ state: "declined", paused: null })
      expect(declined.error).toContain("Running commands (exec) was refused to skill shell_safe, so the plan cannot run")
    })

    it("reads a task saved before grants existed as having none", () => {
      const { exec_grants: _, ...older } = Schema.encodeSync(TaskSchema)(newTask("t", "sum", now))
      expect(Schema.decodeUnknownSync(TaskSchema)(older).exec_grants).toEqual([])
    })
  })
})
