/** Runs the bundled CLI as a child process, the way a user does. */
import { spawnSync } from "node:child_process"
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
