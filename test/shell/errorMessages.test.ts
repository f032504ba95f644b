/**
 * Every tagged error the CLI can meet, rendered the way a user sees it: one line starting with
 * `error: `, the facts the user gave (path, model, skill…), what to do next, no stack trace,
 * and the exit code. A `Data.TaggedError` (or `Schema.TaggedError`) added anywhere in src without
 * a row here fails the completeness test at the bottom.
 */
import { CommandDescriptor } from "@effect/cli"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, HashMap } from "effect"
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, relative } from "node:path"
import { DraftWriteError } from "../../src/agent/drafting.ts"
import { NodeAnswerInvalid, NodeDataTooLarge } from "../../src/agent/execution.ts"
import { NothingToRetry, NoTaskToResume, TaskIdTaken, TaskInProgress } from "../../src/Agent.ts"
import { AgentClosed } from "../../src/createAgent.ts"
import { ApprovalCallbackFailed } from "../../src/layers/Approver.ts"
import { parseCondition } from "../../src/core/conditions.ts"
import { fromJson } from "../../src/core/graph.ts"
import { MAX_JSON_DEPTH } from "../../src/core/jsonText.ts"
import { SinceInvalid } from "../../src/core/stats.ts"
import { newTask } from "../../src/core/task.ts"
import { Event, transition } from "../../src/core/taskMachine.ts"
import {
  ApprovalAlreadyResolved,
  ApprovalAmbiguous,
  ApprovalCorrupt,
  ApprovalIoError,
  ApprovalNotFound,
  PromotionRefused
} from "../../src/layers/Approvals.ts"
import { AuditReadError, AuditWriteError } from "../../src/layers/Audit.ts"
import {
  ApprovalNotDecided,
  ApprovalOfAnotherTask,
  ClusterNeedsPostgres,
  ClusterSendFailed,
  ClusterUnavailable,
  RemoteTaskError,
  WorkerListenFailed
} from "../../src/layers/Cluster.ts"
import { ConfigFileNotFound, ConfigFileUnreadable, ConfigInvalid } from "../../src/layers/Config.ts"
import {
  LlmBadResponse,
  LlmContextOverflow,
  LlmHttpError,
  LlmScriptExhausted,
  LlmSpecInvalid,
  LlmTimeout,
  LlmUnreachable,
  TaskTokenBudgetExceeded
} from "../../src/layers/Llm.ts"
import { CassetteInvalid, CassetteMismatch, CassetteWriteError } from "../../src/layers/llm/cassette.ts"
import {
  LuallmCommandFailed,
  LuallmNotFound,
  LuallmStatusInvalid,
  ModelNotReady,
  ModelNotRunning,
  NoModelAvailable
} from "../../src/layers/Luallm.ts"
import { TestFileFailed } from "../../src/layers/Sandbox.ts"
import {
  CapabilityDenied,
  CommandNotAllowed,
  FunctionNotExported,
  NotARegularFile,
  OutputTooLarge,
  PathNotAllowed,
  ResultNotJson,
  SandboxCrashed,
  SandboxWorkerMissing,
  SkillMemoryExceeded,
  SkillStalled,
  SkillThrew,
  SkillTimeout,
  TooManyHandles,
  UndeclaredDependency,
  WriteLimitExceeded
} from "../../src/layers/sandbox/errors.ts"
import { RunNotDeclared, TestFileMissing } from "../../src/layers/SkillRunner.ts"
import {
  DependencyCycle,
  DependencyMissing,
  InvalidSkillName,
  MetadataInvalid,
  SkillInvalid,
  SkillNotFound,
  SkillUnreadable
} from "../../src/layers/Skills.ts"
import {
  StateConflict,
  StateCorrupt,
  StateIoError,
  StateLocked,
  StoreUnavailable,
  TaskAmbiguous,
  TaskNotFound
} from "../../src/layers/State.ts"
import { ExecGrantNotSent } from "../../src/shell/commands/onCluster.ts"
import { ContextFileUnreadable, NoCodeInAnswer, OutputNotWritten } from "../../src/shell/commands/prompt.ts"
import { LogLevelInvalid, UnknownCommand, UnknownOption } from "../../src/shell/argv.ts"
import { cli } from "../../src/shell/cli.ts"
import { OutputExists, OutputNotAllowed, OutputProtected } from "../../src/shell/outputPath.ts"
import { ArgsNotJson, NoTestsRegistered } from "../../src/shell/commands/skills.ts"
import { ExitCodes, ExitWith, renderError } from "../../src/shell/exit.ts"
import { runCli } from "../support/cli.ts"
import { shellWords, whyNotParsed } from "../support/commandLine.ts"

interface Row {
  /** The case, when a class has several messages. */
  readonly variant?: string
  readonly error: { readonly _tag: string }
  /** What reaches the human, when the error is only part of it (default: the error itself). */
  readonly shown?: unknown
  /** What the message must name: the values the user gave or needs. */
  readonly facts: ReadonlyArray<string>
  readonly code?: number
}

const ID = "3f2a9c1e-7b4d-4e21-9a0f-5c6d7e8f9a0b"
const STATE_DIR = "/home/ada/.local/state/luallm-agent"
const PG_URL = "postgres://agent:***@db.internal:5432/agent"
const DRAFT = "/home/ada/.local/state/luallm-agent/drafts/csv_sum.js"
const request = (user: string) => ({
  method: "POST",
  url: "http://127.0.0.1:8080/v1/chat/completions",
  body: {
    model: "qwen2.5-7b-instruct",
    messages: [{ role: "system" as const, content: "You plan." }, { role: "user" as const, content: user }],
    temperature: 0.2
  }
})
const metadata = { prompt: "p", created_at: "2026-01-01T00:00:00.000Z", model: "qwen2.5-7b-instruct" }

const graphErrors = (plan: unknown) =>
  Either.match(fromJson(JSON.stringify(plan), metadata), {
    onLeft: (errors) => errors,
    onRight: () => []
  })
const llm = (id: string, depends_on: ReadonlyArray<string> = []) => ({ id, action: "llm_call", prompt_template: "p", depends_on })

// A cycle, as `validate` reports it to the model and, after the retries, in the task's error.
const [cycle] = graphErrors({ nodes: [llm("a", ["b"]), llm("b", ["a"])] })
// A condition error is told to the model inside the plan error that names its decision node;
// a human sees it in the task's error once the model has used up its plan retries.
const conditionError = Either.match(parseCondition("result >"), { onLeft: (error) => error, onRight: () => undefined })
const [badCondition] = graphErrors({
  nodes: [
    llm("fetch"),
    { id: "check", action: "decision", depends_on: ["fetch"], condition: "result >", if_true: "yes", if_false: "no" },
    llm("yes", ["check"]),
    llm("no", ["check"])
  ]
})

