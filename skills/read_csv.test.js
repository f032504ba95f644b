import { CsvError, parse, parseRecords, positionOf, readCsvWith, run } from "read_csv"

const rows = (text) => parse(text, { has_header: false })

describe("RFC 4180 fields", () => {
  test("splits plain fields and keeps every value a string", () => {
    assert.deepEqual(rows("id,code,amount\n1,007,1e3\n"), [["id", "code", "amount"], ["1", "007", "1e3"]])
  })

  test("keeps commas inside quoted fields", () => {
    assert.deepEqual(rows("name,city\n\"Doe, Jane\",\"Paris, FR\"\n"), [["name", "city"], ["Doe, Jane", "Paris, FR"]])
  })

  test("turns a doubled quote inside a quoted field into one quote", () => {
    assert.deepEqual(rows("\"she said \"\"hi\"\"\",\"\"\"\"\n"), [["she said \"hi\"", "\""]])
  })

  test("keeps line breaks inside quoted fields exactly (LF and CRLF)", () => {
    assert.deepEqual(rows("a,b\r\n\"line 1\nline 2\",\"x\r\ny\"\r\n"), [["a", "b"], ["line 1\nline 2", "x\r\ny"]])
  })

  test("reads empty fields: between commas, at both ends, and quoted", () => {
    assert.deepEqual(rows("a,,c\n,b,\n,,\n\"\",\"\",\"\"\n"), [["a", "", "c"], ["", "b", ""], ["", "", ""], ["", "", ""]])
  })

  test("keeps spaces around values, which are data in CSV", () => {
    assert.deepEqual(rows(" a , b \n"), [[" a ", " b "]])
  })

  test("keeps a quote in the middle of an unquoted field as text", () => {
    assert.deepEqual(rows("item,size\nruler,12\" long\n"), [["item", "size"], ["ruler", "12\" long"]])
  })
})

describe("line endings", () => {
  test("reads CRLF, LF and a mix of both the same way", () => {
    const expected = [["a", "b"], ["1", "2"], ["3", "4"]]
    assert.deepEqual(rows("a,b\r\n1,2\r\n3,4\r\n"), expected)
    assert.deepEqual(rows("a,b\n1,2\n3,4\n"), expected)
    assert.deepEqual(rows("a,b\r\n1,2\n3,4"), expected)
  })

  test("does not add an empty row for a trailing newline, and needs none", () => {
    assert.deepEqual(rows("a,b\n1,2\n"), [["a", "b"], ["1", "2"]])
    assert.deepEqual(rows("a,b\n1,2"), [["a", "b"], ["1", "2"]])
    assert.deepEqual(rows("a,b\n1,"), [["a", "b"], ["1", ""]])
  })

  test("skips blank lines, including several at the end", () => {
    assert.deepEqual(rows("a,b\n\n1,2\r\n\r\n\n"), [["a", "b"], ["1", "2"]])
  })

  test("keeps a quoted empty value on its own line (a one-column file's empty cell)", () => {
    assert.deepEqual(parse("name\n\"\"\nBo\n"), [{ name: "" }, { name: "Bo" }])
  })

  test("skips a UTF-8 byte-order mark before the header", () => {
    assert.deepEqual(parse("\ufeffid,name\n1,Ann\n"), [{ id: "1", name: "Ann" }])
  })
})

describe("header", () => {
  test("returns objects keyed by the header row by default", () => {
    assert.deepEqual(parse("id,name\n1,Ann\n2,\"Bo, Jr\"\n"), [{ id: "1", name: "Ann" }, { id: "2", name: "Bo, Jr" }])
  })

  test("returns arrays of strings with has_header false", () => {
    assert.deepEqual(parse("id,name\n1,Ann\n", { has_header: false }), [["id", "name"], ["1", "Ann"]])
  })

  test("returns no rows for an empty text or a header alone", () => {
    assert.deepEqual(parse(""), [])
    assert.deepEqual(parse("\n\n"), [])
    assert.deepEqual(parse("id,name\n"), [])
    assert.deepEqual(rows(""), [])
  })

  test("refuses a header that names a column twice, saying which columns", () => {
    const error = assert.throws(() => parse("id,name,id\n1,a,2\n"), CsvError)
    assert.equal(
      error.message,
      "the header on line 1 names the column \"id\" twice (columns 1 and 3); give the columns distinct names, or read the file with \"has_header\": false"
    )
    assert.deepEqual(rows("id,id\n1,2\n"), [["id", "id"], ["1", "2"]])
  })

  test("keeps a column named __proto__ as an ordinary value", () => {
    const [row] = parse("__proto__,x\nvalue,1\n")
    assert.equal(JSON.stringify(row), "{\"__proto__\":\"value\",\"x\":\"1\"}")
    assert.equal(Object.getPrototypeOf(row), Object.prototype)
  })

  test("rejects a has_header that is not a boolean", () => {
    assert.throws(() => parse("a\n", { has_header: "yes" }), /"has_header" must be true or false, got "yes"/)
  })
})

