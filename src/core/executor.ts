/**
 * Runs a validated task graph. Every ready node starts as soon as its last dependency finishes
 * (not level by level), at most `maxParallel` at a time; decisions are evaluated here, skill and
 * llm_call nodes go to the caller's `runNode`. The executor does no I/O itself: the caller
 * persists progress through `onUpdate`.
 *
 * All changes to the graph go through one `SynchronizedRef` whose update also calls `onUpdate`,
 * so `onUpdate` sees every state, in order, and never a half-applied one. The nodes live in a
 * persistent `HashMap`, so a change costs O(log n) however large the graph, and a dependants index
 * with per-node counters finds the nodes a completion makes ready without scanning the graph.
 *
 * Resuming: nodes that were `running` when the run was interrupted (or the process died) go back
 * to `pending`, and calling `executeGraph` again on the saved graph continues from there;
 * completed nodes are never run again.
 */
import {
  Array as Arr,
  Deferred,
  Effect,
  Either,
  Exit,
  HashMap,
  Option,
  Predicate,
  Queue,
  Ref,
  Schedule,
  SynchronizedRef
} from "effect"
import { evaluateCondition, parseCondition } from "./conditions.ts"
import {
  type ActionNode,
  type DecisionNode,
  dependantsIndex,
  descendants,
  type Graph,
  type Node,
  readyNodes,
  skipped
} from "./graph.ts"
import type { Results } from "./template.ts"

export interface ExecuteOptions<E, R, E2, R2, R3> {
  /** Runs a skill or llm_call node; the graph holds the results so far. Success is the node's result. */
  readonly runNode: (node: ActionNode, graph: Graph) => Effect.Effect<unknown, E, R>
  /** How many nodes may run at once (at least 1). */
  readonly maxParallel: number
  /** Called after every change of the graph, in order, e.g. to persist it. Its failure fails the run. */
  readonly onUpdate?: (graph: Graph) => Effect.Effect<void, E2, R2>
  /** Spaces the retries of a failing node; their number is the node's `max_retries`. Default: no delay. */
  readonly retrySchedule?: Schedule.Schedule<unknown, unknown, R3>
}

export interface RunOptions<E, S extends E, R, E2, R2, R3> extends ExecuteOptions<E, R, E2, R2, R3> {
  /**
   * A `runNode` failure that stops the whole run instead of failing its node (the model the node
   * asked is down: the next nodes asking it would fail the same way). That node goes back to
   * `pending` (its retries as they were), the nodes already running finish, no other node starts.
   */
  readonly stopOn: (error: E) => error is S
}

/** How a run ended: its graph, and the failure that stopped it early, if one did. */
export interface GraphRun<E> {
  readonly graph: Graph
  readonly stopped: Option.Option<E>
}

type Nodes = HashMap.HashMap<string, Node>

interface RunState {
  readonly nodes: Nodes
  /** Nodes queued or running; the run is over when none are left. */
  readonly outstanding: number
}

/** A node's result, or the message of why it failed. */
type Outcome = Either.Either<unknown, string>

/** How a `runNode` failure reads in the node's `error` field. */
const describeError = (error: unknown): string => {
  if (Predicate.hasProperty(error, "message") && typeof error.message === "string" && error.message !== "") {
    return error.message
  }
  if (Predicate.hasProperty(error, "_tag") && typeof error._tag === "string") return error._tag
  return typeof error === "string" ? error : (JSON.stringify(error) ?? String(error))
}

const requeued = (node: Node): Node => node.status === "running" ? { ...node, status: "pending" } : node

const resultsIn = (nodes: Nodes): Results => (id) =>
  Option.flatMap(
    HashMap.get(nodes, id),
    (node) => node.status === "complete" ? Option.some(node.result) : Option.none()
  )

/** A decision's result is the truth of its condition, about the result of its first dependency. */
const decide = (node: DecisionNode, results: Results): Outcome =>
  parseCondition(node.condition).pipe(
    Either.flatMap((ast) =>
      evaluateCondition(ast, { result: Option.getOrNull(Option.flatMap(Arr.head(node.depends_on), results)), results })
    ),
    Either.mapLeft((error) => `condition ${JSON.stringify(node.condition)}: ${error.message}`)
  )

/**
 * Runs every node of `graph` that can run and returns the final graph. A node that still fails
 * after its retries is `failed` (with its error) and everything downstream `skipped`: that is
 * data, not a failure of this effect, which fails only when `onUpdate` does (and dies on defects).
 * `graph` should have passed `validate`; nodes that can never become ready stay `pending`.
 */
