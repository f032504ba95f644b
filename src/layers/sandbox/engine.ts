/**
 * A QuickJS engine: one WebAssembly instance per sandbox worker, loaded when the worker starts,
 * whose linear memory is capped; and the engine's compiled code, shared by all of them.
 *
 * Why the cap lives here: the prebuilt engine's own accounting (`setMemoryLimit`) bounds single
 * allocations only (quickjs-emscripten issues #255, #271), so each engine gets a WebAssembly
 * memory whose maximum is the limit; once it is full, QuickJS fails its allocations with
 * "out of memory". A worker runs one run at a time, so the cap belongs to one run at a time,
 * and a worker whose engine a run filled or broke is replaced (`pool.ts`).
 *
 * Why the code is compiled once, on the main thread: V8 compiles WebAssembly quickly at first
 * and optimises the hot functions later, in the background. Each worker compiling the engine
 * itself means each optimising it again, so four CPU-bound skills at once ran several times
 * slower than one; a `WebAssembly.Module` sent to the workers shares one compilation.
 */
import { readFile } from "node:fs/promises"
import { createRequire } from "node:module"
import type { QuickJSRuntime } from "quickjs-emscripten"

/**
 * The part of `WebAssembly.Memory` used here and that QuickJS's `wasmMemory` option needs (where
 * WebAssembly types exist, as under Deno, it must have `grow`); the project's `lib` carries none.
 */
interface WasmMemory {
  readonly buffer: ArrayBuffer
  grow(delta: number): number
}

/** A compiled `WebAssembly.Module` of the engine, as it is handed from thread to thread. */
export interface EngineCode {
  readonly engineCode: unique symbol
}

const WebAssemblyApi = (globalThis as unknown as {
  readonly WebAssembly: {
    readonly Memory: new(descriptor: { initial: number; maximum: number }) => WasmMemory
    readonly Module: abstract new(...args: ReadonlyArray<never>) => EngineCode
    readonly compile: (bytes: Uint8Array) => Promise<EngineCode>
  }
}).WebAssembly

export const isEngineCode = (value: unknown): value is EngineCode => value instanceof WebAssemblyApi.Module

/** Compiles the engine (quickjs-emscripten's release-sync variant, the one `makeEngine` runs). */
export const compileEngineCode = async (): Promise<EngineCode> => {
  // Resolved from quickjs-emscripten itself, which depends on the variant.
  const quickjs = createRequire(import.meta.url).resolve("quickjs-emscripten")
  const wasm = createRequire(quickjs).resolve("@jitl/quickjs-wasmfile-release-sync/wasm")
  return WebAssemblyApi.compile(await readFile(wasm))
}

/** A QuickJS engine (a WebAssembly instance) whose linear memory is capped. */
export interface Engine {
  readonly load: Promise<{ readonly newRuntime: () => QuickJSRuntime }>
  readonly memory: WasmMemory
  readonly maxBytes: number
  /** Set when a host-level failure left the module in an unknown state. */
  poisoned: boolean
}

const PAGE = 65536
/** Room for the engine itself (static data, C stack, runtime bookkeeping) below the skill's share. */
const ENGINE_BASE_BYTES = 16 * 1024 * 1024

/** An engine over `code`; it starts loading at once. */
export const makeEngine = (memoryMb: number, code: EngineCode): Engine => {
  const maxBytes = ENGINE_BASE_BYTES + memoryMb * 1024 * 1024
  const memory = new WebAssemblyApi.Memory({ initial: ENGINE_BASE_BYTES / PAGE, maximum: maxBytes / PAGE })
  const emscriptenModule = {
    wasmMemory: memory,
    // Emscripten prints its aborts (e.g. a runtime that cannot be freed after a skill left
    // an endless promise chain); the abort itself reaches us as an exception and retires
    // the engine, so the printed copy is not for the user's terminal.
    printErr: () => undefined
  }
  const load = import("quickjs-emscripten").then(({ newQuickJSWASMModule, newVariant, RELEASE_SYNC }) =>
    newQuickJSWASMModule(newVariant(RELEASE_SYNC, { wasmMemory: memory, wasmModule: code, emscriptenModule }))
  )
  return { load, memory, maxBytes, poisoned: false }
}

/** The engine's memory reached its cap: allocations now fail. */
export const engineFull = (engine: Engine): boolean => engine.memory.buffer.byteLength >= engine.maxBytes
