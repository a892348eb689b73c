// Types for p2pcf-client/conference: Sender and Receiver (the `p2p` library's API) and drivers.

/** Anything that delivers messages by namespace (an array of strings). */
export interface Driver {
  on(namespace: string[], handler: (message: any) => void): void
  off(namespace: string[], handler: (message: any) => void): void
  emit(namespace: string[], message: any): void
}

export interface RtcImplementation {
  RTCPeerConnection: { new (config?: RTCConfiguration): RTCPeerConnection }
  MediaStream?: { new (tracks?: MediaStreamTrack[]): MediaStream }
}

export interface SenderOptions {
  driver: Driver
  iceServers?: RTCIceServer[]
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
  stream?: MediaStream
  room?: string
  state?: Record<string, any>
  /** Open a data channel (named by the receiver's id) to every receiver; always on without a stream. */
  dataChannel?: boolean
}

export declare class Sender extends EventTarget {
  constructor(options: SenderOptions)
  /** This sender's id once started. */
  readonly id: string | null
  readonly state: Record<string, any>
  start(options?: SenderStartOptions): void
  stop(): void
  /** To receiver `id`, or to all. */
  send(data: string | ArrayBuffer | ArrayBufferView | Blob, id?: string): void
  /** New state for receivers, merged into the current one unless `merge` is false. */
  sync(state: Record<string, any>, merge?: boolean): void
  addEventListener(type: 'connect', listener: (event: CustomEvent<{ id: string, peer: RTCPeerConnection }>) => void): void
  addEventListener(type: 'dispose', listener: (event: CustomEvent<{ id: string, peer: RTCPeerConnection, error?: Error }>) => void): void
  addEventListener(type: 'error', listener: (event: CustomEvent<{ id: string | null, error: Error }>) => void): void
  /** Ours: a message a receiver sent on its data channel. */
  addEventListener(type: 'message', listener: (event: CustomEvent<{ id: string, message: any }>) => void): void
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void
}

export interface ReceiverOptions {
  driver: Driver
  iceServers?: RTCIceServer[]
  connectionTimeout?: number
  /** Seconds between invokes while no sender is connected (default 30). */
  pingInterval?: number
  /** Invokes in a row without a sender before giving up (default 10). */
  pingAttempts?: number
  rtc?: RtcImplementation
}

type Detail<T> = { id: string, state: Record<string, any> } & T

export declare class Receiver extends EventTarget {
  constructor(options: ReceiverOptions)
  readonly id: string | null
  start(options?: { room?: string, credentials?: any }): void
  stop(): void
  addEventListener(type: 'stream', listener: (event: CustomEvent<Detail<{ stream: MediaStream }>>) => void): void
  addEventListener(type: 'message', listener: (event: CustomEvent<Detail<{ message: any }>>) => void): void
  addEventListener(type: 'channel', listener: (event: CustomEvent<Detail<{ channel: RTCDataChannel }>>) => void): void
  addEventListener(type: 'sync', listener: (event: CustomEvent<Detail<{}>>) => void): void
  addEventListener(type: 'connect', listener: (event: CustomEvent<Detail<{ peer: RTCPeerConnection }>>) => void): void
  addEventListener(type: 'dispose', listener: (event: CustomEvent<Detail<{ peer: RTCPeerConnection, error?: Error }>>) => void): void
  addEventListener(type: 'error', listener: (event: CustomEvent<{ id: string | null, error: Error }>) => void): void
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void
}

/** In-process delivery: for tests and prototypes. */
export declare class MemoryDriver implements Driver {
  on(namespace: string[], handler: (message: any) => void): void
  off(namespace: string[], handler: (message: any) => void): void
  emit(namespace: string[], message: any): void
}

/** Tabs of one origin, no server. */
export declare class BroadcastChannelDriver implements Driver {
  constructor(options?: { name?: string })
  on(namespace: string[], handler: (message: any) => void): void
  off(namespace: string[], handler: (message: any) => void): void
  emit(namespace: string[], message: any): void
  close(): void
}

/** Our worker's topic pub/sub at `${workerUrl}/pubsub/${namespace}`. */
export declare class WebSocketDriver implements Driver {
  constructor(options: { workerUrl: string, namespace?: string, WebSocket?: { new (url: string): WebSocket }, queueSize?: number })
  on(namespace: string[], handler: (message: any) => void): void
  off(namespace: string[], handler: (message: any) => void): void
  emit(namespace: string[], message: any): void
  close(): void
  onerror?: (error: Error) => void
}
