/**
 * A QuickJS engine: one WebAssembly module, loaded on first use, whose linear memory is capped.
 *
 * Why the cap lives here: the prebuilt engine's own accounting (`setMemoryLimit`) bounds single
 * allocations only (quickjs-emscripten issues #255, #271), so each engine gets a WebAssembly
 * memory whose maximum is the limit; once it is full, QuickJS fails its allocations with
 * "out of memory". `Sandbox.ts` serialises the runs of an engine, so the cap belongs to one
 * run at a time, and retires an engine that a run filled or broke.
 */
import type { QuickJSRuntime } from "quickjs-emscripten"

/**
 * The part of `WebAssembly.Memory` used here and that QuickJS's `wasmMemory` option needs (where
 * WebAssembly types exist, as under Deno, it must have `grow`); the project's `lib` carries none.
 */
interface WasmMemory {
  readonly buffer: ArrayBuffer
  grow(delta: number): number
}
const WasmMemory = (globalThis as unknown as {
  readonly WebAssembly: { readonly Memory: new(descriptor: { initial: number; maximum: number }) => WasmMemory }
}).WebAssembly.Memory

/** A QuickJS engine (a WebAssembly module) whose linear memory is capped. */
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

export const makeEngine = (memoryMb: number): Engine => {
  const maxBytes = ENGINE_BASE_BYTES + memoryMb * 1024 * 1024
  const memory = new WasmMemory({ initial: ENGINE_BASE_BYTES / PAGE, maximum: maxBytes / PAGE })
  const emscriptenModule = {
    wasmMemory: memory,
    // Emscripten prints its aborts (e.g. a runtime that cannot be freed after a skill left
    // an endless promise chain); the abort itself reaches us as an exception and retires
    // the engine, so the printed copy is not for the user's terminal.
    printErr: () => undefined
  }
  // Imported on first use: commands that never run a skill do not pay for loading QuickJS.
  const load = import("quickjs-emscripten").then(({ newQuickJSWASMModule, newVariant, RELEASE_SYNC }) =>
    newQuickJSWASMModule(newVariant(RELEASE_SYNC, { wasmMemory: memory, emscriptenModule }))
  )
  return { load, memory, maxBytes, poisoned: false }
}

/** The engine's memory reached its cap: allocations now fail. */
export const engineFull = (engine: Engine): boolean => engine.memory.buffer.byteLength >= engine.maxBytes
