/**
 * The configuration where a user meets it: a server address written without `http://` (or with
 * another scheme) is refused when the config loads, in one line naming the key, the value, where
 * it was set and how to write it; `config` never prints the API key, only that it is set and where.
 */
import { describe, expect, it } from "@effect/vitest"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ExitCodes } from "../../src/shell/exit.ts"
import { runCli } from "../support/cli.ts"

const freshHome = () => mkdtempSync(join(tmpdir(), "luallm-agent-config-"))

/** One line on stderr, starting `error: `, with no trace of a stack. */
const oneLine = (run: { readonly stdout: string; readonly stderr: string }): string => {
  const lines = run.stderr.trim().split("\n")
  expect(lines).toHaveLength(1)
  expect(`${run.stdout}${run.stderr}`).not.toMatch(/\n\s+at \S|TypeError|Protocol/)
  return lines[0] ?? ""
}

describe("llm.base_url and llm.endpoints are checked when the config loads", () => {
  it("a base_url without a scheme, from the environment, is one line: key, value, source and the URL to write", () => {
    const home = freshHome()
    const env = { HOME: home, LUALLM_AGENT_LLM_BASE_URL: "localhost:8089" }
    // Every command that loads the config says the same, before anything is sent anywhere.
    for (const args of [["config"], ["quick-prompt", "hi"], ["run", "count words", "--yes"]]) {
      const run = runCli(args, { env, cwd: home })
      expect(run.code).toBe(ExitCodes.failure)
      const line = oneLine(run)
      expect(line).toBe(
        `error: The configuration is invalid: llm.base_url: expected an http:// or https:// URL, got "localhost:8089"; ` +
          "write it as \"http://localhost:8089\" (from $LUALLM_AGENT_LLM_BASE_URL). Fix it where it was set, then check with `luallm-agent doctor`."
      )
    }
  })

  it("a base_url with another scheme, in a file, names the file and the http:// form of the same address", () => {
    const home = freshHome()
    const file = join(home, "luallm-agent.json")
    writeFileSync(file, JSON.stringify({ llm: { base_url: "ftp://gpu-box:8080/v1" } }))
    const run = runCli(["config"], { env: { HOME: home }, cwd: home })
    expect(run.code).toBe(ExitCodes.failure)
    const line = oneLine(run)
    expect(line).toContain(`The configuration in ${file} is invalid: llm.base_url: expected an http:// or https:// URL, `)
    expect(line).toContain(`got "ftp://gpu-box:8080/v1"; write it as "http://gpu-box:8080/v1" (from ${file})`)
  })

  it("an endpoints entry without a scheme is named by its index", () => {
    const home = freshHome()
    const env = { HOME: home, LUALLM_AGENT_LLM_ENDPOINTS: `["http://127.0.0.1:8080", "10.0.0.5:8080"]` }
    const run = runCli(["config"], { env, cwd: home })
    expect(run.code).toBe(ExitCodes.failure)
    expect(oneLine(run)).toContain(
      `llm.endpoints[1]: expected an http:// or https:// URL, got "10.0.0.5:8080"; write it as "http://10.0.0.5:8080" (from $LUALLM_AGENT_LLM_ENDPOINTS)`
    )
  })

  it("doctor, which the message points to, reports the same problem as a failed check", () => {
    const home = freshHome()
    const run = runCli(["doctor"], { env: { HOME: home, LUALLM_AGENT_LLM_BASE_URL: "localhost:8089" }, cwd: home })
    expect(run.code).toBe(ExitCodes.failure)
    expect(run.stdout).toContain(`✗ config valid: The configuration is invalid: llm.base_url: expected an http:// or https:// URL`)
    expect(run.stdout).toContain(`write it as "http://localhost:8089"`)
  })

  it("http:// and https:// addresses, with or without /v1, are accepted", () => {
    const home = freshHome()
    for (const url of ["http://localhost:8089", "https://gpu.example:443/v1", "http://[::1]:8080"]) {
      const run = runCli(["config", "--json"], { env: { HOME: home, LUALLM_AGENT_LLM_BASE_URL: url }, cwd: home })
      expect(run.code).toBe(0)
      expect(JSON.parse(run.stdout).values.llm.base_url).toBe(url)
    }
  })
})

describe("config masks llm.api_key", () => {
  const secret = "sk-local-0123456789abcdef"

  it("says it is set and where from, never the value (text and --json)", () => {
    const home = freshHome()
    const env = { HOME: home, LUALLM_AGENT_LLM_API_KEY: secret }
    const text = runCli(["config"], { env, cwd: home })
    expect(text.code).toBe(0)
    expect(text.stdout).toContain("llm.api_key = (set, hidden)  ($LUALLM_AGENT_LLM_API_KEY)")
    const json = runCli(["config", "--json"], { env, cwd: home })
    expect(json.code).toBe(0)
    const shown = JSON.parse(json.stdout)
    expect(shown.values.llm.api_key).toBe("(set, hidden)")
    expect(shown.sources["llm.api_key"]).toBe("$LUALLM_AGENT_LLM_API_KEY")
    for (const run of [text, json]) expect(`${run.stdout}${run.stderr}`).not.toContain("0123456789abcdef")
  })

  it("shows an unset key as null, from the default", () => {
    const home = freshHome()
    const run = runCli(["config"], { env: { HOME: home }, cwd: home })
    expect(run.stdout).toContain("llm.api_key = null  (default)")
  })

  it("a key set in a file is masked and its file named; a key of the wrong type is refused without echoing it", () => {
    const home = freshHome()
    const file = join(home, "luallm-agent.json")
    writeFileSync(file, JSON.stringify({ llm: { api_key: secret } }))
    const run = runCli(["config"], { env: { HOME: home }, cwd: home })
    expect(run.stdout).toContain(`llm.api_key = (set, hidden)  (${file})`)
    expect(run.stdout).not.toContain(secret)
    writeFileSync(file, JSON.stringify({ llm: { api_key: 123456789 } }))
    const bad = runCli(["config"], { env: { HOME: home }, cwd: home })
    expect(bad.code).toBe(ExitCodes.failure)
    expect(bad.stderr).toContain(`llm.api_key: expected a string or null, got a number (from ${file})`)
    expect(bad.stderr).not.toContain("123456789")
  })
})