const now = "2026-01-01T10:00:00.000Z"
const limits = { max_task_steps: 50, max_plan_retries: 0, max_skill_retries: 2 }
const planRetriesSpent = (errors: ReadonlyArray<string>) =>
  transition({ ...newTask(ID, "Sum the sales", now), state: "planning" }, Event.PlanRejected({ errors }), limits, now).task.error

const pathRefusal = (reason: PathNotAllowed["reason"], rule: ReadonlyArray<string>) =>
  new PathNotAllowed({
    skill: "csv_sum",
    operation: "fs.writeFile",
    path: "~/reports/../secrets.txt",
    resolved: "/home/ada/secrets.txt",
    reason,
    rule
  })

const rows: ReadonlyArray<Row> = [
  // Agent
  {
    error: new TaskInProgress({ id: ID, state: "graph_exec" }),
    facts: ["3f2a9c1e", "graph_exec", "this process", "`await`", "Agent.reset(\"3f2a9c1e\")", "luallm-agent resume --task 3f2a9c1e", "luallm-agent reset --task 3f2a9c1e"]
  },
  { error: new NoTaskToResume({ location: STATE_DIR }), facts: [STATE_DIR, "luallm-agent run", "Agent.start"] },
  {
    variant: "no failed task",
    error: new NothingToRetry({ id: null, state: null, location: STATE_DIR }),
    facts: [STATE_DIR, "No failed task", "`luallm-agent tasks`", "`luallm-agent resume --task ID`"]
  },
  {
    variant: "a complete task",
    error: new NothingToRetry({ id: ID, state: "complete", location: STATE_DIR }),
    facts: [ID.slice(0, 8), "is complete: there is nothing to retry", "`luallm-agent run \"<request>\"`"]
  },
  {
    variant: "an unfinished task",
    error: new NothingToRetry({ id: ID, state: "model_wait", location: STATE_DIR }),
    facts: [ID.slice(0, 8), "model_wait, not failed", `\`luallm-agent resume --task ${ID.slice(0, 8)}\``]
  },
  {
    error: new TaskIdTaken({ id: ID, location: PG_URL }),
    facts: [ID, PG_URL, "luallm-agent resume --task 3f2a9c1e", "Agent.resume({ task: \"3f2a9c1e-7b4d-4e21-9a0f-5c6d7e8f9a0b\" })", "without an id"]
  },
  {
    error: new DraftWriteError({ path: `${STATE_DIR}/drafts/csv_sum.js`, reason: "ENOSPC: no space left on device" }),
    facts: [`${STATE_DIR}/drafts/csv_sum.js`, "ENOSPC", "skills.agent_dir", "luallm-agent resume"]
  },
  // The Promise facade (createAgent)
  {
    error: new ApprovalCallbackFailed({ question: "the drafted skill csv_sum (approval ab12cd34)", taskId: ID, reason: "it threw review service down" }),
    facts: ["onApproval", "csv_sum", "ab12cd34", "review service down", "task 3f2a9c1e stays where it was", "resume(\"3f2a9c1e\")", "luallm-agent resume --task 3f2a9c1e"]
  },
  { error: new AgentClosed({ method: "run" }), facts: ["run()", "close()", "createAgent"] },
  // Config
  { error: new ConfigFileNotFound({ path: "/home/ada/agent.json", via: "--config" }), facts: ["/home/ada/agent.json", "--config"] },
  {
    error: new ConfigFileUnreadable({ path: "/home/ada/agent.json", reason: "Unexpected token } in JSON at position 41" }),
    facts: ["/home/ada/agent.json", "Unexpected token }"]
  },
  {
    error: new ConfigInvalid({
      file: "/home/ada/agent.json",
      issues: [{ key: "limits.max_task_steps", message: `expected a positive integer, got "ten"`, source: { _tag: "file", file: "/home/ada/agent.json" } }]
    }),
    facts: ["/home/ada/agent.json", "limits.max_task_steps", `got "ten"`, "luallm-agent doctor"]
  },
  {
    variant: "two keys",
    error: new ConfigInvalid({
      file: "/home/ada/agent.json",
      issues: [
        { key: "limits.max_task_steps", message: `expected a positive integer, got "ten"`, source: { _tag: "file", file: "/home/ada/agent.json" } },
        { key: "llm.base_url", message: `expected an http:// or https:// URL, got "localhost:8089"; write it as "http://localhost:8089"`, source: { _tag: "env", variable: "LUALLM_AGENT_LLM_BASE_URL" } }
      ]
    }),
    facts: ["limits.max_task_steps", "llm.base_url", `"http://localhost:8089"`, "$LUALLM_AGENT_LLM_BASE_URL", "luallm-agent doctor"]
  },
  // Audit
  { error: new AuditWriteError({ path: `${STATE_DIR}/audit.jsonl`, reason: "ENOSPC: no space left on device" }), facts: [`${STATE_DIR}/audit.jsonl`, "ENOSPC", "audit.path"] },
  {
    variant: "Postgres",
    error: new AuditWriteError({ path: `${PG_URL} (luallm_audit)`, reason: "could not extend file: No space left on device" }),
    facts: [PG_URL, "No space left", "database server", "`store`"]
  },
  { error: new AuditReadError({ path: `${STATE_DIR}/audit.jsonl.2`, reason: "EACCES: permission denied" }), facts: [`${STATE_DIR}/audit.jsonl.2`, "EACCES", "audit.path"] },
  {
    variant: "Postgres",
    error: new AuditReadError({ path: `${PG_URL} (luallm_audit)`, reason: "Connection terminated unexpectedly" }),
    facts: [PG_URL, "Connection terminated", "database server"]
  },
  // State
  {
    error: new StateCorrupt({ path: `${STATE_DIR}/tasks/${ID}.jsonl`, reason: "state: expected one of pending, planning…", taskId: ID }),
    facts: [`${STATE_DIR}/tasks/${ID}.jsonl`, "state: expected", "luallm-agent reset --task 3f2a9c1e", "Agent.reset(\"3f2a9c1e\")"]
  },
  {
    variant: "first-wave file",
    error: new StateCorrupt({ path: `${STATE_DIR}/current_task.json`, reason: "the file is empty", taskId: null }),
    facts: [`${STATE_DIR}/current_task.json`, "the file is empty", "move it away"]
  },
  {
    error: new StateIoError({ path: `${STATE_DIR}/tasks/${ID}.jsonl`, operation: "write", reason: "EROFS: read-only file system" }),
    facts: [`${STATE_DIR}/tasks/${ID}.jsonl`, "write", "EROFS", "state_dir", "left as it was"]
  },
  {
    variant: "Postgres",
    error: new StateIoError({ path: `${PG_URL} (luallm_tasks, task ${ID})`, operation: "read", reason: "connect ECONNREFUSED 10.0.0.5:5432" }),
    facts: [PG_URL, "read", "ECONNREFUSED", "database server"]
  },
  {
    error: new StateLocked({ path: `${STATE_DIR}/tasks/${ID}.lock`, pid: 4242, since: "2026-01-01T10:00:00.000Z", command: "run" }),
    facts: [`${STATE_DIR}/tasks/${ID}.lock`, "4242", "2026-01-01T10:00:00.000Z", "`run`", "taken over automatically"]
  },
  {
    variant: "another machine",
    error: new StateLocked({ path: `${PG_URL} (luallm_task_locks, task ${ID})`, pid: 77, since: "2026-01-01T10:00:00.000Z", command: "resume", host: "worker-2" }),
    facts: ["pid 77 on worker-2", "`resume`", PG_URL]
  },
  {
    error: new StateConflict({ taskId: ID, expectedSeq: 12, location: PG_URL }),
    facts: ["3f2a9c1e", "transition 12", PG_URL, "luallm-agent status --task 3f2a9c1e"]
  },
  { error: new TaskNotFound({ id: "deadbeef", location: STATE_DIR }), facts: ["deadbeef", STATE_DIR, "luallm-agent tasks", "Agent.tasks"] },
  { error: new TaskAmbiguous({ id: "3f2a", matches: [ID, "3f2a0000-0000-4000-8000-000000000000"] }), facts: ["3f2a", ID, "more characters"] },
  {
    error: new StoreUnavailable({ url: PG_URL, reason: "connect ECONNREFUSED 10.0.0.5:5432" }),
    facts: [PG_URL, "ECONNREFUSED", "--store", "store: \"file\""]
  },
  // The task cluster
  {
    error: new ClusterNeedsPostgres({ command: "worker" }),
    facts: ["`worker`", "Postgres store", "\"file\"", "--store postgres://"]
  },
  {
    error: new ClusterUnavailable({ url: PG_URL, reason: "permission denied for schema public" }),
    facts: [PG_URL, "permission denied", "`store`", "--store"]
  },
  {
    error: new WorkerListenFailed({ address: "127.0.0.1:7400", reason: "Error: listen EADDRINUSE: address already in use 127.0.0.1:7400" }),
    facts: ["127.0.0.1:7400", "EADDRINUSE", "--port", "cluster.host"]
  },
  {
    error: new ClusterSendFailed({ task: ID, request: "Status", reason: "no runner answered within 10s" }),
    facts: ["Status", "3f2a9c1e", "no runner answered", "luallm-agent worker", "luallm-agent status --task 3f2a9c1e"]
  },
  {
    error: new RemoteTaskError({ task_id: ID, runner: "10.0.0.7:7400", error: "LlmUnreachable", detail: "The model server at http://10.0.0.9:8080 did not answer. Start it." }),
    facts: ["10.0.0.7:7400", "3f2a9c1e", "http://10.0.0.9:8080", "Start it."]
  },
  {
    error: new ApprovalNotDecided({ approval: "ab12cd34-0000", task: ID, status: "pending", wanted: "approved" }),
    facts: ["ab12cd34", "still pending", "luallm-agent approvals approve ab12cd34", "luallm-agent approvals reject ab12cd34", "state_dir"]
  },
  {
    variant: "decided otherwise",
    error: new ApprovalNotDecided({ approval: "ab12cd34-0000", task: ID, status: "rejected", wanted: "approved" }),
    facts: ["ab12cd34", "was rejected, not approved", "final", "luallm-agent resume --task 3f2a9c1e"]
  },
  {
    error: new ApprovalOfAnotherTask({ approval: "ab12cd34-0000", owner: ID, task: "9e8d7c6b-0000" }),
    facts: ["ab12cd34", "task 3f2a9c1e", "task 9e8d7c6b", "luallm-agent approvals list"]
  },
  // Luallm
  { error: new LuallmNotFound({ binary: "luallm", stateFile: "/home/ada/.luallm/state.json" }), facts: ["luallm", "/home/ada/.luallm/state.json", "luallm.binary", "llm.base_url"] },
  { error: new LuallmStatusInvalid({ source: "luallm status --json", reason: "servers[0].port: expected a number" }), facts: ["luallm status --json", "servers[0].port"] },
  { variant: "exit code", error: new LuallmCommandFailed({ command: "luallm start qwen", exitCode: 2, output: "no such model: qwen" }), facts: ["luallm start qwen", "exited with 2", "no such model"] },
  { variant: "timed out", error: new LuallmCommandFailed({ command: "luallm start qwen", exitCode: null, output: "" }), facts: ["luallm start qwen", "did not finish in time"] },
  {
    error: new ModelNotRunning({ model: "qwen2.5-7b-instruct", running: ["llama-3.2-3b"], startCommand: "luallm start qwen2.5-7b-instruct" }),
    facts: ["qwen2.5-7b-instruct", "llama-3.2-3b", "`luallm start qwen2.5-7b-instruct`"]
  },
  { error: new NoModelAvailable({ purpose: "planning", reason: "luallm reports no running model", binary: "luallm" }), facts: ["planning", "no running model", "model_policy.planning"] },
  { error: new ModelNotReady({ model: "qwen2.5-7b-instruct", waitedSeconds: 120, lastSeen: "HTTP 503 loading model" }), facts: ["qwen2.5-7b-instruct", "120s", "HTTP 503"] },
  // Llm
  {
    error: new LlmUnreachable({ url: "http://127.0.0.1:8080/v1/chat/completions", reason: "connect ECONNREFUSED 127.0.0.1:8080", attempts: 3, startCommand: "luallm start qwen" }),
    facts: ["http://127.0.0.1:8080/v1/chat/completions", "ECONNREFUSED", "3 attempts", "`luallm start qwen`"]
  },
  { variant: "idle", error: new LlmTimeout({ url: "http://127.0.0.1:8080/v1/chat/completions", limit: "idle", seconds: 120 }), facts: ["http://127.0.0.1:8080", "nothing for 120s", "limits.llm_timeout_seconds"] },
  { variant: "total", error: new LlmTimeout({ url: "http://127.0.0.1:8080/v1/chat/completions", limit: "total", seconds: 1800 }), facts: ["http://127.0.0.1:8080", "1800s", "limits.llm_call_max_seconds"] },
  { variant: "401", error: new LlmHttpError({ url: "http://127.0.0.1:8080/v1/chat/completions", status: 401, body: "invalid api key", attempts: 1, retryAfter: null }), facts: ["HTTP 401", "invalid api key", "llm.api_key"] },
  { variant: "404", error: new LlmHttpError({ url: "http://127.0.0.1:8080/v1/v1/chat/completions", status: 404, body: "", attempts: 1, retryAfter: null }), facts: ["HTTP 404", "/v1/v1/", "llm.base_url"] },
  { variant: "400", error: new LlmHttpError({ url: "http://127.0.0.1:8080/v1/chat/completions", status: 400, body: "the request exceeds the available context size", attempts: 1, retryAfter: null }), facts: ["HTTP 400", "context size", "llm.context_tokens"] },
  { variant: "429", error: new LlmHttpError({ url: "http://127.0.0.1:8080/v1/chat/completions", status: 429, body: "too many requests", attempts: 4, retryAfter: 20 }), facts: ["HTTP 429", "4 attempts", "busy or rate-limiting", "wait 20s", "llm.max_retries"] },
  { variant: "503", error: new LlmHttpError({ url: "http://127.0.0.1:8080/v1/chat/completions", status: 503, body: "Loading model", attempts: 4, retryAfter: null }), facts: ["HTTP 503", "loading its model", "llm.retry_max_seconds"] },
  { variant: "500", error: new LlmHttpError({ url: "http://127.0.0.1:8080/v1/chat/completions", status: 500, body: "CUDA out of memory", attempts: 3, retryAfter: null }), facts: ["HTTP 500", "3 attempts", "CUDA out of memory"] },
  { error: new LlmBadResponse({ url: "http://127.0.0.1:8080/v1/chat/completions", problem: "its body is not JSON", excerpt: "<html>502 Bad Gateway</html>" }), facts: ["http://127.0.0.1:8080", "not JSON", "502 Bad Gateway", "llm.base_url"] },
  { error: new LlmScriptExhausted({ request: 4, model: "fake", lastUserMessage: "Write the skill csv_sum", scripted: 3 }), facts: ["#4", "fake", "csv_sum", "3 replies"] },
  {
    error: new LlmContextOverflow({ model: "qwen2.5-7b-instruct", purpose: "plan", promptTokens: 9000, exact: true, answerTokens: 1024, contextTokens: 8192, shortened: ["the skill catalogue cut to names and one line each"] }),
    facts: ["9000 tokens", "1024", "8192-token context", "qwen2.5-7b-instruct", "skill catalogue", "llm.context_tokens"]
  },
  { error: new TaskTokenBudgetExceeded({ used: 998_000, next: 6_000, limit: 1_000_000, purpose: "node" }), facts: ["998000", "6000", "limits.max_task_tokens", "1000000", "resume"] },
  {
    variant: "result",
    error: new NodeDataTooLarge({ node: "rows", skill: "read_csv", direction: "result", size: 20_000_000, limit: 16_777_216 }),
    facts: [`Node "rows"`, "read_csv", "20000000", "16777216", "a quarter of the 64 MB of limits.skill_memory_mb"]
  },
  {
    variant: "arguments",
    error: new NodeDataTooLarge({ node: "stats", skill: "column_stats", direction: "arguments", size: 20_000_000, limit: 16_777_216 }),
    facts: [`Node "stats"`, "column_stats", "as its arguments", "20000000", "16777216", "limits.skill_memory_mb"]
  },
  { error: new NodeAnswerInvalid({ node: "totals", problems: ["answer.total: is missing"] }), facts: ["totals", "output_schema", "answer.total: is missing", "max_retries"] },
  // Cassettes
  {
    variant: "different request",
    error: new CassetteMismatch({ cassette: "test/fixtures/demo.jsonl", request: 2, expected: request("Sum the sales"), actual: request("Sum the costs"), recorded: 5 }),
    facts: ["#2", "test/fixtures/demo.jsonl", "Sum the sales", "Sum the costs", "--llm record:test/fixtures/demo.jsonl"]
  },
  {
    variant: "past the end",
    error: new CassetteMismatch({ cassette: "test/fixtures/demo.jsonl", request: 6, expected: null, actual: request("One more"), recorded: 5 }),
    facts: ["#6", "POST /v1/chat/completions", "qwen2.5-7b-instruct", "5 recorded", "--llm record:test/fixtures/demo.jsonl"]
  },
  { error: new CassetteInvalid({ path: "test/fixtures/demo.jsonl", line: 3, reason: "response.body is missing" }), facts: ["test/fixtures/demo.jsonl", "line 3", "response.body"] },
  { error: new CassetteWriteError({ path: "/readonly/demo.jsonl", reason: "EACCES: permission denied" }), facts: ["/readonly/demo.jsonl", "EACCES"] },
  { error: new LlmSpecInvalid({ spec: "replay" }), facts: [`"replay"`, "replay:<cassette.jsonl>"] },
  // Approvals
  { error: new ApprovalNotFound({ id: "deadbeef", dir: `${STATE_DIR}/pending_approvals` }), facts: ["deadbeef", `${STATE_DIR}/pending_approvals`, "luallm-agent approvals list"] },
  { error: new ApprovalAmbiguous({ id: "3f2a", matches: [ID, "3f2a0000-0000-4000-8000-000000000000"] }), facts: ["3f2a", ID] },
  { error: new ApprovalCorrupt({ path: `${STATE_DIR}/pending_approvals/skill_csv_sum_${ID}.json`, reason: "status: expected pending" }), facts: [`skill_csv_sum_${ID}.json`, "status"] },
  { error: new ApprovalAlreadyResolved({ id: ID, status: "rejected" }), facts: [ID, "rejected"] },
  {
    variant: "its task reset",
    error: new ApprovalAlreadyResolved({ id: ID, status: "rejected", reason: "its task was discarded with reset" }),
    facts: [ID, "already rejected (its task was discarded with reset)"]
  },
  { variant: "tests failed", error: new PromotionRefused({ id: ID, skill: "csv_sum", reason: "its last test run did not pass (2/3)" }), facts: ["csv_sum", ID, "2/3", "luallm-agent approvals show 3f2a9c1e"] },
  { variant: "draft changed", error: new PromotionRefused({ id: ID, skill: "csv_sum", reason: "the draft changed after it was approved" }), facts: ["csv_sum", "changed after it was approved"] },
  { error: new ApprovalIoError({ path: "/home/ada/skills/csv_sum.js", reason: "EACCES: permission denied" }), facts: ["/home/ada/skills/csv_sum.js", "EACCES"] },
  // Skills
  { error: new InvalidSkillName({ name: "../etc/passwd" }), facts: ["../etc/passwd", "luallm-agent skills list"] },
  { error: new SkillNotFound({ name: "csv_sum", searched: ["/home/ada/skills", "/opt/luallm-agent/skills"] }), facts: ["csv_sum", "/home/ada/skills", "/opt/luallm-agent/skills"] },
  { error: new SkillUnreadable({ file: DRAFT, reason: "it has 2000000 bytes, more than the 1048576 a skill may have" }), facts: [DRAFT, "2000000 bytes"] },
  { error: new MetadataInvalid({ file: DRAFT, reason: "the header is not JSON", line: 1 }), facts: [`${DRAFT}:1`, "not JSON", "@skill"] },
  { error: new DependencyMissing({ skill: "report", dependency: "csv_sum", searched: ["/home/ada/skills"] }), facts: ["report", "csv_sum", "/home/ada/skills"] },
  { error: new DependencyCycle({ cycle: ["a", "b", "a"] }), facts: ["a → b → a"] },
  { error: new SkillInvalid({ file: DRAFT, problems: [`the declared path "/etc/*" is not inside allowed_paths (~/data/**)`] }), facts: [DRAFT, "/etc/*", "~/data/**"] },
  // Sandbox
  { variant: "parent segment", error: pathRefusal("parent_segment", []), facts: ["csv_sum", "fs.writeFile", "~/reports/../secrets.txt", ".."] },
  { variant: "protected", error: pathRefusal("protected", ["/home/ada/skills"]), facts: ["csv_sum", "/home/ada/secrets.txt", "/home/ada/skills", "allowed_paths"] },
  { variant: "not declared", error: pathRefusal("not_declared", ["~/reports/*.md"]), facts: ["csv_sum", "/home/ada/secrets.txt", "~/reports/*.md"] },
  { variant: "not allowed", error: pathRefusal("not_allowed", ["~/data/**"]), facts: ["csv_sum", "/home/ada/secrets.txt", "~/data/**", "allowed_paths"] },
  { variant: "symlink escape", error: pathRefusal("symlink_escape", ["~/reports/**"]), facts: ["csv_sum", "/home/ada/secrets.txt", "symlink"] },
  { variant: "system", error: pathRefusal("system", ["/proc"]), facts: ["csv_sum", "/home/ada/secrets.txt", "/proc", "allowed_paths"] },
  { variant: "swapped", error: pathRefusal("swapped", ["~/reports/**"]), facts: ["csv_sum", "/home/ada/secrets.txt", "~/reports/**", "replaced by a symlink"] },
  { variant: "recursion uncovered", error: pathRefusal("recursion_uncovered", ["~/reports/*"]), facts: ["csv_sum", "/home/ada/secrets.txt", "~/reports/*", "dir/**"] },
  {
    variant: "recursion protected",
    error: pathRefusal("recursion_protected", ["the config file (./luallm-agent.json) (/home/ada/luallm-agent.json)"]),
    facts: ["csv_sum", "/home/ada/secrets.txt", "/home/ada/luallm-agent.json"]
  },
  {
    error: new NotARegularFile({ skill: "csv_sum", operation: "fs.readFile", path: "~/data/pipe", resolved: "/home/ada/data/pipe", kind: "FIFO" }),
    facts: ["csv_sum", "fs.readFile", "~/data/pipe", "/home/ada/data/pipe", "FIFO", "regular file"]
  },
  {
    error: new WriteLimitExceeded({ skill: "csv_sum", operation: "fs.appendFile", path: "~/data/huge.bin", attempted: 4_294_967_297, limit: 268_435_456 }),
    facts: ["csv_sum", "fs.appendFile", "~/data/huge.bin", "4294967297", "268435456"]
  },
  { error: new UndeclaredDependency({ skill: "csv_sum", requested: `require("child_process")`, declared: [] }), facts: ["csv_sum", `require("child_process")`, "dependencies"] },
  { error: new SkillTimeout({ skill: "csv_sum", seconds: 30 }), facts: ["csv_sum", "30 s", "limits.skill_timeout_seconds"] },
  { variant: "heap", error: new SkillMemoryExceeded({ skill: "csv_sum", kind: "heap", limit: 64 }), facts: ["csv_sum", "64 MB", "limits.skill_memory_mb"] },
  { variant: "stack", error: new SkillMemoryExceeded({ skill: "csv_sum", kind: "stack", limit: 256 }), facts: ["csv_sum", "256 KiB"] },
  { error: new TooManyHandles({ skill: "csv_sum", limit: 10, path: "~/data/11.csv" }), facts: ["csv_sum", "~/data/11.csv", "10"] },
  { error: new SkillThrew({ skill: "csv_sum", file: DRAFT, error: "TypeError: rows.map is not a function", line: 14 }), facts: ["csv_sum", `${DRAFT}:14`, "TypeError: rows.map is not a function"] },
  { variant: "not declared", error: new CapabilityDenied({ skill: "csv_sum", capability: "exec", reason: "not_declared" }), facts: ["csv_sum", `"capabilities": ["exec"]`] },
  { variant: "not granted", error: new CapabilityDenied({ skill: "shell_safe", capability: "exec", reason: "not_granted" }), facts: ["shell_safe", "approval_tiers.skill_exec", "--allow-exec"] },
  { variant: "draft", error: new CapabilityDenied({ skill: "csv_sum", capability: "exec", reason: "draft" }), facts: ["csv_sum", "draft"] },
  { error: new CommandNotAllowed({ skill: "shell_safe", command: "rm", reason: "only ls, wc, head, tail, grep, find, cat, sort, uniq may be run (as argv, never through a shell)" }), facts: ["shell_safe", `exec("rm")`, "only ls, wc"] },
  { error: new OutputTooLarge({ skill: "csv_sum", what: "result", size: 2_000_000, limit: 1_048_576 }), facts: ["csv_sum", "2000000", "1048576"] },
  { error: new ResultNotJson({ skill: "csv_sum", reason: "a function at .format" }), facts: ["csv_sum", "a function at .format"] },
  { error: new FunctionNotExported({ skill: "csv_sum", function: "run", exported: ["main"] }), facts: ["csv_sum", "run", "main"] },
  { error: new SkillStalled({ skill: "csv_sum", function: "run" }), facts: ["csv_sum", "run"] },
  { error: new SandboxCrashed({ skill: "csv_sum", reason: "the QuickJS engine did not load (out of memory)" }), facts: ["csv_sum", "QuickJS engine did not load"] },
  { error: new SandboxWorkerMissing({ script: "/opt/luallm-agent/dist/sandboxWorker.cjs" }), facts: ["/opt/luallm-agent/dist/sandboxWorker.cjs", "`npm run build`"] },
  { variant: "draft", error: new TestFileFailed({ skill: "csv_sum", file: DRAFT.replace(".js", ".test.js"), reason: "it registers 150 tests, more than the 100 allowed.", draft: true }), facts: ["luallm-agent skills test csv_sum --draft", "csv_sum", "csv_sum.test.js", "150 tests", "luallm-agent skills test csv_sum"] },
  {
    variant: "shipped",
    error: new TestFileFailed({ skill: "read_csv", file: "/opt/luallm-agent/skills/read_csv.test.js", reason: "SyntaxError: unexpected token", draft: false }),
    facts: ["read_csv", "SyntaxError", "`luallm-agent skills test read_csv`"]
  },
  // SkillRunner
  { error: new TestFileMissing({ skill: "csv_sum", file: "/home/ada/skills/csv_sum.test.js" }), facts: ["csv_sum", "/home/ada/skills/csv_sum.test.js"] },
  { error: new RunNotDeclared({ skill: "csv_sum", declared: ["summarise"] }), facts: ["csv_sum", "summarise", "public_functions"] },
  // Plans: shown to the model while planning, and to the human in the task's error after the retries.
  { variant: "cycle", error: cycle ?? { _tag: "missing" }, facts: [`"a"`, `"b"`, "cycle"] },
  {
    error: conditionError ?? { _tag: "missing" },
    shown: planRetriesSpent([badCondition?.message ?? "?"]),
    facts: [`Decision "check"`, `"result >"`, conditionError?.message ?? "?", "limits.max_plan_retries"]
  },
  // The task cluster: exec is never granted by a message
  {
    variant: "run",
    error: new ExecGrantNotSent({ command: "run", task: null }),
    facts: ["--allow-exec", "grants nothing by itself", "luallm-agent --on local run \"<request>\" --allow-exec", "approval_tiers.skill_exec"]
  },
  {
    variant: "resume",
    error: new ExecGrantNotSent({ command: "resume", task: ID }),
    facts: ["luallm-agent --on local resume --task 3f2a9c1e --allow-exec", "Nothing was sent"]
  },
  // Shell commands
  { error: new ContextFileUnreadable({ path: "/home/ada/notes.md", reason: "ENOENT: no such file or directory" }), facts: ["/home/ada/notes.md", "ENOENT"] },
  { error: new NoCodeInAnswer({ out: "sum.py", model: "qwen2.5-7b-instruct", answer: "I cannot help with that." }), facts: ["sum.py", "qwen2.5-7b-instruct", "I cannot help with that."] },
  { error: new OutputNotWritten({ path: "/readonly/sum.py", reason: "EACCES: permission denied" }), facts: ["/readonly/sum.py", "EACCES"] },
  { error: new SinceInvalid({ value: "last tuesday" }), facts: [`"last tuesday"`, "2024-05-01"] },
  {
    error: new OutputNotAllowed({ path: "../sum.py", resolved: "/home/ada/sum.py", allowed: ["~/projects/**"] }),
    facts: ["../sum.py", "/home/ada/sum.py", "~/projects/**", `"/home/ada/**"`]
  },
  {
    error: new OutputProtected({ path: "notes.py", resolved: `${STATE_DIR}/current_task.json`, root: `state_dir (${STATE_DIR})` }),
    facts: ["notes.py", `${STATE_DIR}/current_task.json`, `state_dir (${STATE_DIR})`, "whatever allowed_paths says"]
  },
  { error: new OutputExists({ path: "/home/ada/projects/sum.py" }), facts: ["/home/ada/projects/sum.py", "--force"] },
  {
    error: new ArgsNotJson({ reason: "expected a JSON object, got [1]" }),
    shown: new ExitWith({ code: ExitCodes.usage, error: new ArgsNotJson({ reason: "expected a JSON object, got [1]" }) }),
    code: ExitCodes.usage,
    facts: ["--args", "got [1]", `--args '{"path": "~/data/file.csv"}'`]
  },
  {
    error: new NoTestsRegistered({ skill: "csv_sum", file: `${STATE_DIR}/drafts/csv_sum.test.js` }),
    facts: ["csv_sum", `${STATE_DIR}/drafts/csv_sum.test.js`, "register no tests", "test(name, fn)"]
  },
  {
    error: new LogLevelInvalid({ value: "quiet" }),
    shown: new ExitWith({ code: ExitCodes.usage, error: new LogLevelInvalid({ value: "quiet" }) }),
    code: ExitCodes.usage,
    facts: [`--log-level "quiet"`, "warning", "debug"]
  },
  {
    error: new UnknownOption({ option: "--yse", command: "luallm-agent run", suggestion: "--yes" }),
    shown: new ExitWith({ code: ExitCodes.usage, error: new UnknownOption({ option: "--yse", command: "luallm-agent run", suggestion: "--yes" }) }),
    code: ExitCodes.usage,
    facts: ["--yse", "luallm-agent run has no option", "Did you mean --yes?", "`luallm-agent run --help`"]
  },
  {
    error: new UnknownCommand({ word: "aprove", command: "luallm-agent approvals", commands: ["approve", "list", "reject", "retest", "show"] }),
    shown: new ExitWith({
      code: ExitCodes.usage,
      error: new UnknownCommand({ word: "aprove", command: "luallm-agent approvals", commands: ["approve", "list", "reject", "retest", "show"] })
    }),
    code: ExitCodes.usage,
    facts: [`luallm-agent approvals has no command "aprove"`, "Did you mean approve?", "approve, list, reject, retest, show", "`luallm-agent approvals --help`"]
  }
]

