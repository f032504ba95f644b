/**
 * `luallm-agent demo`: the main job on a machine with no model. It replays a recorded session
 * (demo/cassette.jsonl, shipped with the package) of a full task: plan → missing skill → draft → tests fail
 * → rework → tests pass → approval → promotion → resume → complete, in a fresh directory.
 * The approval is given by the demo itself, standing in for the human, and it says so.
 *
 * The replay runs the Live LLM layer over the cassette's HTTP exchanges (request bodies, SSE
 * answers), so it goes through the real request building, streaming and decoding.
 * `demo --record` rewrites the cassette from the scripted llama-server below; do that when a
 * prompt changes (the replay then fails with a diff of the changed request).
 */
import { Command as Cli, Options } from "@effect/cli"
import { FileSystem, Path } from "@effect/platform"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Console, Effect, Layer } from "effect"
import { Agent, AgentDefault } from "../../Agent.ts"
import { type AgentConfig, configInside } from "../../core/config.ts"
import { Approvals } from "../../layers/Approvals.ts"
import { AuditLive } from "../../layers/Audit.ts"
import { type AppConfig, AppConfigFrom } from "../../layers/Config.ts"
import { FakeReply, type Llm, LlmLive } from "../../layers/Llm.ts"
import { type CassetteInvalid, type CassetteWriteError, HttpClientRecord, HttpClientReplay } from "../../layers/llm/cassette.ts"
import { ScriptedServer } from "../../layers/llm/scripted.ts"
import { type Luallm, LuallmLive } from "../../layers/Luallm.ts"
import { describeApproval } from "../approvalPrompt.ts"
import { packageRoot } from "../../packageRoot.ts"
import { describeProgress } from "../progress.ts"
import { httpClientLayer } from "../runtime.ts"
import { bold, dim, yellow } from "../ui.ts"
import { reportOutcome } from "./task.ts"

/** A fixed place, because the recorded prompts name the demo's paths. */
export const demoDir = "/tmp/luallm-agent-demo"
export const demoCassette = `${packageRoot}/demo/cassette.jsonl`
const notes = `${demoDir}/data/notes.txt`
const notesText = "Local models are private.\nThey run on your own machine,  and they never\nsend your notes anywhere.\n"
export const demoPrompt = `How many words are in ${notes}? Tell me in one sentence.`

const model = "scripted-demo-model"

const skillHeader = (version: string) =>
  `/* @skill {"name": "word_count", "version": "${version}", "description": "Counts the words in a text file", "paths": ["${demoDir}/data/**"], "public_functions": ["run", "countWords"], "args": {"path": "string: the text file"}} */\n`

/**
 * What the scripted llama-server answers when the cassette is recorded. Structured answers are
 * JSON, as a server that enforces the requested schema gives them; the first draft has a bug
 * its own tests catch, so the demo shows a rework.
 */
const script: ReadonlyArray<FakeReply> = [
  FakeReply.content(
    JSON.stringify({
      nodes: [
        {
          id: "count",
          depends_on: [],
          action: "skill",
          skill_name: "word_count",
          skill_args: { path: notes },
          description: "Read the text file at args.path and return the number of words in it as a number. Words are separated by any whitespace (spaces, tabs, newlines, several in a row)."
        },
        { id: "answer", depends_on: ["count"], action: "llm_call", prompt_template: "The file has {count} words. Tell the user in one friendly sentence." }
      ]
    }),
    { when: "Request:" }
  ),
  FakeReply.content(
    JSON.stringify({
      code: skillHeader("1.0.0") +
        "export function countWords(text) {\n  return text.split(\" \").length\n}\n\n" +
        "export function run({ path }) {\n  return countWords(fs.readFile(path))\n}\n",
      tests: "const { countWords } = require(\"word_count\")\n\n" +
        "test(\"counts words separated by single spaces\", () => {\n  assert.equal(countWords(\"one two three\"), 3)\n})\n\n" +
        "test(\"counts words across newlines and repeated spaces\", () => {\n  assert.equal(countWords(\"one  two\\nthree\\tfour\"), 4)\n})\n\n" +
        "test(\"an empty or blank text has no words\", () => {\n  assert.equal(countWords(\"\"), 0)\n  assert.equal(countWords(\"  \\n \"), 0)\n})\n"
    }),
    { when: "Write the skill file" }
  ),
  FakeReply.content(
    JSON.stringify({
      code: skillHeader("1.0.1") +
        "export function countWords(text) {\n  return text.split(/\\s+/).filter((word) => word !== \"\").length\n}\n\n" +
        "export function run({ path }) {\n  return countWords(fs.readFile(path))\n}\n"
    }),
    { when: "The tests failed like this" }
  ),
  FakeReply.content("Your notes contain 17 words.", { when: "The file has 17 words" })
]

