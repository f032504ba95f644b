/**
 * luallm-agent as a library: the `Agent` service, the services it depends on with their live
 * and test layers, their errors, and the schemas of what the agent reads and writes.
 *
 * An embedding app provides the outside world and gets the agent:
 *
 *   const AgentForApp = AgentDefault.pipe(
 *     Layer.provideMerge(LlmLive),            // or LlmFake(script), llmLayerFor("replay:cassette.jsonl")
 *     Layer.provideMerge(LuallmLive),
 *     Layer.provideMerge(AuditLive),          // or AuditTest
 *     Layer.provideMerge(AppConfigFrom(config)),
 *     Layer.provideMerge(NodeHttpClient.layer),
 *     Layer.provideMerge(NodeContext.layer)   // FileSystem, Path, CommandExecutor
 *   )
 *   const outcome = yield* Effect.flatMap(Agent, (agent) => agent.run("…"))
 *
 * An app without Effect uses `createAgent({ … })`: the same agent as Promises.
 *
 * The package ships this file built: `dist/index.js` (one ES module, every package left
 * external, so the app's copy of `effect` is shared) with declarations in `dist/types`. In a
 * clone, Deno, tsx and vitest can load it as it is.
 */

// The agent
export {
  Agent,
  AgentDefault,
  type AgentError,
  AgentLive,
  type AgentOutcome,
  AgentServicesLive,
  agentWithApprover,
  NothingToRetry,
  NoTaskToResume,
  type PlanPreview,
  type Progress,
  type ProgressCallback,
  type ProgressListener,
  type ResetOutcome,
  type ResumeOptions,
  type RunOptions,
  type TaskHandle,
  TaskInProgress
} from "./Agent.ts"

// The agent for apps without Effect: Promises and callbacks
export {
  AgentClosed,
  type ApprovalRequest,
  createAgent,
  type CreateAgentOptions,
  type PromiseAgent,
  type PromiseTaskHandle,
  type ResumeTaskOptions,
  type StartOptions
} from "./createAgent.ts"

// Questions for a human: confirming a plan, approving a draft, granting exec
export {
  Answer,
  ApprovalCallbackFailed,
  type AskedQuestion,
  Approver,
  ApproverFrom,
  ApproverPause,
  ApproverQuestions,
  ApproverQueue,
  type ApproverShape,
  describeQuestion,
  Question,
  type StandingAnswers,
  withStandingAnswers
} from "./layers/Approver.ts"
export { commandLine, type PlannedNode, type PlanSummary, type SkillFacts, summarizePlan } from "./core/planSummary.ts"

// Configuration
export { type AgentConfig, type ConfigEnvironment, ConfigSchema, defaultConfig, Tier } from "./core/config.ts"
export {
  AppConfig,
  AppConfigFrom,
  AppConfigLive,
  type AppConfigShape,
  type ApprovalAction,
  type ConfigError,
  ConfigFileNotFound,
  ConfigFileUnreadable,
  ConfigInvalid,
  configInside,
  type ConfigSettings,
  type LoadOptions,
  type ModelPurpose
} from "./layers/Config.ts"

// The persisted task and its graph
export { ExecGrant, type Pause, SkillDraft, MissingSkill, newTask, isTerminal, Task, TaskStateName } from "./core/task.ts"
export {
  type ActionNode,
  type DecisionNode,
  fromJson,
  Graph,
  GraphError,
  GraphMetadata,
  type LlmCallNode,
  Node,
  NodeStatus,
  PlanGraph,
  type SkillNode,
  topologicalSort,
  validate
} from "./core/graph.ts"
export { parseMetadata, SkillMetadata, SkillName } from "./core/skillMeta.ts"
export { TestReport, TestResult } from "./core/testHarness.ts"

// Services
export {
  Audit,
  AuditEntry,
  type AuditEvent,
  AuditLive,
  AuditMemory,
  AuditReader,
  AuditReaderLive,
  type AuditReaderShape,
  AuditReadError,
  type AuditShape,
  AuditTest,
  AuditWriteError,
  CurrentTaskId,
  inTask,
  makeFileAudit,
  readAuditLog
} from "./layers/Audit.ts"
export {
  defaultTask,
  resolveTaskId,
  State,
  StateConflict,
  StateCorrupt,
  StateIoError,
  StateLive,
  StateLocked,
  type StateShape,
  StoreUnavailable,
  TaskAmbiguous,
  type TaskList,
  TaskNotFound,
  TaskSummary,
  unfinishedTasks
} from "./layers/State.ts"
export { makeFileStateStore } from "./layers/store/fileState.ts"
export {
  ChatMessage,
  Completion,
  CompletionRequest,
  type EndpointReport,
  FakeReply,
  Llm,
  LlmBadResponse,
  LlmContextOverflow,
  type LlmError,
  LlmFake,
  LlmHttpError,
  llmLayerFor,
  LlmLive,
  LlmRequests,
  LlmScriptExhausted,
  type LlmShape,
  LlmSpecInvalid,
  LlmTimeout,
  LlmUnreachable,
  type ModelListing,
  OutputSchema,
  type PromptSize,
  type StreamPart,
  TaskTokenBudgetExceeded,
  Timings,
  Usage
} from "./layers/Llm.ts"
export {
  CassetteInvalid,
  CassetteLine,
  CassetteMismatch,
  CassetteWriteError,
  HttpClientRecord,
  HttpClientReplay
} from "./layers/llm/cassette.ts"
export { ScriptedServer } from "./layers/llm/scripted.ts"
export {
  Luallm,
  LuallmCommandFailed,
  LuallmLive,
  LuallmNotFound,
  type LuallmShape,
  LuallmStatus,
  LuallmStatusInvalid,
  LuallmTest,
  ModelNotReady,
  ModelNotRunning,
  NoModelAvailable,
  type RunningModel
} from "./layers/Luallm.ts"
export {
  DependencyCycle,
  DependencyMissing,
  InvalidSkillName,
  type LoadedSkill,
  MetadataInvalid,
  SkillInvalid,
  type SkillListing,
  SkillNotFound,
  Skills,
  SkillsLive,
  type SkillsShape,
  SkillUnreadable
} from "./layers/Skills.ts"
export {
  type ExecuteResult,
  RunNotDeclared,
  type RunOptions as SkillRunOptions,
  SkillRunner,
  SkillRunnerLive,
  type SkillRunnerShape,
  TestFileMissing,
  type TestsResult
} from "./layers/SkillRunner.ts"
export {
  CapabilityDenied,
  CommandNotAllowed,
  FunctionNotExported,
  OutputTooLarge,
  PathNotAllowed,
  ResultNotJson,
  Sandbox,
  SandboxCrashed,
  type SandboxError,
  SandboxLive,
  type SandboxShape,
  SandboxWorkerMissing,
  SkillMemoryExceeded,
  SkillStalled,
  SkillThrew,
  SkillTimeout,
  TestFileFailed,
  TooManyHandles,
  UndeclaredDependency
} from "./layers/Sandbox.ts"
export {
  ApprovalAlreadyResolved,
  ApprovalAmbiguous,
  ApprovalCorrupt,
  type ApprovalError,
  ApprovalIoError,
  ApprovalNotFound,
  ApprovalRecord,
  Approvals,
  ApprovalsLive,
  type ApprovalsShape,
  type NewApproval,
  PromotionRefused
} from "./layers/Approvals.ts"
