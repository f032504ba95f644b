/**
 * `--llm record:FILE` appends a session per command, so `run` → `approvals approve` → `resume`
 * recorded one after another make one cassette; `--llm replay:FILE` then plays the same
 * multi-command session back with no server, through the CLI as a user types it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { configInside } from "../../src/core/config.ts"
import { runCliAsync } from "../support/cli.ts"
import { openAiServer } from "../support/openaiServer.ts"

const wordCount = (dataDir: string) =>
  `/* @skill {"name": "word_count", "version": "1.0.0", "description": "Counts the words in a text file", "paths": ["${dataDir}/**"], "public_functions": ["run", "countWords"], "args": {"path": "string: the text file"}} */\n` +
  "export function countWords(text) {\n  return text.split(/\\s+/).filter((word) => word !== \"\").length\n}\n\n" +
  "export function run({ path }) {\n  return countWords(fs.readFile(path))\n}\n"

const wordCountTests = "const { countWords } = require(\"word_count\")\n\ntest(\"counts words\", () => {\n  assert.equal(countWords(\"one  two\\nthree\"), 3)\n})\n"

describe("a multi-command session on one cassette", () => {
  it.live("run, approve and resume are recorded into one cassette, then replayed command by command without a server", () =>
    Effect.gen(function*() {
      const home = realpathSync(mkdtempSync(join(tmpdir(), "luallm-agent-session-")))
      const dataDir = `${home}/data`
      const notes = `${dataDir}/notes.txt`
      mkdirSync(dataDir, { recursive: true })
      writeFileSync(notes, "one two three four five\n")
      const cassette = `${home}/session.jsonl`
      const configFile = `${home}/config.json`
      const prompt = `How many words are in ${notes}?`

      const server = yield* Effect.scoped(Effect.gen(function*() {
        const started = yield* openAiServer({
          kind: "llama-server",
          reply: (message) =>
            message.startsWith("Job: plan")
              ? JSON.stringify({
                nodes: [
                  { id: "count", depends_on: [], action: "skill", skill_name: "word_count", skill_args: { path: notes }, description: "Count the words of the file at path." },
                  { id: "say", depends_on: ["count"], action: "llm_call", prompt_template: "The file has {count} words. Say so." }
                ]
              })
              : message.includes("Write the skill file")
              ? JSON.stringify({ code: wordCount(dataDir), tests: wordCountTests })
              : "The file has five words."
        })
        const base = configInside(home, { allowedPaths: [`${dataDir}/**`] })
        writeFileSync(configFile, JSON.stringify({
          ...base,
          llm: { ...base.llm, base_url: started.url },
          approval_tiers: { ...base.approval_tiers, task_confirmation: "auto" }
        }))
        const cli = (args: ReadonlyArray<string>) =>
          Effect.promise(() => runCliAsync(["--config", configFile, ...args], { env: { HOME: home }, cwd: home, timeoutMs: 60_000 }))
        const session = (llm: string) =>
          Effect.gen(function*() {
            const run = yield* cli(["--llm", llm, "run", prompt])
            expect(run.stderr + run.stdout).toContain("approvals approve")
            expect(run.code).toBe(3)
            const id = /approvals approve ([0-9a-f]{8})/.exec(run.stdout + run.stderr)?.[1] ?? ""
            const approve = yield* cli(["--llm", llm, "approvals", "approve", id])
            expect(approve.code).toBe(0)
            const resume = yield* cli(["--llm", llm, "resume"])
            expect(resume.stdout).toContain("The file has five words.")
            expect(resume.code).toBe(0)
          })
        yield* session(`record:${cassette}`)
        return { chats: started.chats().length, session }
      }))
      // Three sessions (one per command), each exchange recorded once.
      const lines = readFileSync(cassette, "utf8").trim().split("\n").map((line) => JSON.parse(line))
      expect(lines.filter((line) => "session" in line)).toHaveLength(3)
      expect(lines.filter((line) => "request" in line && line.request.url.endsWith("/v1/chat/completions"))).toHaveLength(server.chats)

      // The server is gone; start over from the same files, and replay the session.
      for (const dir of ["state", "drafts", "skills"]) rmSync(`${home}/${dir}`, { recursive: true, force: true })
      yield* server.session(`replay:${cassette}`)
    }), 180_000)
})
