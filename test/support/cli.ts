/** Runs the bundled CLI as a child process, the way a user does. */
import { spawn, spawnSync } from "node:child_process"
import { join } from "node:path"

export interface CliRun {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

const bin = join(import.meta.dirname, "..", "..", "bin", "luallm-agent.cjs")

export const runCli = (
  args: ReadonlyArray<string>,
  options: { readonly env?: Record<string, string>; readonly cwd?: string; readonly input?: string; readonly timeoutMs?: number } = {}
): CliRun => {
  const result = spawnSync(process.execPath, [bin, ...args], {
    cwd: options.cwd,
    input: options.input ?? "",
    encoding: "utf8",
    timeout: options.timeoutMs ?? 20_000,
    // A clean environment: only what the test gives, plus PATH for child tools.
    env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", NO_COLOR: "1", ...options.env }
  })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

/**
 * The same, without blocking this process: for tests whose loopback server (in this process)
 * must answer the CLI. `mergeOutput` sends stderr to stdout's pipe, as a terminal shows both.
 */
export const runCliAsync = (
  args: ReadonlyArray<string>,
  options: { readonly env?: Record<string, string>; readonly cwd?: string; readonly timeoutMs?: number; readonly mergeOutput?: boolean } = {}
): Promise<CliRun> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: options.cwd,
      env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", NO_COLOR: "1", ...options.env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")))
    child.stderr.on("data", (chunk: Buffer) => {
      if (options.mergeOutput === true) stdout += chunk.toString("utf8")
      else stderr += chunk.toString("utf8")
    })
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30_000)
    child.on("error", reject)
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
