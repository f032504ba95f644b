/**
 * Which server answers a call. Each endpoint is probed once (`/props`, `/v1/models`,
 * `/api/version`) for its kind, models, context size and slots; each call leases a slot on the
 * healthy endpoint serving its model with the most free slots, preferring the endpoint and
 * slot its task used before (where the server's prompt cache has the task's prefix). An
 * endpoint that refused a connection or answered 503 is left out for a while, so calls fail
 * over to the others. All of this lives in the layer's scope, never in module state.
 */
import { type HttpClient, HttpClientResponse } from "@effect/platform"
import { Clock, Deferred, Duration, Effect, Either, Option, Ref, type Schema, type Scope } from "effect"
import { LlmHttpError, LlmUnreachable } from "./errors.ts"
import { ModelList, OllamaVersion, type ServerKind, ServerProps } from "./protocol.ts"

export interface EndpointInfo {
  /** `http://host:port`, without `/v1`. */
  readonly url: string
  readonly kind: ServerKind
  /** The server's version, where it says (Ollama). */
  readonly version: string | null
  readonly models: ReadonlyArray<string>
  /** Tokens of context per call (llama-server: per slot), `null` when the server does not say. */
  readonly contextTokens: number | null
  /** How many calls it runs at once (llama-server's `total_slots`); `null` when the server does not say. */
  readonly slots: number | null
}

/** An endpoint chosen for one call, and the slot pinned on it (`null`: the server chooses). */
export interface Lease {
  readonly id: number
  readonly endpoint: EndpointInfo
  readonly slot: number | null
  /** The endpoints that could take the call: for failover. */
  readonly candidates: ReadonlyArray<string>
}

/** Why a probe found no usable server: unreachable, or an HTTP answer that is an error. */
export type ProbeFailure = LlmUnreachable | LlmHttpError

interface EndpointState {
  /** What the last successful probe found. */
  readonly info: EndpointInfo | null
  /** Until when (ms) the endpoint is left out after a failure, and why. */
  readonly downUntil: number
  readonly down: string | null
  /** The leases our calls hold on it now. */
  readonly leases: ReadonlyArray<{ readonly id: number; readonly slot: number | null }>
}

const fresh: EndpointState = { info: null, downUntil: 0, down: null, leases: [] }

/** How long an endpoint that failed is left out when the server named no `Retry-After`. */
const COOLDOWN_MS = 5_000
const PROBE_TIMEOUT = Duration.seconds(5)
/** Tasks remembered for slot affinity; older ones are forgotten first. */
const AFFINITY_MEMORY = 256

/** luallm's rule, for endpoints that list models: the exact name, else one containing it. */
export const servesModel = (models: ReadonlyArray<string>, model: string): boolean =>
  models.includes(model) || models.some((name) => name.toLowerCase().includes(model.toLowerCase()))

type Fetched<A> = { readonly _tag: "Found"; readonly value: A } | { readonly _tag: "Absent" }

export interface RouterOptions<E> {
  /** Authorised, unretried: probes are quick and say what they saw. */
  readonly http: HttpClient.HttpClient
  /** The endpoints that may serve `model`, in the configured order. */
  readonly candidates: (model: string) => Effect.Effect<ReadonlyArray<string>, E>
  /** `llm.context_tokens` when set: the context of servers that do not tell. */
  readonly contextTokens: number | null
  /** What a human runs to start `model` (for unreachable endpoints). */
  readonly startCommand: (model: string | undefined) => string
}

