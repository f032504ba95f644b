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

/**
 * The CLI in a pseudo-terminal (`script`), as a user at a terminal runs it: once `waitFor` shows
 * (after what the previous key answered), the next key is typed. Output is stdout and stderr
 * together, as a terminal shows them (its CR LF line ends read as LF).
 */
export const runCliInTerminal = (
  args: ReadonlyArray<string>,
  env: Record<string, string>,
  keys: ReadonlyArray<{ readonly waitFor: string; readonly key: string }> = [],
  options: { readonly cwd?: string; readonly timeoutMs?: number } = {}
) =>
  new Promise<{ readonly code: number | null; readonly output: string }>((resolve) => {
    const command = [process.execPath, bin, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ")
    const child = spawn("script", ["-qec", command, "/dev/null"], {
      cwd: options.cwd,
      env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", TERM: "xterm", ...env }
    })
    let output = ""
    let next = 0
    let from = 0
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8")
      const step = keys[next]
      const found = step === undefined ? -1 : output.indexOf(step.waitFor, from)
      if (step !== undefined && found !== -1) {
        next++
        from = found + step.waitFor.length
        child.stdin.write(step.key)
      }
    })
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000)
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, output: output.replace(/\r\n/g, "\n") })
    })
  })
