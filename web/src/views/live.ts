// Reads that follow the log: a subscription says something happened (and at which log
// position), and the view reads again with `atLeast` that position, so it shows the event
// that woke it and never an older read model.
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, type Client } from "../client";
import type { Operation } from "../gen/graphql";

export type Loaded<R> = { data: R | null; error: string; reload: (atLeast?: string | null) => void };

/** Runs `op` now and again on every `reload`; answers that arrive out of order are
 * dropped, so a slow old read never overwrites a newer one. */
export function useQuery<R, V extends object>(
  client: Client,
  op: Operation<R, V>,
  variables: V | null,
  deps: unknown[],
): Loaded<R> {
  const [data, setData] = useState<R | null>(null);
  const [error, setError] = useState("");
  const sequence = useRef(0);
  const current = useRef(variables);
  current.current = variables;

  const reload = (atLeast?: string | null) => {
    const vars = current.current;
    if (!vars) return;
    const mine = ++sequence.current;
    client
      // Only operations that declare `$atLeast` are reloaded with a position.
      .run(op, atLeast ? ({ ...vars, atLeast } as V) : vars)
      .then((r) => {
        if (mine === sequence.current) {
          setData(r);
          setError("");
        }
      })
      .catch((e: unknown) => {
        if (mine === sequence.current) setError(describe(e));
      });
  };

  useEffect(() => {
    setData(null);
    reload();
  }, deps);

  return { data, error, reload };
}

/** Follows a subscription while the view shows; `onEvent` gets each payload. */
export function useSubscription<R, V>(
  client: Client,
  op: Operation<R, V>,
  variables: V | null,
  onEvent: (data: R) => void,
  deps: unknown[],
): string {
  const [error, setError] = useState("");
  const handler = useRef(onEvent);
  handler.current = onEvent;
  useEffect(() => {
    if (!variables) return;
    return client.subscribe(op, variables, (d) => handler.current(d), (e) => setError(describe(e)));
  }, deps);
  return error;
}

/** Reads again every `ms` while the view shows: for figures that move without an event of
 * their own (waits grow with the clock). */
export function useEvery(ms: number, tick: () => void, deps: unknown[]): void {
  const handler = useRef(tick);
  handler.current = tick;
  useEffect(() => {
    const t = setInterval(() => handler.current(), ms);
    return () => clearInterval(t);
  }, deps);
}

/** Keeps a transcript scrolled to its newest turn as turns arrive. */
export function useScrollToEnd<T extends HTMLElement>(count: number) {
  const ref = useRef<T>(null);
  useEffect(() => {
    ref.current?.scrollTo({ top: ref.current.scrollHeight });
  }, [count]);
  return ref;
}

export function describe(e: unknown): string {
  if (e instanceof ApiError) return `${e.code}: ${e.message}`;
  return String(e);
}

export function time(at: string, lang: "zh" | "en"): string {
  return new Date(at).toLocaleTimeString(lang === "zh" ? "zh-CN" : "en-GB", { hour: "2-digit", minute: "2-digit" });
}
