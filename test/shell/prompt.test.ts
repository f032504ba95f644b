/** quick-prompt through the CLI against the loopback server: the answer streams, and an error never shares its line. */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { runCliAsync } from "../support/cli.ts"
import { Behaviour, openAiServer } from "../support/openaiServer.ts"

const freshHome = () => mkdtempSync(join(tmpdir(), "luallm-agent-home-"))

describe("luallm-agent quick-prompt", () => {
  it.scopedLive("prints the streamed answer on its own line, the call's figures on stderr", () =>
    Effect.gen(function*() {
      const server = yield* openAiServer({ reply: () => "one two three" })
      const home = freshHome()
      const run = yield* Effect.promise(() =>
        runCliAsync(["quick-prompt", "count", "--model", "test-model"], { env: { HOME: home, LUALLM_AGENT_LLM_BASE_URL: server.url }, cwd: home })
      )
      expect(run.code).toBe(0)
      expect(run.stdout).toBe("one two three\n")
      expect(run.stderr).toMatch(/^test-model · \d+\+3 tokens · \d+ ms/)
    }))

  it.scopedLive("when the model goes silent mid-answer, the error starts a new line after what came", () =>
    Effect.gen(function*() {
      const server = yield* openAiServer({ reply: () => "one two three four" })
      const home = freshHome()
      const run = yield* Effect.promise(() =>
        runCliAsync(["quick-prompt", "count", "--model", Behaviour.stall], {
          env: { HOME: home, LUALLM_AGENT_LLM_BASE_URL: server.url, LUALLM_AGENT_LIMITS_LLM_TIMEOUT_SECONDS: "1" },
          cwd: home,
          mergeOutput: true
        })
      )
      expect(run.code).not.toBe(0)
      expect(run.stdout).toMatch(new RegExp(`^one two\\nerror: The LLM at ${server.url}/v1/chat/completions sent nothing for 1s`))
    }))
})