/** A command to type, or a word that starts a step a human can take. */
const nextStep = /`[^`]+`|\b(run|set|check|fix|start|add|use|pass|give|choose|create|drop|install|remove|move|raise|rephrase|write|export|return|close|declare|approve|wait|record|make sure|point|process|report|look|rename|try|inspect|stop|discard|shorten|change|edit)\b/i

/** The last sentence (or line) of a message. */
const lastSentence = (message: string): string =>
  message.trim().split(/\n|(?<=[.!?)])\s+(?=[A-Z`"])/).filter((part) => part.trim() !== "").at(-1) ?? ""

describe("every failure message", () => {
  it.each(rows.map((row) => [`${row.error._tag}${row.variant === undefined ? "" : ` (${row.variant})`}`, row] as const))(
    "%s says what happened, with the facts, and what to do next",
    (_, row) => {
      const rendered = renderError(row.shown ?? row.error)
      expect(rendered.code).toBe(row.code ?? ExitCodes.failure)
      expect(rendered.message.startsWith("error: ")).toBe(true)
      for (const fact of row.facts) expect(rendered.message).toContain(fact)
      // The next step comes last, where the eye lands after reading what happened.
      expect(lastSentence(rendered.message)).toMatch(nextStep)
      expect(rendered.message).not.toMatch(/\n\s+at \S|\.ts:\d+:\d+/)
      expect(rendered.message).not.toMatch(/undefined|\[object Object\]|NaN/)
    }
  )

  it("an ExitWith prints nothing more and exits with its code: the command already said what happened", () => {
    expect(renderError(new ExitWith({ code: ExitCodes.paused }))).toEqual({ message: "", code: ExitCodes.paused })
  })

  it("--args that is not a JSON object is refused with one message and the usage exit code", () => {
    const home = mkdtempSync(join(tmpdir(), "luallm-agent-home-"))
    const run = runCli(["skills", "run", "read_file", "--args", "[1]"], { env: { HOME: home }, cwd: home })
    expect(run.code).toBe(ExitCodes.usage)
    expect(run.stderr.trim()).toBe(
      `error: --args is not a JSON object: expected a JSON object, got [1]. Pass run's arguments as JSON, e.g. --args '{"path": "~/data/file.csv"}'.`
    )
  })
})

