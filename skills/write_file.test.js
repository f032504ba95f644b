import { run, utf8Bytes, writeFileWith } from "write_file"

/**
 * A scripted stand-in for the sandbox's fs: files and directories in memory, mkdir recursive
 * like the real one, errors worded like the real ones. `calls` records what the skill did.
 */
function memoryFs(files, dirs) {
  const fileMap = new Map(Object.entries(files))
  const dirSet = new Set(dirs)
  const calls = []
  const parent = (path) => path.slice(0, path.lastIndexOf("/"))
  return {
    calls,
    files: fileMap,
    dirs: dirSet,
    exists(path) {
      calls.push(["exists", path])
      return fileMap.has(path) || dirSet.has(path)
    },
    writeFile(path, text) {
      calls.push(["writeFile", path])
      if (dirSet.has(path)) throw new Error("fs.writeFile: EISDIR: illegal operation on a directory")
      if (path.includes("/") && parent(path) !== "" && !dirSet.has(parent(path))) throw new Error("fs.writeFile: ENOENT: no such file or directory")
      fileMap.set(path, text)
    },
    mkdir(path) {
      calls.push(["mkdir", path])
      for (let dir = path; dir !== "" && !dirSet.has(dir); dir = parent(dir)) dirSet.add(dir)
    }
  }
}

describe("writing", () => {
  test("writes a new file and returns its path and UTF-8 size", () => {
    const io = memoryFs({}, ["/out"])
    assert.deepEqual(writeFileWith(io, { path: "/out/a.txt", content: "hello\n" }), { path: "/out/a.txt", bytes: 6 })
    assert.equal(io.files.get("/out/a.txt"), "hello\n")
  })

  test("writes an empty file", () => {
    const io = memoryFs({}, ["/out"])
    assert.deepEqual(writeFileWith(io, { path: "/out/empty", content: "" }), { path: "/out/empty", bytes: 0 })
    assert.equal(io.files.get("/out/empty"), "")
  })

  test("creates missing parent directories, and only after the write reports them missing", () => {
    const io = memoryFs({}, ["/out"])
    writeFileWith(io, { path: "/out/2024/q1/report.md", content: "# Q1\n" })
    assert.equal(io.files.get("/out/2024/q1/report.md"), "# Q1\n")
    assert.ok(io.dirs.has("/out/2024") && io.dirs.has("/out/2024/q1"))
    assert.deepEqual(io.calls, [
      ["exists", "/out/2024/q1/report.md"],
      ["writeFile", "/out/2024/q1/report.md"],
      ["mkdir", "/out/2024/q1"],
      ["writeFile", "/out/2024/q1/report.md"]
    ])
  })

  test("does not touch the parent directory when it exists (a glob may allow the file but not its directory)", () => {
    const io = memoryFs({}, ["/out"])
    writeFileWith(io, { path: "/out/a.csv", content: "x" })
    assert.deepEqual(io.calls.filter(([op]) => op === "mkdir"), [])
  })

  test("writes relative and ~ paths as given (the sandbox resolves them)", () => {
    const io = memoryFs({}, ["~", "notes"])
    writeFileWith(io, { path: "~/todo.txt", content: "a" })
    writeFileWith(io, { path: "notes/n.txt", content: "b" })
    writeFileWith(io, { path: "top.txt", content: "c" })
    assert.deepEqual([...io.files.keys()], ["~/todo.txt", "notes/n.txt", "top.txt"])
  })
})

