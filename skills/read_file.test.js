import { readFileWith, run } from "read_file"

/** A scripted stand-in for the sandbox's fs: files in memory, errors worded like the real ones. */
function memoryFs(files) {
  const requested = []
  return {
    requested,
    readFile(path) {
      requested.push(path)
      if (!Object.prototype.hasOwnProperty.call(files, path)) throw new Error("fs.readFile: ENOENT: no such file or directory")
      return files[path]
    }
  }
}

describe("reading", () => {
  test("returns the text of the file it is asked for", () => {
    const io = memoryFs({ "/data/notes.txt": "first line\nsecond line\n" })
    assert.equal(readFileWith(io, { path: "/data/notes.txt" }), "first line\nsecond line\n")
    assert.deepEqual(io.requested, ["/data/notes.txt"])
  })

  test("passes ~ and relative paths to the sandbox unchanged (it resolves and checks them)", () => {
    const io = memoryFs({ "~/a.txt": "home", "data/b.txt": "relative" })
    assert.equal(readFileWith(io, { path: "~/a.txt" }), "home")
    assert.equal(readFileWith(io, { path: "data/b.txt" }), "relative")
    assert.deepEqual(io.requested, ["~/a.txt", "data/b.txt"])
  })

  test("returns an empty file as an empty string", () => {
    assert.equal(readFileWith(memoryFs({ "/e.txt": "" }), { path: "/e.txt" }), "")
  })

  test("keeps the text exactly: CRLF, tabs, non-ASCII", () => {
    const text = "a\tb\r\nÄ ö — 日本 😀\r\n"
    assert.equal(readFileWith(memoryFs({ "/u.txt": text }), { path: "/u.txt" }), text)
  })

  test("ignores arguments it does not know", () => {
    assert.equal(readFileWith(memoryFs({ "/x": "x" }), { path: "/x", encoding: "latin1" }), "x")
  })
})

describe("errors", () => {
  test("names the path when the file cannot be read", () => {
    assert.throws(
      () => readFileWith(memoryFs({}), { path: "/data/missing.txt" }),
      /^cannot read \/data\/missing\.txt: fs\.readFile: ENOENT: no such file or directory$/
    )
  })

  test("rejects a missing, empty or non-string path before touching the file system", () => {
    const io = memoryFs({})
    assert.throws(() => readFileWith(io, {}), /"path" must be a non-empty string naming a file, got undefined/)
    assert.throws(() => readFileWith(io, { path: "" }), /"path" must be a non-empty string/)
    assert.throws(() => readFileWith(io, { path: "   " }), /"path" must be a non-empty string/)
    assert.throws(() => readFileWith(io, { path: 42 }), /got 42/)
    assert.throws(() => readFileWith(io, { path: ["/a", "/b"] }), TypeError)
    assert.deepEqual(io.requested, [])
  })

  test("rejects arguments that are not an object", () => {
    assert.throws(() => readFileWith(memoryFs({}), "/etc/hosts"), /expected arguments like \{"path": "~\/notes.txt"\}, got "\/etc\/hosts"/)
    assert.throws(() => readFileWith(memoryFs({}), null), /got null/)
    assert.throws(() => readFileWith(memoryFs({}), ["/a"]), TypeError)
  })

  test("run checks its arguments before reading anything", () => {
    assert.throws(() => run({ path: "" }), /"path" must be a non-empty string/)
  })
})