// ---------------------------------------------------------------------------------------------
// JSON from outside: however deep it nests, one clear line and never a stack.

describe("deeply nested JSON from outside", () => {
  const freshHome = () => mkdtempSync(join(tmpdir(), "luallm-agent-home-"))
  const oneClearLine = (run: { readonly stderr: string; readonly stdout: string }) => {
    const lines = run.stderr.trim().split("\n")
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^error: /)
    expect(lines[0]).toContain(`deeper than ${MAX_JSON_DEPTH} levels`)
    expect(`${run.stdout}${run.stderr}`).not.toMatch(/RangeError|Maximum call stack|\n\s+at /)
  }

  it.each([
    ["100000 opening brackets", "[".repeat(100_000)],
    ["balanced arrays 60000 deep", `${"[".repeat(60_000)}${"]".repeat(60_000)}`],
    ["objects 20000 deep", `{"a":${`{"a":`.repeat(20_000)}1${"}".repeat(20_001)}`]
  ])("--args of %s is refused in one line with the usage exit code", (_, args) => {
    const home = freshHome()
    const run = runCli(["skills", "run", "read_file", "--args", args], { env: { HOME: home }, cwd: home })
    expect(run.code).toBe(ExitCodes.usage)
    oneClearLine(run)
    expect(run.stderr).toContain("--args is not a JSON object")
  })

  it("a config file nested 100000 deep is named in one line", () => {
    const home = freshHome()
    writeFileSync(join(home, "luallm-agent.json"), `{"limits":${"[".repeat(100_000)}`)
    const run = runCli(["config"], { env: { HOME: home }, cwd: home })
    expect(run.code).toBe(ExitCodes.failure)
    oneClearLine(run)
    expect(run.stderr).toContain(join(home, "luallm-agent.json"))
  })

  it("an approval record nested 100000 deep is reported as damaged in one line", () => {
    const home = freshHome()
    const dir = join(home, "state", "pending_approvals")
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, `skill_csv_sum_${ID}.json`), `{"id":${"[".repeat(100_000)}${"]".repeat(100_000)}}`)
    const run = runCli(["approvals", "list"], { env: { HOME: home, LUALLM_AGENT_STATE_DIR: join(home, "state") }, cwd: home })
    expect(run.code).toBe(ExitCodes.failure)
    oneClearLine(run)
    expect(run.stderr).toContain(`skill_csv_sum_${ID}.json`)
  })

  it("a saved task nested 100000 deep is reported as damaged in one line", () => {
    const home = freshHome()
    const dir = join(home, "state")
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, "current_task.json"), `{"id":${"[".repeat(100_000)}`)
    const run = runCli(["status"], { env: { HOME: home, LUALLM_AGENT_STATE_DIR: dir }, cwd: home })
    expect(run.code).toBe(ExitCodes.failure)
    oneClearLine(run)
    expect(run.stderr).toContain(join(dir, "current_task.json"))
  })

  it("a luallm state file nested 100000 deep is a failed doctor check, not a stack", () => {
    const home = freshHome()
    writeFileSync(join(home, "state.json"), `{"servers":${"[".repeat(100_000)}`)
    const env = { HOME: home, LUALLM_AGENT_LUALLM_BINARY: join(home, "no-luallm"), LUALLM_AGENT_LUALLM_STATE_FILE: join(home, "state.json") }
    const run = runCli(["doctor"], { env, cwd: home })
    expect(run.stdout).toContain(`${join(home, "state.json")} did not hold a valid luallm status: it nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels`)
    expect(`${run.stdout}${run.stderr}`).not.toMatch(/RangeError|Maximum call stack|\n\s+at /)
  })

  it("a cassette line nested 100000 deep is named by its line in one line", () => {
    const home = freshHome()
    const cassette = join(home, "deep.jsonl")
    writeFileSync(cassette, `{"request":${"[".repeat(100_000)}\n`)
    const run = runCli(["--llm", `replay:${cassette}`, "quick-prompt", "hi"], { env: { HOME: home }, cwd: home })
    expect(run.code).toBe(ExitCodes.failure)
    oneClearLine(run)
    expect(run.stderr).toContain(`The cassette ${cassette}, line 1, cannot be replayed`)
  })

  it("an audit line nested 100000 deep is listed as not valid, never printed as a stack", () => {
    const home = freshHome()
    const audit = join(home, "audit.jsonl")
    const deep = `{"ts":"2026-01-01T00:00:00.000Z","event":"e","task_id":null,"data":{"a":${"[".repeat(100_000)}${"]".repeat(100_000)}}}`
    writeFileSync(audit, `${deep}\n`)
    const env = { HOME: home, LUALLM_AGENT_AUDIT_PATH: audit }
    const log = runCli(["log"], { env, cwd: home })
    const stats = runCli(["stats"], { env, cwd: home })
    expect([log.code, stats.code]).toEqual([0, 0])
    expect(`${log.stdout}${log.stderr}`).toContain(`${audit}:1 is not a valid audit line`)
    expect(`${stats.stdout}${stats.stderr}`).toContain(`not valid audit lines and were skipped (first: ${audit}:1)`)
    for (const run of [log, stats]) expect(`${run.stdout}${run.stderr}`).not.toMatch(/RangeError|Maximum call stack|\n\s+at /)
  })
})