export const makeRouter = <E>(options: RouterOptions<E>) =>
  Effect.gen(function*() {
    const endpoints = yield* Ref.make<ReadonlyMap<string, EndpointState>>(new Map())
    const affinity = yield* Ref.make<ReadonlyMap<string, { readonly url: string; readonly slot: number | null }>>(new Map())
    const nextLease = yield* Ref.make(0)
    /** Completed (and replaced) whenever a lease is given back: what a waiting call awaits. */
    const released = yield* Ref.make(yield* Deferred.make<void>())
    const { http } = options

    const update = (url: string, change: (state: EndpointState) => EndpointState) =>
      Ref.update(endpoints, (all) => new Map(all).set(url, change(all.get(url) ?? fresh)))

    /** A JSON GET: found, absent (404 or not that shape), or a failure that says the server is not usable. */
    const fetchJson = <A, I>(url: string, schema: Schema.Schema<A, I>): Effect.Effect<Fetched<A>, ProbeFailure> =>
      http.get(url).pipe(
        Effect.flatMap((response): Effect.Effect<Fetched<A>, ProbeFailure> => {
          if (response.status === 200) {
            return HttpClientResponse.schemaBodyJson(schema)(response).pipe(
              Effect.map((value): Fetched<A> => ({ _tag: "Found", value })),
              Effect.orElseSucceed((): Fetched<A> => ({ _tag: "Absent" }))
            )
          }
          if (response.status === 401 || response.status === 403 || response.status === 503 || response.status >= 500) {
            return Effect.flatMap(Effect.orElseSucceed(response.text, () => ""), (body) =>
              new LlmHttpError({ url, status: response.status, body: body.slice(0, 2048), attempts: 1, retryAfter: null }))
          }
          return Effect.succeed({ _tag: "Absent" })
        }),
        Effect.timeoutFail({
          duration: PROBE_TIMEOUT,
          onTimeout: () => new LlmUnreachable({ url, reason: "no answer within 5s", attempts: 1, startCommand: options.startCommand(undefined) })
        }),
        Effect.catchTags({
          RequestError: (error) => new LlmUnreachable({ url, reason: causeOf(error), attempts: 1, startCommand: options.startCommand(undefined) }),
          ResponseError: (error) => new LlmUnreachable({ url, reason: causeOf(error), attempts: 1, startCommand: options.startCommand(undefined) })
        }),
        Effect.scoped
      )

    const found = <A>(fetched: Fetched<A>): A | undefined => (fetched._tag === "Found" ? fetched.value : undefined)

    /** What kind of server answers at `url`, what it serves and how much. */
    const probe = (url: string): Effect.Effect<EndpointInfo, ProbeFailure> =>
      Effect.gen(function*() {
        const props = found(yield* fetchJson(`${url}/props`, ServerProps))
        const list = found(yield* fetchJson(`${url}/v1/models`, ModelList))
        const models = list?.data.map((model) => model.id) ?? []
        const base = { url, version: null, models, contextTokens: options.contextTokens, slots: null }
        if (props !== undefined && (props.total_slots !== undefined || props.default_generation_settings !== undefined)) {
          const context = props.default_generation_settings?.n_ctx ?? props.n_ctx
          return { ...base, kind: "llama-server", contextTokens: context ?? base.contextTokens, slots: Math.max(1, props.total_slots ?? 1) }
        }
        const owner = list?.data[0]?.owned_by
        if (owner === "vllm") return { ...base, kind: "vllm", contextTokens: list?.data[0]?.max_model_len ?? base.contextTokens }
        if (owner === "organization_owner") return { ...base, kind: "lmstudio" }
        if (owner === "openai" || owner === "system" || owner === "openai-internal") return { ...base, kind: "openai" }
        const ollama = found(yield* fetchJson(`${url}/api/version`, OllamaVersion))
        return ollama !== undefined ? { ...base, kind: "ollama", version: ollama.version } : { ...base, kind: "openai-compatible" }
      })

    /** The endpoint's info, probing it the first time (and again after it failed). */
    const info = (url: string): Effect.Effect<EndpointInfo, ProbeFailure> =>
      Effect.gen(function*() {
        const known = (yield* Ref.get(endpoints)).get(url)?.info
        if (known !== undefined && known !== null) return known
        const probed = yield* probe(url).pipe(
          // Unreachable or failing, it is left out for a while; a refused key is not the server's state.
          Effect.tapError((failure) =>
            failure._tag === "LlmUnreachable" || failure.status >= 500 ? markDown(url, null, failure.message) : Effect.void
          )
        )
        yield* update(url, (state) => ({ ...state, info: probed }))
        return probed
      })

    /** Leaves `url` out until `seconds` (or the default cooldown) have passed. */
    const markDown = (url: string, seconds: number | null, reason: string) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        update(url, (state) => ({
          ...state,
          // Probed again when it comes back: it may have restarted with another model or context.
          info: null,
          downUntil: now + (seconds === null ? COOLDOWN_MS : seconds * 1000),
          down: reason
        })))

    const isUp = (state: EndpointState | undefined, now: number) => state === undefined || state.downUntil <= now

    /**
     * The endpoints that serve `model` and are up, in order. With several, those that list it
     * (and those not probed yet); when none lists it, any (a one-model server answers any name).
     */
    const usable = (urls: ReadonlyArray<string>, model: string, all: ReadonlyMap<string, EndpointState>, now: number) => {
      const listing = urls.filter((url) => {
        const models = all.get(url)?.info?.models
        return models !== undefined && servesModel(models, model)
      })
      const candidates = urls.length < 2 || listing.length === 0
        ? urls
        : urls.filter((url) => listing.includes(url) || (all.get(url)?.info ?? null) === null)
      const up = candidates.filter((url) => isUp(all.get(url), now))
      return up.length === 0 ? candidates : up
    }

    const fallbackInfo = (url: string): EndpointInfo => ({
      url,
      kind: "openai-compatible",
      version: null,
      models: [],
      contextTokens: options.contextTokens,
      slots: null
    })

    /**
     * Chooses where a call runs and holds the slot until the scope closes: the task's previous
     * endpoint and slot while free, else the endpoint with the most free slots (then the fewest
     * calls, then the configured order), and on llama-server with several slots a free slot.
     * When every endpoint that says how many slots it has is full, the call waits here for one
     * to free up rather than in the server's queue, where its silence would count against
     * `limits.llm_timeout_seconds`. Servers that do not say are never waited for.
     */
    const lease = (model: string, key: string | undefined): Effect.Effect<Lease, E, Scope.Scope> =>
      Effect.acquireRelease(
        Effect.gen(function*() {
          const urls = yield* options.candidates(model)
          const id = yield* Ref.getAndUpdate(nextLease, (n) => n + 1)
          for (;;) {
            // Probe what has not been probed; one that cannot be reached is tried with defaults,
            // so the call fails with the real error if it is the only choice.
            const infos = new Map<string, EndpointInfo>()
            const before = yield* Clock.currentTimeMillis
            for (const url of urls) {
              const resting = !isUp((yield* Ref.get(endpoints)).get(url), before)
              infos.set(url, resting ? fallbackInfo(url) : Either.getOrElse(yield* Effect.either(info(url)), () => fallbackInfo(url)))
            }
            const now = yield* Clock.currentTimeMillis
            const pins = yield* Ref.get(affinity)
            const freed = yield* Ref.get(released)
            const chosen = yield* Ref.modify(endpoints, (all): readonly [Lease | undefined, ReadonlyMap<string, EndpointState>] => {
              const picked = pick(urls, model, key, id, infos, pins, all, now)
              if (picked === undefined) return [undefined, all]
              const state = all.get(picked.endpoint.url) ?? fresh
              return [picked, new Map(all).set(picked.endpoint.url, { ...state, leases: [...state.leases, { id, slot: picked.slot }] })]
            })
            if (chosen === undefined) {
              yield* Deferred.await(freed)
              continue
            }
            if (key !== undefined) {
              yield* Ref.update(affinity, (all) => {
                const next = new Map(all)
                next.delete(key)
                next.set(key, { url: chosen.endpoint.url, slot: chosen.slot })
                const oldest = next.keys().next().value
                if (next.size > AFFINITY_MEMORY && oldest !== undefined) next.delete(oldest)
                return next
              })
            }
            return chosen
          }
        }),
        release
      )

    /** The lease for a call, or `undefined` when every endpoint with known slots is full. */
    const pick = (
      urls: ReadonlyArray<string>,
      model: string,
      key: string | undefined,
      id: number,
      infos: ReadonlyMap<string, EndpointInfo>,
      pins: ReadonlyMap<string, { readonly url: string; readonly slot: number | null }>,
      all: ReadonlyMap<string, EndpointState>,
      now: number
    ): Lease | undefined => {
      const leasesOn = (url: string) => all.get(url)?.leases ?? []
      const slotsOf = (url: string) => infos.get(url)?.slots ?? null
      const free = (url: string) => {
        const slots = slotsOf(url)
        return slots === null ? Number.POSITIVE_INFINITY : slots - leasesOn(url).length
      }
      // Slots other tasks are pinned to hold their prompts in cache: a new task takes another one first.
      const pinnedElsewhere = new Set(
        [...pins].flatMap(([other, p]) => (other !== key && p.slot !== null ? [`${p.url} ${p.slot}`] : []))
      )
      const freeSlot = (url: string, wanted: number | null): number | null => {
        const slots = slotsOf(url) ?? 0
        if (slots < 2) return null
        const taken = new Set(leasesOn(url).map((l) => l.slot))
        if (wanted !== null && !taken.has(wanted)) return wanted
        const open = Array.from({ length: slots }, (_, slot) => slot).filter((slot) => !taken.has(slot))
        return open.find((slot) => !pinnedElsewhere.has(`${url} ${slot}`)) ?? open[0] ?? null
      }
      const options = usable(urls, model, all, now).filter((url) => free(url) > 0)
      if (options.length === 0) return undefined
      const pin = key === undefined ? undefined : pins.get(key)
      const pinned = pin !== undefined && options.includes(pin.url) && (pin.slot === null || freeSlot(pin.url, pin.slot) === pin.slot)
        ? pin.url
        : undefined
      const url = pinned ?? options.reduce((best, next) =>
        free(next) > free(best) || (free(next) === free(best) && leasesOn(next).length < leasesOn(best).length) ? next : best
      )
      const slot = freeSlot(url, pinned !== undefined ? pin?.slot ?? null : null)
      return { id, endpoint: infos.get(url) ?? fallbackInfo(url), slot, candidates: urls }
    }

    /** Gives the lease's slot back (a second release of the same lease does nothing) and wakes the calls waiting for one. */
    const release = (held: Lease) =>
      Effect.gen(function*() {
        yield* update(held.endpoint.url, (state) => ({ ...state, leases: state.leases.filter((l) => l.id !== held.id) }))
        const next = yield* Deferred.make<void>()
        yield* Deferred.succeed(yield* Ref.getAndSet(released, next), undefined)
      })

    /** Whether another endpoint that could take the lease's call is up now. */
    const hasAlternative = (held: Lease) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.map(Ref.get(endpoints), (all) =>
          held.candidates.some((url) => url !== held.endpoint.url && isUp(all.get(url), now))))

    /** The smallest context among the endpoints that may serve `model` (a call may land on any). */
    const contextFor = (model: string) =>
      Effect.gen(function*() {
        const urls = yield* options.candidates(model)
        const known: Array<EndpointInfo> = []
        for (const url of urls) {
          const probed = yield* Effect.option(info(url))
          if (Option.isSome(probed)) known.push(probed.value)
        }
        const contexts = known.flatMap((endpoint) => (endpoint.contextTokens === null ? [] : [endpoint.contextTokens]))
        return { context: contexts.length === 0 ? options.contextTokens : Math.min(...contexts), endpoints: known }
      })

    /** A fresh probe of each endpoint, for `doctor`. */
    const report = (urls: ReadonlyArray<string>) =>
      Effect.forEach(urls, (url) => Effect.either(probe(url)), { concurrency: "unbounded" })

    return { info, lease, release, markDown, hasAlternative, contextFor, report }
  })


/** The underlying words for an HTTP failure (`connect ECONNREFUSED 127.0.0.1:8080`, `aborted`). */
export const causeOf = (error: { readonly _tag: string; readonly reason?: string; readonly cause?: unknown; readonly message: string }): string => {
  if (error._tag === "RequestError" && error.reason === "InvalidUrl") return "not a valid URL (llm.base_url must look like http://127.0.0.1:8080)"
  const cause: unknown = error.cause
  return cause instanceof Error ? cause.message : error.message
}
