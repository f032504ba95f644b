import { capForJson, run, shellWith } from "shell_safe"

/** A scripted stand-in for the host's exec: records each call, answers with `result`. */
function scriptedExec(result) {
  const calls = []
  const execute = (command, argv) => {
    calls.push({ command, argv })
    return Object.assign({ stdout: "", stderr: "", code: 0, truncated: false }, result)
  }
  return { calls, execute }
}

const metacharacters = ["; rm -rf ~", "$(whoami)", "`id`", "| cat", "&& echo pwned", "> out.txt", "*", "'quoted' \"twice\"", "a\nb", "$HOME"]

describe("argv, never a shell", () => {
  test("passes the command and each argument through exactly, as one argv array", () => {
    const { calls, execute } = scriptedExec({})
    shellWith(execute, { command: "grep", args: ["-c", "error", "~/logs/app.log"] })
    assert.deepEqual(calls, [{ command: "grep", argv: ["-c", "error", "~/logs/app.log"] }])
  })

  test("passes shell metacharacters as plain arguments: nothing is joined, quoted or expanded", () => {
    const { calls, execute } = scriptedExec({})
    shellWith(execute, { command: "grep", args: ["-F", "--", ...metacharacters] })
    assert.deepEqual(calls[0].argv, ["-F", "--", ...metacharacters])
  })

  test("runs with no arguments when args is left out", () => {
    const { calls, execute } = scriptedExec({ stdout: ".\n" })
    assert.deepEqual(shellWith(execute, { command: "ls" }), { stdout: ".\n", stderr: "", code: 0, truncated: false })
    assert.deepEqual(calls, [{ command: "ls", argv: [] }])
  })

  test("returns a failing exit code and stderr as data rather than throwing", () => {
    const { execute } = scriptedExec({ stderr: "cat: nope: No such file or directory\n", code: 1 })
    assert.deepEqual(shellWith(execute, { command: "cat", args: ["nope"] }), {
      stdout: "",
      stderr: "cat: nope: No such file or directory\n",
      code: 1,
      truncated: false
    })
  })

  test("keeps the host's truncation flag and a null code (killed at the output cap)", () => {
    const { execute } = scriptedExec({ stdout: "partial", code: null, truncated: true })
    assert.deepEqual(shellWith(execute, { command: "cat", args: ["/big"] }), { stdout: "partial", stderr: "", code: null, truncated: true })
  })
})

describe("whitelist", () => {
  test("allows ls, wc, head, tail, grep, find, cat, sort and uniq", () => {
    for (const command of ["ls", "wc", "head", "tail", "grep", "find", "cat", "sort", "uniq"]) {
      const { calls, execute } = scriptedExec({})
      shellWith(execute, { command, args: [] })
      assert.equal(calls.length, 1, command)
    }
  })

  test("refuses any other command before asking the host to run anything", () => {
    const refused = ["rm", "sh", "bash", "env", "xargs", "awk", "sed", "tee", "echo", "python3", "curl", "chmod"]
    const disguised = ["/bin/ls", "./ls", "ls -la", "ls;rm", "ls && rm -rf ~", "LS", " ls", "", "grep|sh"]
    const { calls, execute } = scriptedExec({})
    for (const command of [...refused, ...disguised]) {
      assert.throws(
        () => shellWith(execute, { command, args: [] }),
        /is not an allowed command: only ls, wc, head, tail, grep, find, cat, sort, uniq may run, as a bare name with its arguments in "args" \(no shell, no pipes\)$/,
        `expected ${JSON.stringify(command)} to be refused`
      )
    }
    assert.equal(calls.length, 0)
  })

  test("names the refused command in the error", () => {
    assert.throws(() => shellWith(scriptedExec({}).execute, { command: "rm", args: ["-rf", "/"] }), /^"rm" is not an allowed command/)
  })

  test("run refuses a command outside the whitelist without the exec capability being used", () => {
    assert.throws(() => run({ command: "rm", args: ["-rf", "~"] }), /"rm" is not an allowed command/)
  })
})

