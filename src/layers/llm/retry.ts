/**
 * When to ask a server again. `HttpClient.retryTransient` decides *what* is worth another try
 * (a refused connection, 408, 429, 500, 502, 503, 504); this schedule decides *when*: the wait
 * the server names in `Retry-After` (seconds or an HTTP date), else an exponential back-off, each
 * wait capped by `llm.retry_max_seconds`, at most `llm.max_retries` times.
 */
import type { HttpClientError } from "@effect/platform/HttpClientError"
import { Clock, Duration, Effect, Predicate, Schedule } from "effect"

export interface RetryPolicy {
  readonly maxRetries: number
  readonly maxDelaySeconds: number
}

/** `Retry-After` in seconds, from delta-seconds or an HTTP date; `null` when absent or unreadable. */
export const parseRetryAfter = (header: string | undefined, nowMs: number): number | null => {
  if (header === undefined) return null
  const text = header.trim()
  if (/^\d+$/.test(text)) return Number(text)
  const date = Date.parse(text)
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - nowMs) / 1000))
}

/** The `Retry-After` of an HTTP error answer, in seconds. */
export const retryAfterOf = (error: unknown, nowMs: number): number | null =>
  Predicate.isTagged(error, "ResponseError") && Predicate.hasProperty(error, "response") &&
    Predicate.hasProperty(error.response, "headers") && Predicate.isRecord(error.response.headers)
    ? parseRetryAfter(
      typeof error.response.headers["retry-after"] === "string" ? error.response.headers["retry-after"] : undefined,
      nowMs
    )
    : null

const firstDelay = Duration.millis(250)

/**
 * The schedule for `HttpClient.retryTransient`. `stop` ends the retries early, when another
 * endpoint can take the call at once (failover instead of waiting).
 */
export const retrySchedule = <E extends HttpClientError | object>(
  policy: RetryPolicy,
  stop: (error: E) => Effect.Effect<boolean>
) => {
  const cap = Duration.seconds(policy.maxDelaySeconds)
  return Schedule.exponential(firstDelay).pipe(
    Schedule.jittered,
    Schedule.intersect(Schedule.identity<E>()),
    Schedule.modifyDelayEffect(([, error], delay) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const asked = retryAfterOf(error, now)
        return Duration.min(asked === null ? delay : Duration.seconds(asked), cap)
      })
    ),
    Schedule.checkEffect((error: E) => Effect.map(stop(error), (stopped) => !stopped)),
    Schedule.intersect(Schedule.recurs(policy.maxRetries))
  )
}