/** Where the recorded server was; a replay serves its exchanges whatever the address. */
const demoServer = "http://127.0.0.1:8089"

/** The demo's own configuration: everything inside the demo directory. */
export const demoConfig = (): AgentConfig => {
  const base = configInside(demoDir, { allowedPaths: [`${demoDir}/data/**`] })
  return { ...base, llm: { ...base.llm, base_url: demoServer }, approval_tiers: { ...base.approval_tiers, task_confirmation: "auto" } }
}

const prepareDir = (config: AgentConfig) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    yield* fs.remove(demoDir, { recursive: true, force: true })
    yield* fs.makeDirectory(path.dirname(notes), { recursive: true })
    yield* fs.makeDirectory(config.skills.builtin_dir, { recursive: true })
    yield* fs.writeFileString(notes, notesText)
    // So `luallm-agent --config /tmp/luallm-agent-demo/config.json log` shows the demo's audit log.
    yield* fs.writeFileString(`${demoDir}/config.json`, JSON.stringify(config, null, 2))
  })

/** The Live LLM layer over the cassette: replayed, or recorded (afresh) from the scripted server. */
const demoLlm = (record: boolean): Layer.Layer<Llm, CassetteInvalid | CassetteWriteError, AppConfig | Luallm | FileSystem.FileSystem | Path.Path> =>
  record
    ? LlmLive.pipe(
      Layer.provide(HttpClientRecord(demoCassette)),
      Layer.provide(ScriptedServer(script, { model, contextTokens: 8192, slots: 2 })),
      Layer.provide(Layer.effectDiscard(Effect.flatMap(FileSystem.FileSystem, (fs) => fs.remove(demoCassette, { force: true })).pipe(Effect.orDie)))
    )
    : LlmLive.pipe(Layer.provide(HttpClientReplay(demoCassette)))

const demoLayers = (config: AgentConfig, record: boolean) =>
  AgentDefault.pipe(
    Layer.provideMerge(demoLlm(record)),
    Layer.provideMerge(LuallmLive),
    Layer.provideMerge(httpClientLayer),
    Layer.provideMerge(AuditLive),
    Layer.provideMerge(AppConfigFrom(config, { home: config.state_dir, cwd: demoDir })),
    Layer.provideMerge(NodeContext.layer)
  )

const say = (text: string) => Console.log(`${yellow("demo")} ${text}`)

const runDemo = (record: boolean) =>
  Effect.gen(function*() {
    const config = demoConfig()
    yield* Console.log(bold(record ? "Recording the demo cassette from the scripted model." : "luallm-agent demo — a REPLAY, no model runs."))
    yield* say(
      record
        ? `answers come from the scripted fake model; the requests and answers are written to ${demoCassette}`
        : `every model answer is replayed from ${demoCassette} (recorded from the project's scripted fake model); the sandbox, tests, approvals, state and audit log are real.`
    )
    yield* prepareDir(config)
    yield* say(`working in ${demoDir}; request: ${dim(demoPrompt)}`)
    yield* Effect.gen(function*() {
      const agent = yield* Agent
      const approvals = yield* Approvals
      const onProgress = (progress: Parameters<typeof describeProgress>[0]) => Console.log(describeProgress(progress))
      const first = yield* agent.run(demoPrompt, { onProgress })
      if (first.paused?.reason !== "approval") return yield* reportOutcome(first, false)
      const [pending] = yield* approvals.listPending
      if (pending === undefined) return yield* reportOutcome(first, false)
      yield* Console.log(`\n${describeApproval(pending, yield* approvals.tested(pending), approvals.promotionCommands(pending))}\n`)
      yield* say(`approving as the human would, with \`luallm-agent approvals approve ${pending.id.slice(0, 8)}\` (a real run never approves by itself)`)
      yield* approvals.resolve(pending.id, true, "approved by the demo, standing in for the human")
      yield* approvals.promote(pending.id)
      yield* say("resuming the paused task")
      const done = yield* agent.resume({ onProgress })
      yield* reportOutcome(done, false)
    }).pipe(Effect.provide(demoLayers(config, record)))
    yield* say(`audit log: ${config.audit.path} (see it with \`luallm-agent --config ${demoDir}/config.json log\`)`)
  }).pipe(
    Effect.catchTag("ExitWith", (exit) =>
      Effect.zipRight(say(`audit log: ${demoDir}/state/audit.jsonl`), Effect.fail(exit)))
  )

export const demoCommand = Cli.make(
  "demo",
  { record: Options.boolean("record").pipe(Options.withDescription("Run the demo against the project's scripted model server and record demo/cassette.jsonl afresh (for maintainers)")) },
  ({ record }) => runDemo(record)
).pipe(Cli.withDescription("Run a full task replayed from a recorded session (no model needed)"))