// ---------------------------------------------------------------------------------------------
// Completeness: every `Data.TaggedError` or `Schema.TaggedError` class in src has a row (or a reason
// above why not).

const srcDir = join(import.meta.dirname, "..", "..", "src")
const sourceFiles = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : []
  )

interface Declared {
  readonly tag: string
  readonly file: string
  readonly exported: boolean
}

const declared: ReadonlyArray<Declared> = sourceFiles(srcDir).flatMap((file) =>
  Array.from(
    readFileSync(file, "utf8").matchAll(/^(export\s+)?class\s+\w+\s+extends\s+(?:Data\.TaggedError\("(\w+)"\)|Schema\.TaggedError<\w+>\(\)\("(\w+)")/gm),
    (match) => ({ tag: match[2] ?? match[3] ?? "", file: relative(srcDir, file), exported: match[1] !== undefined })
  )
)

/** Classes a test cannot construct, and how they are covered instead. */
const coveredElsewhere: Readonly<Record<string, string>> = {
  ExitWith: "renders as no message, or as the error it carries; tested above"
}

describe("the table of failure messages", () => {
  it("finds the tagged errors in src", () => {
    expect(declared.length).toBeGreaterThan(50)
    expect(declared.map((d) => d.tag)).toContain("ConfigInvalid")
    expect(declared.map((d) => d.tag)).toContain("SkillTimeout")
  })

  it("has a row for every tagged error class in src", () => {
    const covered = new Set([...rows.map((row) => row.error._tag), ...Object.keys(coveredElsewhere)])
    const missing = declared.filter((d) => !covered.has(d.tag)).map((d) => `${d.tag} (${d.file})`)
    expect(missing).toEqual([])
  })

  it("has no row for a tag that no longer exists", () => {
    const tags = new Set(declared.map((d) => d.tag))
    const stale = [...rows.map((row) => row.error._tag), ...Object.keys(coveredElsewhere)].filter((tag) => !tags.has(tag))
    expect(stale).toEqual([])
  })

  it("covers elsewhere only classes that cannot be constructed here (or that render as no message)", () => {
    const privateTags = declared.filter((d) => !d.exported).map((d) => d.tag)
    expect(Object.keys(coveredElsewhere).filter((tag) => tag !== "ExitWith").sort()).toEqual([...privateTags].sort())
  })
})

// ---------------------------------------------------------------------------------------------
// Every command a message suggests works as printed: it parses against the CLI's own command tree
// (subcommands, options, arguments), the way `luallm-agent` itself would parse it.

/** The `luallm-agent …` commands quoted in `text` (between backticks), each as the words after the program. */
const suggestedIn = (text: string): ReadonlyArray<ReadonlyArray<string>> =>
  Array.from(text.matchAll(/`luallm-agent ([^`]+)`/g), (m) => m[1] ?? "")
    .flatMap(shellWords)
    .map((words) => (words[0] === "luallm-agent" ? words.slice(1) : words))

/** Each command that does not parse, where it was found and why. */
const unparsed = (commands: ReadonlyArray<{ readonly where: string; readonly words: ReadonlyArray<string> }>) =>
  Effect.map(
    Effect.forEach(commands, ({ where, words }) => Effect.map(whyNotParsed(words), (why) => (why === undefined ? [] : [`${where}: luallm-agent ${words.join(" ")} — ${why}`]))),
    (found) => found.flat()
  )

describe("suggested commands", () => {
  it.effect("every command a failure message suggests parses against the CLI's command tree", () =>
    Effect.gen(function*() {
      const suggestions = rows.flatMap((row) => suggestedIn(renderError(row.shown ?? row.error).message).map((words) => ({ row: row.error._tag, words })))
      expect(suggestions.length).toBeGreaterThan(10)
      expect(yield* unparsed(suggestions.map(({ row, words }) => ({ where: row, words })))).toEqual([])
    }))

  it.effect("so does every `luallm-agent …` command written in src's strings, with its ${…} values filled in", () =>
    Effect.gen(function*() {
      const commandNames = new Set(Array.from(HashMap.keys(CommandDescriptor.getSubcommands(cli.descriptor))))
      const commands = sourceFiles(srcDir).flatMap((file) =>
        readFileSync(file, "utf8")
          .split("\n")
          // Code, not comments: what a user can be shown.
          .filter((line) => !/^\s*(\*|\/\/|\/\*)/.test(line))
          .map((line) => line.replace(/\$\{[^}]*\}/g, "3f2a9c1e"))
          .flatMap((line) =>
            Array.from(
              line.matchAll(/luallm-agent((?: +(?:"[^"]*"|'[^']*'|[^\s`"'()&\\—]+))+)/g),
              (m) => shellWords((m[1] ?? "").trim().replace(/[.,;:]$/, ""))[0] ?? []
            )
          )
          // A run of words after the program that starts with a command, not prose ("the luallm-agent package").
          .filter((words) => commandNames.has(words[0] ?? "") || (words[0] ?? "").startsWith("-"))
          .map((words) => ({ where: relative(srcDir, file), words }))
      )
      expect(commands.length).toBeGreaterThan(20)
      expect(yield* unparsed(commands)).toEqual([])
    }))

  it.effect("a wrong suggestion is caught: an unknown subcommand, option or missing argument", () =>
    Effect.gen(function*() {
      expect(yield* whyNotParsed(["skills", "tset", "csv_sum"])).toBeDefined()
      expect(yield* whyNotParsed(["skills", "test", "csv_sum", "--drafts"])).toContain("Did you mean --draft?")
      expect(yield* whyNotParsed(["approvals", "approve"])).toBeDefined()
      expect(yield* whyNotParsed(["skills", "test", "csv_sum", "--draft"])).toBeUndefined()
    }))

  it("a failed draft's message points at the draft's own tests (`--draft`), which the printed command runs", () => {
    const task = {
      ...newTask(ID, "Sum the sales", now),
      state: "skill_test" as const,
      draft: {
        skill: { name: "csv_sum", purpose: "sum", example_args: {} },
        attempt: 4,
        code_path: DRAFT,
        test_path: DRAFT.replace(".js", ".test.js"),
        feedback: null,
        test_report: null,
        tested: null,
        approval_id: null
      }
    }
    const failed = transition(task, Event.TestsFailed({ report: null, feedback: "1 of 1 tests failed" }), { ...limits, max_skill_retries: 3 }, now).task
    expect(suggestedIn(failed.error ?? "")).toEqual([["skills", "test", "csv_sum", "--draft"], ["resume", "--task", ID.slice(0, 8), "--retry-failed"]])
  })
})