describe("overwriting", () => {
  test("refuses to replace an existing file without overwrite, leaving it unchanged", () => {
    const io = memoryFs({ "/out/a.txt": "original" }, ["/out"])
    assert.throws(
      () => writeFileWith(io, { path: "/out/a.txt", content: "new" }),
      /^\/out\/a\.txt already exists and was left unchanged; pass "overwrite": true to replace it$/
    )
    assert.equal(io.files.get("/out/a.txt"), "original")
    assert.deepEqual(io.calls, [["exists", "/out/a.txt"]])
  })

  test("refuses with overwrite: false just as without it", () => {
    const io = memoryFs({ "/out/a.txt": "original" }, ["/out"])
    assert.throws(() => writeFileWith(io, { path: "/out/a.txt", content: "new", overwrite: false }), /already exists/)
    assert.equal(io.files.get("/out/a.txt"), "original")
  })

  test("replaces an existing file with overwrite: true", () => {
    const io = memoryFs({ "/out/a.txt": "original" }, ["/out"])
    assert.deepEqual(writeFileWith(io, { path: "/out/a.txt", content: "new", overwrite: true }), { path: "/out/a.txt", bytes: 3 })
    assert.equal(io.files.get("/out/a.txt"), "new")
  })

  test("treats only the boolean true as consent: \"true\" and 1 are rejected, not guessed", () => {
    const io = memoryFs({ "/out/a.txt": "original" }, ["/out"])
    assert.throws(() => writeFileWith(io, { path: "/out/a.txt", content: "x", overwrite: "true" }), /"overwrite" must be true or false, got "true"/)
    assert.throws(() => writeFileWith(io, { path: "/out/a.txt", content: "x", overwrite: 1 }), /"overwrite" must be true or false, got 1/)
    assert.equal(io.files.get("/out/a.txt"), "original")
  })

  test("refuses a directory that exists at the path", () => {
    const io = memoryFs({}, ["/out", "/out/sub"])
    assert.throws(() => writeFileWith(io, { path: "/out/sub", content: "x" }), /\/out\/sub already exists/)
    assert.throws(() => writeFileWith(io, { path: "/out/sub", content: "x", overwrite: true }), /^cannot write \/out\/sub: fs\.writeFile: EISDIR/)
  })
})

describe("errors", () => {
  test("rejects a missing, empty or directory-like path", () => {
    const io = memoryFs({}, [])
    assert.throws(() => writeFileWith(io, { content: "x" }), /"path" must be a non-empty string naming a file, got undefined/)
    assert.throws(() => writeFileWith(io, { path: " ", content: "x" }), /"path" must be a non-empty string/)
    assert.throws(() => writeFileWith(io, { path: "/out/", content: "x" }), /"path" must name a file, but \/out\/ ends with "\/"/)
    assert.deepEqual(io.calls, [])
  })

  test("rejects content that is not a string instead of guessing a format", () => {
    const io = memoryFs({}, ["/out"])
    assert.throws(() => writeFileWith(io, { path: "/out/a", content: { a: 1 } }), /"content" must be a string, got object; to write data, pass it as JSON text/)
    assert.throws(() => writeFileWith(io, { path: "/out/a", content: null }), /got null/)
    assert.throws(() => writeFileWith(io, { path: "/out/a" }), /got undefined/)
    assert.deepEqual(io.calls, [])
  })

  test("rejects arguments that are not an object", () => {
    assert.throws(() => writeFileWith(memoryFs({}, []), "/out/a"), /expected arguments like/)
    assert.throws(() => writeFileWith(memoryFs({}, []), undefined), TypeError)
  })

  test("reports other write errors with the path, without creating directories", () => {
    const io = memoryFs({}, [])
    io.writeFile = (path) => {
      io.calls.push(["writeFile", path])
      throw new Error("fs.writeFile: EACCES: permission denied")
    }
    assert.throws(() => writeFileWith(io, { path: "/ro/a.txt", content: "x" }), /^cannot write \/ro\/a\.txt: fs\.writeFile: EACCES: permission denied$/)
    assert.deepEqual(io.calls.filter(([op]) => op === "mkdir"), [])
  })

  test("run checks its arguments before touching the file system", () => {
    assert.throws(() => run({ path: "/out/a.txt", content: 5 }), /"content" must be a string/)
  })
})

describe("utf8Bytes", () => {
  test("counts 1 to 4 bytes per character like the file system will", () => {
    assert.equal(utf8Bytes(""), 0)
    assert.equal(utf8Bytes("abc"), 3)
    assert.equal(utf8Bytes("é"), 2)
    assert.equal(utf8Bytes("€"), 3)
    assert.equal(utf8Bytes("😀"), 4)
    assert.equal(utf8Bytes("a\r\n"), 3)
  })

  test("counts a lone surrogate as the 3-byte replacement character", () => {
    assert.equal(utf8Bytes("\ud83d"), 3)
    assert.equal(utf8Bytes("\ude00x"), 4)
  })
})
