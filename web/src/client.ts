// kefu's GraphQL over HTTP (queries, mutations) and over WebSocket (subscriptions, the
// graphql-transport-ws protocol kefu speaks at /graphql/ws). Small on purpose: the desk runs
// on intranets, so everything it needs is in this bundle.
import type { Operation } from "./gen/graphql";

/** A refusal from kefu: its `extensions.code` (FORBIDDEN, NOT_FOUND, VALIDATION, ...). */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

interface GraphqlError {
  message: string;
  extensions?: { code?: string };
}

function refusal(errors: GraphqlError[]): ApiError {
  const first = errors[0];
  return new ApiError(first?.extensions?.code ?? "UNKNOWN", errors.map((e) => e.message).join("; "));
}

export class Client {
  private socket: Socket | null = null;

  constructor(
    readonly token: string,
    private readonly origin: string = location.origin,
  ) {}

  async run<R, V>(op: Operation<R, V>, variables: V): Promise<R> {
    const response = await fetch(`${this.origin}/graphql`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${this.token}` },
      body: JSON.stringify({ query: op.text, operationName: op.name, variables }),
    });
    const text = await response.text();
    let answer: { data?: R; errors?: GraphqlError[] };
    try {
      answer = JSON.parse(text);
    } catch {
      throw new ApiError(`HTTP_${response.status}`, `kefu answered ${response.status} with no JSON: ${text.slice(0, 200)}`);
    }
    if (answer.errors?.length) throw refusal(answer.errors);
    if (answer.data === undefined) throw new ApiError("UNKNOWN", `kefu answered ${response.status} with no data`);
    return answer.data;
  }

  /** Follows a subscription until the returned function is called. */
  subscribe<R, V>(op: Operation<R, V>, variables: V, onNext: (data: R) => void, onError: (e: ApiError) => void): () => void {
    if (!this.socket || this.socket.closed) this.socket = new Socket(this.origin, this.token);
    return this.socket.subscribe(op.text, variables, onNext as (d: unknown) => void, onError);
  }

  close(): void {
    this.socket?.close();
  }
}

interface Sink {
  payload: unknown;
  onNext: (data: unknown) => void;
  onError: (e: ApiError) => void;
}

/** One graphql-transport-ws connection; subscriptions are sent once it is acknowledged
 * and sent again on a new connection when it drops (the server keeps no state for us). */
class Socket {
  private ws!: WebSocket;
  private acked = false;
  private nextId = 1;
  private readonly sinks = new Map<string, Sink>();
  closed = false;
  private retry = 250;

  constructor(
    private readonly origin: string,
    private readonly token: string,
  ) {
    this.connect();
  }

  private connect(): void {
    const url = this.origin.replace(/^http/, "ws") + "/graphql/ws";
    this.ws = new WebSocket(url, "graphql-transport-ws");
    this.acked = false;
    this.ws.onopen = () => {
      // Browsers cannot set headers on a WebSocket; kefu takes the token here.
      this.ws.send(JSON.stringify({ type: "connection_init", payload: { Authorization: `Bearer ${this.token}` } }));
    };
    this.ws.onmessage = (m) => this.receive(JSON.parse(String(m.data)));
    this.ws.onclose = () => {
      if (this.closed) return;
      // Reconnect with backoff; the subscriptions resume on the new connection.
      setTimeout(() => this.connect(), this.retry);
      this.retry = Math.min(this.retry * 2, 5000);
    };
  }

  private receive(message: { type: string; id?: string; payload?: unknown }): void {
    switch (message.type) {
      case "connection_ack":
        this.acked = true;
        this.retry = 250;
        for (const [id, sink] of this.sinks) this.start(id, sink.payload);
        break;
      case "ping":
        this.ws.send(JSON.stringify({ type: "pong" }));
        break;
      case "next": {
        const sink = this.sinks.get(message.id ?? "");
        const payload = message.payload as { data?: unknown; errors?: GraphqlError[] };
        if (!sink) break;
        if (payload.errors?.length) sink.onError(refusal(payload.errors));
        else sink.onNext(payload.data);
        break;
      }
      case "error": {
        const sink = this.sinks.get(message.id ?? "");
        this.sinks.delete(message.id ?? "");
        sink?.onError(refusal(message.payload as GraphqlError[]));
        break;
      }
      case "complete":
        this.sinks.delete(message.id ?? "");
        break;
    }
  }

  private start(id: string, payload: unknown): void {
    this.ws.send(JSON.stringify({ id, type: "subscribe", payload }));
  }

  subscribe(query: string, variables: unknown, onNext: (d: unknown) => void, onError: (e: ApiError) => void): () => void {
    const id = String(this.nextId++);
    const sink = { payload: { query, variables }, onNext, onError };
    this.sinks.set(id, sink);
    if (this.acked) this.start(id, sink.payload);
    return () => {
      if (this.sinks.delete(id) && this.acked) this.ws.send(JSON.stringify({ id, type: "complete" }));
    };
  }

  close(): void {
    this.closed = true;
    this.ws.close();
  }
}