describe("argument checks", () => {
  test("refuses a command line in one string instead of an argv array", () => {
    const { calls, execute } = scriptedExec({})
    assert.throws(() => shellWith(execute, { command: "grep", args: "-r TODO ~/src" }), /"args" must be an array of strings, got "-r TODO ~\/src"; write \["-n", "5", "~\/f.txt"\], not one string/)
    assert.equal(calls.length, 0)
  })

  test("refuses arguments that are not strings, naming their position", () => {
    const { execute } = scriptedExec({})
    assert.throws(() => shellWith(execute, { command: "head", args: ["-n", 5] }), /"args"\[1\] must be a string, got 5/)
    assert.throws(() => shellWith(execute, { command: "head", args: [null] }), /"args"\[0\] must be a string, got null/)
    assert.throws(() => shellWith(execute, { command: "head", args: [["-n"]] }), TypeError)
  })

  test("refuses a NUL character inside an argument", () => {
    assert.throws(() => shellWith(scriptedExec({}).execute, { command: "cat", args: ["a\u0000b"] }), /"args"\[0\] contains a NUL character/)
  })

  test("refuses more than 256 arguments", () => {
    const args = Array.from({ length: 257 }, (_, i) => `a${i}`)
    assert.throws(() => shellWith(scriptedExec({}).execute, { command: "cat", args }), /"args" has 257 entries, more than the 256 allowed/)
  })

  test("refuses a missing or non-string command and arguments that are not an object", () => {
    const { execute } = scriptedExec({})
    assert.throws(() => shellWith(execute, { args: ["-l"] }), /"command" must be a string, one of ls, wc/)
    assert.throws(() => shellWith(execute, { command: ["ls"] }), TypeError)
    assert.throws(() => shellWith(execute, "ls -la"), /expected arguments like \{"command": "wc"/)
  })
})

describe("output cap", () => {
  test("leaves output that fits unchanged", () => {
    assert.deepEqual(capForJson("short\n", 100), { text: "short\n", truncated: false })
  })

  test("cuts to the longest prefix whose JSON fits, counting escapes", () => {
    const capped = capForJson("ab\n\"cd\"", 8)
    assert.deepEqual(capped, { text: "ab\n\"", truncated: true })
    assert.ok(JSON.stringify(capped.text).length <= 8)
  })

  test("never splits a surrogate pair, and keeps the pair when it fits exactly", () => {
    assert.deepEqual(capForJson("a😀b", 4), { text: "a", truncated: true })
    assert.deepEqual(capForJson("a😀b", 5), { text: "a😀", truncated: true })
  })

  test("caps a huge stdout and stderr below the sandbox's result limit and says so", () => {
    const { execute } = scriptedExec({ stdout: "line\n".repeat(400000), stderr: "warn\n".repeat(20000) })
    const result = shellWith(execute, { command: "cat", args: ["/var/log/big.log"] })
    assert.equal(result.truncated, true)
    assert.ok(JSON.stringify(result).length < 1024 * 1024, "the result fits the sandbox's 1 MiB result limit")
    assert.ok(JSON.stringify(result.stdout).length > 899990, "as much stdout as fits is kept")
    assert.ok(JSON.stringify(result.stderr).length > 63990, "as much stderr as fits is kept")
    assert.match(result.stdout, /^(line\n)+(l|li|lin|line)?$/)
  })
})

// These run real commands: they need the exec capability granted for the test run
// (approval_tiers.skill_exec), and use no paths, so they pass whatever allowed_paths is.
describe("real commands (exec granted)", () => {
  test("runs an allowed command in an empty working directory", () => {
    assert.deepEqual(run({ command: "ls", args: ["-A"] }), { stdout: "", stderr: "", code: 0, truncated: false })
  })

  test("hands metacharacters to the command as file names: none is interpreted", () => {
    const result = run({ command: "cat", args: ["$(whoami)", "`id`", "; ls", "&& echo pwned"] })
    assert.equal(result.code, 1)
    assert.equal(result.stdout, "")
    for (const literal of ["$(whoami)", "`id`", "; ls", "&& echo pwned"]) assert.ok(result.stderr.includes(literal), `stderr names ${literal}: ${result.stderr}`)
    assert.ok(!result.stderr.includes("pwned\n"), "echo never ran")
  })

  test("grep for injection strings finds nothing and runs nothing", () => {
    for (const pattern of ["$(touch pwned)", "; touch pwned2", "`touch pwned3`", "| tee pwned4"]) {
      const result = run({ command: "grep", args: ["-r", "-F", "--", pattern, "."] })
      assert.deepEqual(result, { stdout: "", stderr: "", code: 1, truncated: false }, pattern)
    }
    assert.deepEqual(run({ command: "ls", args: ["-A"] }).stdout, "", "no file was created")
  })

  test("reports a failing command through its exit code and stderr", () => {
    const result = run({ command: "ls", args: ["no-such-entry"] })
    assert.equal(result.code, 2)
    assert.match(result.stderr, /no-such-entry/)
  })

  test("a grep pattern that holds / is a pattern, not a path", () => {
    assert.deepEqual(run({ command: "grep", args: ["-c", "usr/bin/env", "-"] }), { stdout: "0\n", stderr: "", code: 1, truncated: false })
  })

  test("a relative name means the command's own empty directory", () => {
    assert.deepEqual(run({ command: "find", args: ["."] }), { stdout: ".\n", stderr: "", code: 0, truncated: false })
  })

  test("options in any spelling GNU allows reach the command as the same options", () => {
    for (const args of [["-n", "1", "-"], ["-n1", "-"], ["--lines=1", "-"], ["--lines", "1", "-"], ["-1", "-"]]) {
      assert.deepEqual(run({ command: "head", args }), { stdout: "", stderr: "", code: 0, truncated: false }, args.join(" "))
    }
  })
})
