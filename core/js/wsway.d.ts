// Typings of wsway.js, generic over an app's contract: the declaration
// file wsway writes from its event routes (`Events::typescript` in Rust).
//
//   import { connect } from "wsway";
//   import type { Contract } from "./chat-contract";
//   const socket = connect<Contract>("/chat/lobby", { token });
//   const ack = await socket.emit("chat:send", { text: "hi" }); // checked; ack is the reply type
//   socket.on("chat:message", (m) => m.text);                   // m is the push's data type

/** The event layer's subprotocol. */
export declare const PROTOCOL: "wsway.v1";

/** What a contract is made of: calls (data, reply, error codes) and pushes. */
export interface ContractShape {
  calls: { [event: string]: { data: unknown; reply: unknown; errors: string } };
  pushes: { [event: string]: unknown };
}

/** No contract: any event, any data. */
export interface Untyped {
  calls: { [event: string]: { data: any; reply: any; errors: string } };
  pushes: { [event: string]: any };
}

/** Codes wsway (server and client) may reject any call with. */
export type BuiltinErrorCode =
  | "malformed" | "unknown_event" | "bad_data" | "unsupported" | "internal" | "bad_target"
  | "missing_target" | "forbidden" | "timeout" | "disconnected" | "closed" | "refresh_refused";

/** A failed call: `code` is the server's error code, or `timeout`,
 *  `disconnected` or `closed` from the client itself. */
export declare class EventError<Code extends string = string> extends Error {
  constructor(code: Code, message: string, data?: unknown);
  readonly name: "EventError";
  readonly code: Code | BuiltinErrorCode;
  readonly data: unknown;
}

/** A token, or where to get a fresh one (on connect, on every reconnect
 *  and whenever the server asks before the current one expires). */
export type TokenSource = string | (() => string | Promise<string>);

export interface Options {
  token?: TokenSource;
  /** ms an `emit` waits for its reply (default 10000). */
  timeout?: number;
  /** Reconnect after a drop (default true); never after 4000-4999 or 1008. */
  reconnect?: boolean;
  minDelay?: number;
  maxDelay?: number;
  stableAfter?: number;
}

export interface EmitOptions {
  timeout?: number;
  /** A CSS selector the reply (an HTML fragment) is morphed into. */
  target?: string;
}

/** The events every socket fires besides the app's pushes. */
export interface Lifecycle {
  connect: undefined;
  disconnect: { code: number; reason: string; retryIn?: number };
  error: EventError | Error;
  "wsway:gap": { topic: string };
  "wsway:refresh": { expires_in_ms: number };
}

type CallName<C extends ContractShape> = keyof C["calls"] & string;
type PushName<C extends ContractShape> = keyof C["pushes"] & string;
/** A call whose data is `null` (a handler taking `()`) may leave it out. */
type DataArgs<D> = [D] extends [null] ? [data?: null, options?: EmitOptions] : [data: D, options?: EmitOptions];
type SendArgs<D> = [D] extends [null] ? [data?: null] : [data: D];

/** A connection that reconnects by itself; see wsway.js. */
export declare class Socket<C extends ContractShape = Untyped> {
  constructor(url: string, options?: Options);
  /** Listens to a push (or a lifecycle event); returns what removes it. */
  on<E extends PushName<C>>(event: E, fn: (data: C["pushes"][E]) => unknown): () => void;
  on<E extends keyof Lifecycle>(event: E, fn: (data: Lifecycle[E]) => unknown): () => void;
  /** Calls `event`: resolves with its reply, rejects with an `EventError`
   *  (one of the codes the contract names, or wsway's own). */
  emit<E extends CallName<C>>(event: E, ...args: DataArgs<C["calls"][E]["data"]>): Promise<C["calls"][E]["reply"]>;
  /** Calls `event` without asking for a reply. */
  send<E extends CallName<C>>(event: E, ...args: SendArgs<C["calls"][E]["data"]>): void;
  join(topic: string, options?: EmitOptions): Promise<{ topic: string; joined: boolean }>;
  leave(topic: string, options?: EmitOptions): Promise<{ topic: string; left: boolean }>;
  /** `"epoch:offset"` of the last push seen on `topic`. */
  position(topic: string): string | undefined;
  close(code?: number, reason?: string): void;
}

/** Opens a socket. */
export declare function connect<C extends ContractShape = Untyped>(url: string, options?: Options): Socket<C>;

/** Morphs `html` into `element`, keeping focus, input values and scroll. */
export declare function morph(element: Element, html: string): void;
