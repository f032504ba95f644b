import { escapeHeading, render, run, writeMarkdownWith } from "write_markdown"

/** A stand-in for write_file's run: records what it was asked to write. */
function recordingWrite() {
  const writes = []
  const write = (args) => {
    writes.push(args)
    return { path: args.path, bytes: args.content.length }
  }
  return { writes, write }
}

const report = {
  title: "Weekly report",
  sections: [
    { heading: "Summary", body: "All **green**.\n\n- 3 releases\n- 0 incidents" },
    { heading: "Next", body: "Ship `v2`." }
  ]
}

describe("render", () => {
  test("renders the title as # and each section as ## followed by its body", () => {
    assert.equal(
      render(report),
      "# Weekly report\n\n## Summary\n\nAll **green**.\n\n- 3 releases\n- 0 incidents\n\n## Next\n\nShip `v2`.\n"
    )
  })

  test("renders a title alone when there are no sections", () => {
    assert.equal(render({ title: "Empty" }), "# Empty\n")
    assert.equal(render({ title: "Empty", sections: [] }), "# Empty\n")
  })

  test("renders a section without a body as its heading alone", () => {
    assert.equal(render({ title: "T", sections: [{ heading: "A" }, { heading: "B", body: "  \n" }, { heading: "C", body: "c" }] }), "# T\n\n## A\n\n## B\n\n## C\n\nc\n")
  })

  test("writes bodies as Markdown: normalises CRLF, trims blank lines at the ends, keeps indentation", () => {
    const text = render({ title: "T", sections: [{ heading: "Code", body: "\r\n\r\n    indented code\r\n# not escaped in a body\r\n\r\n" }] })
    assert.equal(text, "# T\n\n## Code\n\n    indented code\n# not escaped in a body\n")
  })
})

describe("escaping headings", () => {
  test("escapes the characters Markdown would read as formatting", () => {
    assert.equal(escapeHeading("*bold* _em_ `code` [link](x) <b> ~~strike~~ back\\slash"), "\\*bold\\* \\_em\\_ \\`code\\` \\[link\\](x) \\<b\\> \\~\\~strike\\~\\~ back\\\\slash")
  })

  test("escapes # so a trailing one is not taken for a closing sequence", () => {
    assert.equal(escapeHeading("Issue #"), "Issue \\#")
    assert.equal(escapeHeading("# C# notes ##"), "\\# C\\# notes \\#\\#")
  })

  test("escapes & only where it would start an entity", () => {
    assert.equal(escapeHeading("R&D for AT&amp;T &copy; & more;"), "R&D for AT\\&amp;T \\&copy; & more;")
    assert.equal(escapeHeading("&#169; &#x1F600;"), "&\\#169; &\\#x1F600;")
  })

  test("turns line breaks and tabs into single spaces, so a heading stays one line", () => {
    assert.equal(escapeHeading("  two\nlines\r\n\tand a tab  "), "two lines and a tab")
    assert.equal(render({ title: "T", sections: [{ heading: "a\n## injected", body: "" }] }), "# T\n\n## a \\#\\# injected\n")
  })

  test("leaves ordinary punctuation alone", () => {
    assert.equal(escapeHeading("Q3 (draft) - 1. results: 50% + more!"), "Q3 (draft) - 1. results: 50% + more!")
  })
})

describe("invalid documents", () => {
  test("rejects a missing, blank or non-string title", () => {
    assert.throws(() => render({ sections: [] }), /^title must be a string, got undefined$/)
    assert.throws(() => render({ title: " \n " }), /^title must not be empty$/)
    assert.throws(() => render({ title: 42 }), /title must be a string, got number/)
  })

  test("rejects sections that are not an array of {heading, body}, naming the bad one", () => {
    assert.throws(() => render({ title: "T", sections: "intro" }), /sections must be an array of \{heading, body\}, got "intro"/)
    assert.throws(() => render({ title: "T", sections: [{ heading: "ok" }, "text"] }), /sections\[1\] must be an object like \{"heading": "Summary", "body": "…"\}, got "text"/)
    assert.throws(() => render({ title: "T", sections: [{ body: "b" }] }), /sections\[0\]\.heading must be a string, got undefined/)
    assert.throws(() => render({ title: "T", sections: [{ heading: "" }] }), /sections\[0\]\.heading must not be empty/)
    assert.throws(() => render({ title: "T", sections: [{ heading: "h", body: ["x"] }] }), /sections\[0\]\.body must be a string of Markdown, got object/)
  })

  test("rejects a document that is not an object", () => {
    assert.throws(() => render("# T"), /expected \{"title": "…", "sections"/)
    assert.throws(() => render(null), TypeError)
  })
})

describe("writing", () => {
  test("hands the rendered text to write_file with overwrite false by default", () => {
    const { write, writes } = recordingWrite()
    const result = writeMarkdownWith(write, { ...report, output_path: "~/reports/week.md" })
    assert.deepEqual(writes, [{ path: "~/reports/week.md", content: render(report), overwrite: false }])
    assert.deepEqual(result, { path: "~/reports/week.md", bytes: render(report).length })
  })

  test("passes overwrite: true through, and only a boolean", () => {
    const { write, writes } = recordingWrite()
    writeMarkdownWith(write, { ...report, output_path: "/r.md", overwrite: true })
    assert.equal(writes[0].overwrite, true)
    assert.throws(() => writeMarkdownWith(write, { ...report, output_path: "/r.md", overwrite: "yes" }), /"overwrite" must be true or false, got "yes"/)
    assert.equal(writes.length, 1)
  })

  test("passes write_file's refusal to overwrite through", () => {
    const refuse = () => {
      throw new Error("write_file.run threw Error: /r.md already exists and was left unchanged; pass \"overwrite\": true to replace it")
    }
    assert.throws(() => writeMarkdownWith(refuse, { ...report, output_path: "/r.md" }), /\/r\.md already exists and was left unchanged/)
  })

  test("rejects a missing output_path before writing anything", () => {
    const { write, writes } = recordingWrite()
    assert.throws(() => writeMarkdownWith(write, report), /"output_path" must be a non-empty string naming the \.md file to write, got undefined/)
    assert.throws(() => writeMarkdownWith(write, { ...report, output_path: "" }), /"output_path" must be a non-empty string/)
    assert.equal(writes.length, 0)
  })

  test("run writes through the real write_file skill (its checks answer)", () => {
    assert.throws(() => run({ ...report, output_path: "/reports/" }), /write_file\.run threw TypeError: "path" must name a file, but \/reports\/ ends with "\/"/)
  })
})