describe("malformed input", () => {
  test("reports a ragged row with its line number and the expected width", () => {
    const error = assert.throws(() => parse("id,name,age\n1,Ann,30\n2,Bo\n3,Cy,40\n"), CsvError)
    assert.equal(
      error.message,
      "ragged rows: line 3 has 2; every row must have 3 fields like the header on line 1. Quote fields that contain commas or line breaks, or fix those rows."
    )
  })

  test("counts lines inside quoted fields and skipped blank lines when numbering a ragged row", () => {
    assert.throws(() => rows("a,b\n\"x\ny\",1\n\n1,2,3\n"), /^ragged rows: line 5 has 3; every row must have 2 fields like the first row on line 1/)
  })

  test("lists too-long and too-short rows alike, at most five, and counts the rest", () => {
    const text = "a,b\n" + ["1", "1,2,3", "1", "1", "1", "1", "1"].join("\n")
    assert.throws(() => rows(text), /^ragged rows: line 2 has 1, line 3 has 3, line 4 has 1, line 5 has 1, line 6 has 1 \(and 2 more rows\);/)
  })

  test("reports a quoted field that never closes at the line where it opens", () => {
    assert.throws(() => rows("a,b\n1,\"open\n2,3\n"), /^line 2: the quoted field that starts here never ends \(a closing " is missing\)$/)
  })

  test("reports text after a closing quote with its line and column", () => {
    const error = assert.throws(() => rows("a,b\n\"x\"y,2\n"), CsvError)
    assert.equal(error.message, "line 2, column 4: unexpected \"y\" after the closing quote of a field (a quote inside a quoted field is written \"\")")
  })

  test("rejects text that is not a string", () => {
    assert.throws(() => parse(undefined), /the CSV text must be a string, got undefined/)
    assert.throws(() => parse(["a,b"]), TypeError)
  })
})

describe("positionOf", () => {
  test("gives 1-based lines and columns with CRLF, LF and CR breaks", () => {
    assert.deepEqual(positionOf("ab", 1), { line: 1, column: 2 })
    assert.deepEqual(positionOf("a\r\nb\nc\rd", 7), { line: 4, column: 1 })
    assert.deepEqual(positionOf("a\r\nb\nc\rd", 3), { line: 2, column: 1 })
  })

  test("parseRecords keeps where each record starts", () => {
    assert.deepEqual(parseRecords("a\n\nb,c\n"), [{ start: 0, fields: ["a"] }, { start: 3, fields: ["b", "c"] }])
  })
})

describe("reading a file", () => {
  test("reads the path through read_file and parses it", () => {
    const asked = []
    const read = (args) => {
      asked.push(args)
      return "id,name\r\n1,Ann\r\n"
    }
    assert.deepEqual(readCsvWith(read, { path: "~/data/people.csv" }), [{ id: "1", name: "Ann" }])
    assert.deepEqual(readCsvWith(read, { path: "~/data/people.csv", has_header: false }), [["id", "name"], ["1", "Ann"]])
    assert.deepEqual(asked, [{ path: "~/data/people.csv" }, { path: "~/data/people.csv" }])
  })

  test("names the file in a parse error", () => {
    assert.throws(() => readCsvWith(() => "a,b\n1\n", { path: "/d/t.csv" }), /^\/d\/t\.csv: ragged rows: line 2 has 1;/)
  })

  test("passes read errors through unchanged", () => {
    const read = () => {
      throw new Error("read_file.run threw Error: cannot read /d/x.csv: fs.readFile: ENOENT: no such file or directory")
    }
    assert.throws(() => readCsvWith(read, { path: "/d/x.csv" }), /cannot read \/d\/x\.csv: fs\.readFile: ENOENT/)
  })

  test("checks has_header before reading anything", () => {
    let reads = 0
    assert.throws(() => readCsvWith(() => reads++, { path: "/d/t.csv", has_header: "no" }), /"has_header" must be true or false/)
    assert.throws(() => readCsvWith(() => reads++, "/d/t.csv"), /expected arguments like/)
    assert.equal(reads, 0)
  })

  test("run refuses bad arguments before reading", () => {
    assert.throws(() => run({ path: "/d/t.csv", has_header: 1 }), /"has_header" must be true or false, got 1/)
  })
})
