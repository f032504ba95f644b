/**
 * `quick-prompt`, `generate` and `generate-with-context` (seed phase 1A): one request to the
 * model, its answer printed, or its code written to a file. The model's text is untrusted:
 * it reaches the terminal only through `sanitizeForTerminal`.
 */
import { Args, Command as Cli, Options } from "@effect/cli"
import { FileSystem, Path } from "@effect/platform"
import { Array as Arr, Console, Data, Effect, Option, Stream } from "effect"
import { extractCode, unwrapFence } from "../../core/llmOutput.ts"
import { codeGeneratorSystemPrompt, type ContextFile, contextPrompt, languageForPath } from "../../core/prompts.ts"
import { sanitizeForTerminal } from "../../core/terminalText.ts"
import type { ModelPurpose } from "../../layers/Config.ts"
import { type Completion, type CompletionRequest, Llm } from "../../layers/Llm.ts"
import { checkOutputPath, OutputExists } from "../outputPath.ts"
import { provideLlm } from "../runtime.ts"
import { dim, printJson } from "../ui.ts"

export class ContextFileUnreadable extends Data.TaggedError("ContextFileUnreadable")<{
  readonly path: string
  readonly reason: string
}> {
  override get message() {
    return `Could not read the context file ${this.path}: ${this.reason}. Check the path; the files come before the prompt: generate-with-context <out> <context-file>… "<prompt>".`
  }
}

export class NoCodeInAnswer extends Data.TaggedError("NoCodeInAnswer")<{
  readonly out: string
  readonly model: string
  readonly answer: string
}> {
  override get message() {
    const answer = this.answer.length > 300 ? `${this.answer.slice(0, 300)}…` : this.answer
    return `The model ${this.model} answered without code, so nothing was written to ${this.out}. Its answer: ${JSON.stringify(answer)}. Rephrase the prompt, or try another model with --model.`
  }
}

export class OutputNotWritten extends Data.TaggedError("OutputNotWritten")<{
  readonly path: string
  readonly reason: string
}> {
  override get message() {
    return `Could not write ${this.path}: ${this.reason}. Choose a path in a writable directory.`
  }
}

const modelOption = Options.text("model").pipe(
  Options.withPseudoName("NAME"),
  Options.withDescription("The model to ask (default: luallm.model, the model policy, else the running model)"),
  Options.optional
)
const jsonOption = Options.boolean("json").pipe(Options.withDescription("Print the result as JSON"))

const chooseModel = (model: Option.Option<string>, purpose: ModelPurpose) =>
  Option.match(model, { onSome: Effect.succeed, onNone: () => Effect.flatMap(Llm, (llm) => llm.resolveModel(purpose)) })

/** "qwen · 12+80 tokens · 950 ms", plus any note; the model's name comes from the server. */
const describeCall = (completion: Completion): string =>
  sanitizeForTerminal(
    [
      `${completion.model} · ${completion.usage.prompt_tokens}+${completion.usage.completion_tokens} tokens · ${completion.latency_ms} ms`,
      ...completion.notes.map((note) => `(${note})`)
    ].join(" ")
  )

const write = (stream: NodeJS.WriteStream, text: string) => Effect.sync(() => stream.write(text))

/**
 * Streams `request`, handing each piece of text to `onText`, and returns the final result.
 * A stream always ends with its result; a stream without one is a bug in the layer.
 */
const streamed = <E, R>(request: CompletionRequest, onText: (text: string) => Effect.Effect<void, E, R>) =>
  Effect.flatMap(Llm, (llm) =>
    llm.stream(request).pipe(
      Stream.tap((part) => (part._tag === "Delta" ? onText(part.text) : Effect.void)),
      Stream.filterMap((part) => (part._tag === "Done" ? Option.some(part.completion) : Option.none())),
      Stream.runLast,
      Effect.flatMap(Option.match({
        onNone: () => Effect.dieMessage("the LLM stream ended without its result"),
        onSome: Effect.succeed
      }))
    ))

/**
 * A call that may take a minute: on a terminal, one line on stderr counts what has arrived;
 * anywhere else a plain log line says what is being asked (no cursor movement in a file or pipe).
 */
const completeWithProgress = (request: CompletionRequest) =>
  Effect.gen(function*() {
    if (process.stdout.isTTY !== true || process.stderr.isTTY !== true) {
      yield* Effect.logInfo(`asking ${sanitizeForTerminal(request.model)}…`)
      return yield* Effect.flatMap(Llm, (llm) => llm.complete(request))
    }
    let received = 0
    const clearLine = write(process.stderr, "\r\u001b[K")
    // The progress line is cleared before an error too, so the error starts a line of its own.
    const completion = yield* streamed(request, (text) => {
      received += text.length
      return write(process.stderr, `\r${dim(`${request.model}: ${received} characters…`)}`)
    }).pipe(Effect.tapError(() => clearLine))
    yield* clearLine
    return completion
  })