export const executeGraph = <E, R, E2 = never, R2 = never, R3 = never>(
  graph: Graph,
  options: ExecuteOptions<E, R, E2, R2, R3>
): Effect.Effect<Graph, E2, R | R2 | R3> => Effect.map(runGraph(graph, { ...options, stopOn: (_): _ is never => false }), (run) => run.graph)

/** `executeGraph`, where some failures of `runNode` stop the run (`stopOn`) and are returned with the graph. */
export const runGraph = <E, S extends E, R, E2 = never, R2 = never, R3 = never>(
  graph: Graph,
  options: RunOptions<E, S, R, E2, R2, R3>
): Effect.Effect<GraphRun<S>, E2, R | R2 | R3> =>
  Effect.gen(function*() {
    const order = graph.nodes.map((node) => node.id)
    const dependants = dependantsIndex(graph.nodes)
    const retrySchedule: Schedule.Schedule<unknown, Outcome, R3> = options.retrySchedule ?? Schedule.forever
    const workers = Math.max(1, Math.floor(options.maxParallel))
    const initial = { ...graph, nodes: graph.nodes.map(requeued) }
    const firstReady = readyNodes(initial).map((node) => node.id)
    const state = yield* SynchronizedRef.make<RunState>({
      nodes: HashMap.fromIterable(initial.nodes.map((node) => [node.id, node])),
      outstanding: firstReady.length
    })
    // How many dependencies of each node are not complete yet, so that finding the nodes a
    // completion makes ready costs O(its dependants), not a scan. Bookkeeping private to this run,
    // changed only by `settle` inside a transition, which the state's lock serialises.
    const initialStatus = new Map(initial.nodes.map((node) => [node.id, node.status]))
    const waiting = new Map(initial.nodes.map((node) => {
      const incomplete = node.depends_on.filter((dep) => initialStatus.get(dep) !== "complete")
      return [node.id, new Set(incomplete).size]
    }))
    /** Counts `id` as complete; returns the dependants it was the last dependency of. */
    const release = (id: string): ReadonlyArray<string> => {
      const free: Array<string> = []
      for (const dependant of dependants.get(id) ?? []) {
        const left = (waiting.get(dependant) ?? 0) - 1
        waiting.set(dependant, left)
        if (left === 0) free.push(dependant)
      }
      return free
    }
    const queue = yield* Queue.unbounded<string>()
    const finished = yield* Deferred.make<void>()
    /** The failure that stops the run (the first one); once set, no node starts. */
    const stopped = yield* Ref.make(Option.none<S>())

    // Copying n nodes into an array at every change would make a run quadratic in the graph size,
    // so a snapshot builds its array on first read; the HashMap it reads from never changes.
    const snapshot = (nodes: Nodes): Graph => {
      let array: ReadonlyArray<Node> | undefined
      return {
        metadata: graph.metadata,
        get nodes() {
          array ??= order.map((id) => HashMap.unsafeGet(nodes, id))
          return array
        }
      }
    }

    const report = (nodes: Nodes): Effect.Effect<void, E2, R2> =>
      options.onUpdate === undefined ? Effect.void : options.onUpdate(snapshot(nodes))

    /** Applies `change` atomically and reports the new nodes, unless they did not change. */
    const transition = <A>(change: (state: RunState) => readonly [A, RunState]) =>
      Effect.uninterruptible(SynchronizedRef.modifyEffect(state, (current) => {
        const [value, next] = change(current)
        const result = [value, next] as const
        return next.nodes === current.nodes ? Effect.succeed(result) : Effect.as(report(next.nodes), result)
      }))

    /** Skips everything below `from`. */
    const skipBelow = (nodes: Nodes, from: string): Nodes =>
      Array.from(descendants(dependants, from)).reduce((next, id) => HashMap.modify(next, id, skipped), nodes)

    const start = (id: string) =>
      transition((current) => {
        const nodes = HashMap.modify(current.nodes, id, (node): Node => ({ ...node, status: "running" }))
        return [nodes, { ...current, nodes }]
      })

    /** Counts a retry, so that a resumed run has only the retries that are left. */
    const countRetry = (node: ActionNode) =>
      transition((current) => {
        const retried: ActionNode = { ...node, retries: node.retries + 1 }
        const nodes = HashMap.set(current.nodes, node.id, retried)
        return [[retried, nodes] as const, { ...current, nodes }]
      })

    /** The node's outcome (right), or the failure that stops the run (left). */
    const attempt = (node: ActionNode, nodes: Nodes): Effect.Effect<Either.Either<Outcome, S>, never, R> =>
      options.runNode(node, snapshot(nodes)).pipe(
        Effect.map((result) => Either.right(Either.right(result))),
        Effect.catchAll((error) => Effect.succeed(options.stopOn(error) ? Either.left(error) : Either.right(Either.left(describeError(error)))))
      )

    /** Tries again while the node has retries left and the schedule agrees; spaced by the schedule. */
    const retry = (first: ActionNode, failure: Outcome) =>
      Effect.gen(function*() {
        const driver = yield* Schedule.driver(retrySchedule)
        let node = first
        let tried: Either.Either<Outcome, S> = Either.right(failure)
        while (Either.isRight(tried) && Either.isLeft(tried.right) && node.retries < node.max_retries) {
          if (Option.isNone(yield* Effect.option(driver.next(tried.right)))) break
          const [retried, nodes] = yield* countRetry(node)
          node = retried
          tried = yield* attempt(node, nodes)
        }
        return tried
      })

    // Most nodes succeed at once; only a failure pays for setting up the retry schedule.
    const runAction = (node: ActionNode, nodes: Nodes) =>
      Effect.flatMap(
        attempt(node, nodes),
        (tried) => Either.isRight(tried) && Either.isLeft(tried.right) ? retry(node, tried.right) : Effect.succeed(tried)
      )

    const record = (nodes: Nodes, node: Node, outcome: Outcome): Nodes =>
      Either.match(outcome, {
        onLeft: (error) => skipBelow(HashMap.set(nodes, node.id, { ...node, status: "failed", error }), node.id),
        onRight: (result) => {
          const done = HashMap.set(nodes, node.id, { ...node, status: "complete", result })
          if (node.action !== "decision") return done
          const notTaken = result === true ? node.if_false : node.if_true
          return skipBelow(HashMap.modify(done, notTaken, skipped), notTaken)
        }
      })

    /** Records the outcome, skips what can no longer run and returns the nodes that became ready. */
    const settle = (id: string, outcome: Outcome) =>
      transition((current) => {
        const nodes = record(current.nodes, HashMap.unsafeGet(current.nodes, id), outcome)
        const released = Either.isRight(outcome) ? release(id) : []
        const ready = released.filter((dependant) => HashMap.unsafeGet(nodes, dependant).status === "pending")
        const outstanding = current.outstanding - 1 + ready.length
        return [{ ready, outstanding }, { nodes, outstanding }]
      })

    /** Leaves `id` pending (it did not run, or its run was stopped) and counts it as no longer outstanding. */
    const leavePending = (id: string) =>
      transition((current) => {
        const nodes = HashMap.modify(current.nodes, id, requeued)
        const outstanding = current.outstanding - 1
        return [outstanding, { nodes, outstanding }]
      })

    const whenSettled = (outstanding: number) => outstanding === 0 ? Deferred.succeed(finished, undefined) : Effect.void

    // Once a node has finished, its outcome is recorded even if an interruption arrives meanwhile.
    const execute = (id: string) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          if (Option.isSome(yield* Ref.get(stopped))) return yield* Effect.flatMap(leavePending(id), whenSettled)
          const nodes = yield* start(id)
          const node = HashMap.unsafeGet(nodes, id)
          const outcome = node.action === "decision" ?
            Either.right(decide(node, resultsIn(nodes))) :
            yield* restore(runAction(node, nodes))
          if (Either.isLeft(outcome)) {
            yield* Ref.update(stopped, Option.orElse(() => Option.some(outcome.left)))
            return yield* Effect.flatMap(leavePending(id), whenSettled)
          }
          const { outstanding, ready } = yield* settle(id, outcome.right)
          yield* Queue.offerAll(queue, ready)
          yield* whenSettled(outstanding)
        })
      )

    /** After an interruption or failure, nothing is running any more. */
    const requeueRunning = transition((current) => {
      const running = HashMap.some(current.nodes, (node) => node.status === "running")
      return [undefined, running ? { ...current, nodes: HashMap.map(current.nodes, requeued) } : current]
    })

    // `maxParallel` workers take ready nodes off the queue; newly ready nodes join it as soon as
    // their last dependency settles. The run is over when nothing is queued or running.
    const worker = Effect.forever(Effect.flatMap(Queue.take(queue), execute))
    if (firstReady.length > 0) {
      yield* Queue.offerAll(queue, firstReady)
      yield* Effect.raceFirst(
        Effect.forEach(Array.from({ length: workers }), () => worker, { concurrency: "unbounded", discard: true }),
        Deferred.await(finished)
      ).pipe(
        // Best effort: a run that resumes from an older snapshot requeues running nodes as well.
        Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : Effect.ignore(requeueRunning))
      )
    }
    return { graph: snapshot((yield* SynchronizedRef.get(state)).nodes), stopped: yield* Ref.get(stopped) }
  })
