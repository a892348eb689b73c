// Types for p2pcf-client/conference (ESM only): Sender and Receiver (the `p2p` library's API) and
// drivers. No DOM lib needed: EventTarget, CustomEvent and the WebRTC classes are the
// environment's own where it declares them (the DOM lib; @types/node for the first two), else
// minimal stand-ins or `any`.
import type { IceServer, MediaStreamLike, WebSocketClass } from './index.js'

type Globals = typeof globalThis
type InstanceOf<K extends string> = Globals extends { [P in K]: { prototype: infer T } } ? T : any

/** RTCPeerConnection: the DOM's where declared, else `any`. */
export type RTCPeerConnectionLike = InstanceOf<'RTCPeerConnection'>
/** RTCDataChannel: the DOM's where declared, else `any`. */
export type RTCDataChannelLike = InstanceOf<'RTCDataChannel'>
/** Blob: the DOM's (or @types/node's) where declared, else `any`. */
type BlobLike = InstanceOf<'Blob'>

/** A CustomEvent with `detail` typed: the environment's CustomEvent where declared. */
export type DetailEvent<T> = Globals extends { CustomEvent: { prototype: infer E } }
  ? Omit<E, 'detail'> & { readonly detail: T }
  : { readonly type: string, readonly detail: T }

type Listener = ((event: any) => void) | { handleEvent(event: any): void } | null
interface EventTargetLike {
  addEventListener(type: string, listener: Listener, options?: boolean | { capture?: boolean, once?: boolean, passive?: boolean, signal?: any }): void
  removeEventListener(type: string, listener: Listener, options?: boolean | { capture?: boolean }): void
  dispatchEvent(event: any): boolean
}
/** Sender and Receiver are EventTargets: the environment's EventTarget class where declared. */
declare const EventTargetBase: Globals extends { EventTarget: infer C } ? C : { new (): EventTargetLike, prototype: EventTargetLike }

/** Anything that delivers messages by namespace (an array of strings). */
export interface Driver {
  on(namespace: string[], handler: (message: any) => void): void
  off(namespace: string[], handler: (message: any) => void): void
  emit(namespace: string[], message: any): void
}

/** A WebRTC implementation: the browser's globals (the default), or e.g. `@roamhq/wrtc` in Node. */
export interface RtcImplementation {
  RTCPeerConnection: { new (config?: any): any }
  MediaStream?: { new (tracks?: any[]): any }
}

export interface SenderOptions {
  driver: Driver
  iceServers?: IceServer[]
  /** Whether receiver `id` with `credentials` may connect (may return a promise). Default: everyone. */
  verify?: (id: string, credentials: any) => boolean | Promise<boolean>
  /** Seconds a connection may take before it is disposed (default 30). */
  connectionTimeout?: number
  /** Messages kept per receiver while its channel is not open; the oldest dropped first (default 10). */
  queueSize?: number
  /** kbps caps per outgoing track, where the browser allows it. */
  audioBitrate?: number
  videoBitrate?: number
  /** Preferred codecs, by mime type (e.g. 'video/VP8'), where the browser allows it. */
  audioCodecs?: string[]
  videoCodecs?: string[]
  /** The WebRTC implementation in Node (e.g. @roamhq/wrtc). Default: the global one. */
  rtc?: RtcImplementation
}

export interface SenderStartOptions {
  stream?: MediaStreamLike | null
  room?: string
  state?: Record<string, any>
  /** Open a data channel (named by the receiver's id) to every receiver; always on without a stream. */
  dataChannel?: boolean
}

export declare class Sender extends EventTargetBase {
  constructor(options: SenderOptions)
  /** This sender's id once started. */
  readonly id: string | null
  readonly room: string | null
  readonly state: Record<string, any>
  start(options?: SenderStartOptions): void
  stop(): void
  /** To receiver `id`, or to all. */
  send(data: string | ArrayBuffer | ArrayBufferView | BlobLike, id?: string): void
  /** New state for receivers, merged into the current one unless `merge` is false. */
  sync(state: Record<string, any>, merge?: boolean): void
  addEventListener(type: 'connect', listener: (event: DetailEvent<{ id: string, peer: RTCPeerConnectionLike }>) => void): void
  addEventListener(type: 'dispose', listener: (event: DetailEvent<{ id: string, peer: RTCPeerConnectionLike, error?: Error }>) => void): void
  addEventListener(type: 'error', listener: (event: DetailEvent<{ id: string | null, error: Error }>) => void): void
  /** Ours: a message a receiver sent on its data channel. */
  addEventListener(type: 'message', listener: (event: DetailEvent<{ id: string, message: any }>) => void): void
  addEventListener(type: string, listener: Listener, options?: boolean | { capture?: boolean, once?: boolean, passive?: boolean, signal?: any }): void
}

export interface ReceiverOptions {
  driver: Driver
  iceServers?: IceServer[]
  connectionTimeout?: number
  /** Seconds between invokes while no sender is connected (default 30). */
  pingInterval?: number
  /** Invokes in a row without a sender before giving up (default 10). */
  pingAttempts?: number
  rtc?: RtcImplementation
}

type Detail<T> = { id: string, state: Record<string, any> } & T

export declare class Receiver extends EventTargetBase {
  constructor(options: ReceiverOptions)
  readonly id: string | null
  readonly room: string | null
  start(options?: { room?: string, credentials?: any }): void
  stop(): void
  addEventListener(type: 'stream', listener: (event: DetailEvent<Detail<{ stream: MediaStreamLike }>>) => void): void
  addEventListener(type: 'message', listener: (event: DetailEvent<Detail<{ message: any }>>) => void): void
  addEventListener(type: 'channel', listener: (event: DetailEvent<Detail<{ channel: RTCDataChannelLike }>>) => void): void
  addEventListener(type: 'sync', listener: (event: DetailEvent<Detail<{}>>) => void): void
  addEventListener(type: 'connect', listener: (event: DetailEvent<Detail<{ peer: RTCPeerConnectionLike }>>) => void): void
  addEventListener(type: 'dispose', listener: (event: DetailEvent<Detail<{ peer: RTCPeerConnectionLike, error?: Error }>>) => void): void
  addEventListener(type: 'error', listener: (event: DetailEvent<{ id: string | null, error: Error }>) => void): void
  addEventListener(type: string, listener: Listener, options?: boolean | { capture?: boolean, once?: boolean, passive?: boolean, signal?: any }): void
}

/** In-process delivery: for tests and prototypes. */
export declare class MemoryDriver implements Driver {
  on(namespace: string[], handler: (message: any) => void): void
  off(namespace: string[], handler: (message: any) => void): void
  emit(namespace: string[], message: any): void
}

/** Tabs of one origin, no server. */
export declare class BroadcastChannelDriver implements Driver {
  /** `BroadcastChannel`: the class to use (default: the global one). */
  constructor(options?: { name?: string, BroadcastChannel?: new (name: string) => any })
  on(namespace: string[], handler: (message: any) => void): void
  off(namespace: string[], handler: (message: any) => void): void
  emit(namespace: string[], message: any): void
  close(): void
}

/** Our worker's topic pub/sub at `${workerUrl}/pubsub/${namespace}`. */
export declare class WebSocketDriver implements Driver {
  constructor(options: { workerUrl: string, namespace?: string, WebSocket?: WebSocketClass, queueSize?: number })
  on(namespace: string[], handler: (message: any) => void): void
  off(namespace: string[], handler: (message: any) => void): void
  emit(namespace: string[], message: any): void
  close(): void
  onerror?: (error: Error) => void
}

export {}