export const quickPromptCommand = Cli.make(
  "quick-prompt",
  { text: Args.text({ name: "prompt" }).pipe(Args.withDescription("What to ask, as one argument (quote it)")), model: modelOption, json: jsonOption },
  ({ json, model, text }) =>
    Effect.gen(function*() {
      const request: CompletionRequest = {
        model: yield* chooseModel(model, "default"),
        messages: [{ role: "user", content: text }]
      }
      if (json) return yield* printJson(yield* Effect.flatMap(Llm, (llm) => llm.complete(request)))
      // The answer is printed as it arrives. If the call fails mid-answer (a server that went
      // silent), a newline comes first, so the error never shares a line with the answer.
      let midLine = false
      const endLine = Effect.suspend(() => (midLine ? write(process.stdout, "\n") : Effect.void))
      const completion = yield* streamed(request, (piece) => {
        midLine = !piece.endsWith("\n")
        return write(process.stdout, sanitizeForTerminal(piece))
      }).pipe(Effect.tapError(() => endLine))
      yield* endLine
      yield* Console.error(process.stdout.isTTY === true ? dim(describeCall(completion)) : describeCall(completion))
    }).pipe(provideLlm)
).pipe(Cli.withDescription("Send one prompt to the model and print its answer as it streams"))

/**
 * Writes `content` to `target`, which `checkOutputPath` has resolved. Without `force` the file
 * must not exist (checked again at the write: `wx`); with it, a temporary file beside it is
 * renamed over it, which replaces a link there instead of writing through it.
 */
const writeOutput = (target: string, content: string, force: boolean) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    yield* fs.makeDirectory(path.dirname(target), { recursive: true })
    if (!force) return yield* fs.writeFileString(target, content, { flag: "wx" })
    const temp = path.join(path.dirname(target), `.${path.basename(target)}.${crypto.randomUUID()}.tmp`)
    yield* fs.writeFileString(temp, content, { flag: "wx" })
    yield* fs.rename(temp, target).pipe(Effect.tapError(() => fs.remove(temp, { force: true }).pipe(Effect.ignore)))
  }).pipe(
    Effect.mapError((error) =>
      error._tag === "SystemError" && error.reason === "AlreadyExists"
        ? new OutputExists({ path: target })
        : new OutputNotWritten({ path: target, reason: error.message })
    )
  )

interface GenerateOptions {
  readonly model: Option.Option<string>
  readonly json: boolean
  /** Replace `out` if it exists. */
  readonly force: boolean
}

/** Asks the code generator for `out`, strips the chatter, writes the file and reports. */
const generate = (out: string, userPrompt: string, options: GenerateOptions) =>
  Effect.gen(function*() {
    // Before the model is asked: a path that cannot be written costs no model call.
    const target = yield* checkOutputPath(out, options.force)
    const language = languageForPath(out)
    const model = yield* chooseModel(options.model, "code")
    const completion = yield* completeWithProgress({
      model,
      messages: [{ role: "system", content: codeGeneratorSystemPrompt(language) }, { role: "user", content: userPrompt }]
    })
    const content = language?.kind === "prose" ? unwrapFence(completion.content) : extractCode(completion.content)
    if (content === "") return yield* new NoCodeInAnswer({ out, model: completion.model, answer: completion.content })
    yield* writeOutput(target, content, options.force)
    if (options.json) {
      return yield* printJson({
        path: target,
        bytes: Buffer.byteLength(content),
        model: completion.model,
        usage: completion.usage,
        latency_ms: completion.latency_ms,
        notes: completion.notes
      })
    }
    yield* Console.log(`wrote ${target}`)
    yield* Console.log(dim(describeCall(completion)))
  })

const forceOption = Options.boolean("force").pipe(Options.withDescription("Replace <out> if it already exists"))
const outArg = Args.text({ name: "out" }).pipe(
  Args.withDescription("The file to write: inside allowed_paths, never in luallm-agent's own files; an existing one only with --force")
)

export const generateCommand = Cli.make(
  "generate",
  {
    out: outArg,
    text: Args.text({ name: "prompt" }).pipe(Args.withDescription("What the file should hold, in plain language, as one argument (quote it)")),
    model: modelOption,
    json: jsonOption,
    force: forceOption
  },
  ({ force, json, model, out, text }) => generate(out, text, { model, json, force }).pipe(provideLlm)
).pipe(
  Cli.withDescription(
    "Ask the model for a file's code and write it to <out>\nMarkdown fences and prose around the code are stripped. <out> must be inside allowed_paths; an existing file is replaced only with --force."
  )
)

const readContextFile = (file: string) =>
  Effect.flatMap(FileSystem.FileSystem, (fs) =>
    fs.readFileString(file).pipe(
      Effect.map((contents): ContextFile => ({ path: file, contents })),
      Effect.mapError((error) =>
        new ContextFileUnreadable({ path: file, reason: error._tag === "SystemError" && error.reason === "NotFound" ? "it does not exist" : error.message })
      )
    ))

export const generateWithContextCommand = Cli.make(
  "generate-with-context",
  {
    out: outArg,
    // @effect/cli's repeated arguments are greedy, so the prompt is taken from the end here.
    rest: Args.text({ name: "context-file… prompt" }).pipe(
      Args.withDescription("One or more files to show the model (read whole, each named), then the prompt as the last argument"),
      Args.atLeast(2)
    ),
    model: modelOption,
    json: jsonOption,
    force: forceOption
  },
  ({ force, json, model, out, rest }) =>
    Effect.gen(function*() {
      const context = yield* Effect.forEach(Arr.initNonEmpty(rest), readContextFile)
      yield* generate(out, contextPrompt(context, Arr.lastNonEmpty(rest)), { model, json, force })
    }).pipe(provideLlm)
).pipe(Cli.withDescription("Like generate, with the given files prepended to the prompt as reference"))
