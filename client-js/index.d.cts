// Types for p2pcf-client: the P2PCF API (p2pcf 1.3.14 compatible) plus our additions.
//
// This file describes the CommonJS entry (dist/p2pcf.cjs), whose `module.exports` is the P2PCF
// constructor itself, as with p2pcf: `const P2PCF = require('p2pcf-client')` (TypeScript:
// `import P2PCF = require('p2pcf-client')`); `.default`, `.P2PCF` and `.Peer` hang off it.
// index.d.ts re-exports the same declarations for ESM (`import P2PCF from 'p2pcf-client'`).
//
// No DOM lib needed: the WebRTC classes (MediaStream, RTCPeerConnection, ...) are the
// environment's own where it declares them (the DOM lib, in a browser project), else `any`
// (a Node project: @roamhq/wrtc has no types).

type Globals = typeof globalThis
/** The instance type of global class `K` where the environment declares one, else `any`. */
type InstanceOf<K extends string> = Globals extends { [P in K]: { prototype: infer T } } ? T : any

declare class P2PCF {
  constructor(clientId: string, roomId: string, options?: P2PCF.P2PCFOptions)
  readonly clientId: string
  readonly roomId: string
  readonly workerUrl: string
  readonly sessionId: string
  readonly contextId: string
  readonly transport: 'auto' | 'websocket' | 'polling'
  /** Peers by session id, connected or connecting. */
  readonly peers: Map<string, P2PCF.Peer>
  /** Sessions with an open connection: a fresh array on every read (p2pcf mutates one in place). */
  readonly connectedSessions: string[]
  readonly destroyed: boolean
  /** Ours: how this client signals, once known ('auto' resolves to one of them). */
  readonly signalling: 'websocket' | 'polling' | null
  /** Probe the network and join the room. */
  start(): Promise<void>
  /**
   * Send to one peer; resolves once queued (large messages are chunked and wait for the channel
   * to drain), rejects if the connection closed first.
   */
  send(peer: P2PCF.Peer, data: ArrayBuffer | ArrayBufferView | string): Promise<void>
  broadcast(data: ArrayBuffer | ArrayBufferView | string): Promise<void[]>
  /** Leave: stops every timer, closes every connection, tells the worker. Safe at any time. */
  destroy(): void
  on(event: 'peerconnect' | 'peerclose', handler: (peer: P2PCF.Peer) => void): this
  /** Ours: a peer that never connected (the original emits nothing useful for these). */
  on(event: 'peerfailed', handler: (peer: P2PCF.Peer, reason: string) => void): this
  on(event: 'msg', handler: (peer: P2PCF.Peer, data: ArrayBuffer) => void): this
  on(event: 'error', handler: (error: Error, peer?: P2PCF.Peer) => void): this
  once(event: 'peerconnect' | 'peerclose', handler: (peer: P2PCF.Peer) => void): this
  once(event: 'peerfailed', handler: (peer: P2PCF.Peer, reason: string) => void): this
  once(event: 'msg', handler: (peer: P2PCF.Peer, data: ArrayBuffer) => void): this
  once(event: 'error', handler: (error: Error, peer?: P2PCF.Peer) => void): this
  off(event: string, handler: (...args: any[]) => void): this
  /** The same as `off` (Node's EventEmitter name). */
  removeListener(event: string, handler: (...args: any[]) => void): this
  /** Call the handlers of `event`; whether there were any. */
  emit(event: string, ...args: any[]): boolean
}

declare namespace P2PCF {
  export { P2PCF as default, P2PCF }

  /** MediaStream: the DOM's where declared, else `any`. */
  export type MediaStreamLike = InstanceOf<'MediaStream'>
  /** MediaStreamTrack: the DOM's where declared, else `any`. */
  export type MediaStreamTrackLike = InstanceOf<'MediaStreamTrack'>
  /** RTCRtpSender: the DOM's where declared, else `any`. */
  export type RTCRtpSenderLike = InstanceOf<'RTCRtpSender'>
  /** RTCStatsReport: the DOM's where declared, else `any`. */
  export type RTCStatsReportLike = InstanceOf<'RTCStatsReport'>

  /** An ICE server, as in RTCIceServer. */
  export interface IceServer {
    urls: string | string[]
    username?: string
    credential?: string
  }

  /** RTCPeerConnection options, as in RTCConfiguration (P2PCF sets `iceServers`). */
  export interface PeerConnectionConfig {
    iceServers?: IceServer[]
    iceTransportPolicy?: string
    bundlePolicy?: string
    rtcpMuxPolicy?: string
    iceCandidatePoolSize?: number
    certificates?: any[]
  }

  /** A WebRTC implementation: the browser's globals (the default), or e.g. `@roamhq/wrtc` in Node. */
  export interface RtcImplementation {
    RTCPeerConnection: {
      new (config?: any, constraints?: any): any
      generateCertificate?(keygenAlgorithm: any): Promise<any>
    }
  }

  /** What P2PCF reaches the worker with: `fetch(url, init)`. */
  export type FetchLike = (url: string, init?: any) => Promise<any>

  /** A WebSocket class: the browser's, or the `ws` package's in Node 20. */
  export type WebSocketClass = new (url: string) => any

  export interface P2PCFOptions {
    /** The P2PCF worker to signal through. Default: the public p2pcf worker. */
    workerUrl?: string
    stunIceServers?: IceServer[]
    /** Used when either side is behind a symmetric NAT. */
    turnIceServers?: IceServer[]
    networkChangePollIntervalMs?: number
    /** How long the worker keeps our data without a heartbeat (default 120000). */
    stateExpirationIntervalMs?: number
    /** Heartbeat this long before expiry (default 30000, i.e. every 90 s). */
    stateHeartbeatWindowMs?: number
    fastPollingDurationMs?: number
    fastPollingRateMs?: number
    slowPollingRateMs?: number
    /** After this long without changes, poll at `idlePollingRateMs` (Infinity stops polling). */
    idlePollingAfterMs?: number
    idlePollingRateMs?: number
    rtcPeerConnectionOptions?: PeerConnectionConfig
    /** Second argument of every RTCPeerConnection (legacy, browser-specific constraints). */
    rtcPeerConnectionProprietaryConstraints?: object
    /** Applied to every local description (offers and answers, the handshake's and later ones). */
    sdpTransform?: (sdp: string) => string
    /** Ours: the WebRTC implementation (e.g. `@roamhq/wrtc` in Node). Default: the global one. */
    rtc?: RtcImplementation
    /** Ours: a fixed context id where there is no `history` (Node). Default: random. */
    contextId?: string
    /** Ours: refuse incoming messages larger than this (default 64 MiB). */
    maxMessageBytes?: number
    /** Ours: give up on a peer that has not connected after this long (default 15000). */
    connectTimeoutMs?: number
    /** Ours: the fetch to reach the worker with. Default: the global fetch. */
    fetch?: FetchLike
    /** Ours: abandon a request to the worker after this long (default 20000); polling goes on. */
    fetchTimeoutMs?: number
    /**
     * Ours: how to signal. 'polling' (default) is wire-identical to p2pcf 1.3.14, so rooms can mix
     * in p2pcf peers. 'websocket' uses our worker's /ws/room/:roomId socket (packages delivered at
     * once, ~15x fewer billed requests); 'auto' tries the socket and falls back to polling when the
     * worker has no socket endpoint. Socket peers and polling peers do not see each other.
     */
    transport?: 'auto' | 'websocket' | 'polling'
    /** Ours: the WebSocket class for transport 'websocket' or 'auto' (Node 20: the `ws` package). Default: the global one. */
    WebSocket?: WebSocketClass
  }

  /** Options for a new transceiver, as in RTCRtpTransceiverInit. */
  export interface TransceiverInit {
    direction?: 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive'
    streams?: MediaStreamLike[]
    sendEncodings?: any[]
  }

  /** The signals peers exchange over the DataChannel after connecting (simple-peer's). */
  export type SignalData =
    | { type: 'offer' | 'answer'; sdp: string }
    | { type: 'candidate'; candidate: { candidate: string; sdpMLineIndex?: number | null; sdpMid?: string | null } }
    | { type?: 'renegotiate'; renegotiate: true }
    | { type?: 'transceiverRequest'; transceiverRequest: { kind: string; init?: TransceiverInit } }

  /**
   * One remote peer: a WebRTC connection with the parts of simple-peer's surface p2pcf users
   * touch. P2PCF makes them (see its `peers` and events); the class is exported for `instanceof`.
   */
  export class Peer {
    private constructor()
    /** The remote session id. */
    readonly id: string
    /** The remote client id (the first argument of its `new P2PCF`). */
    readonly client_id: string
    /** Whether this side opened the DataChannel. */
    readonly initiator: boolean
    readonly connected: boolean
    /** Whether it ever connected (a close after that is a `peerclose`, before it a `peerfailed`). */
    readonly wasConnected: boolean
    readonly destroyed: boolean
    /** @internal The signalling client's record of this connection's minimal-SDP handshake. */
    readonly handshake: Record<string, unknown>
    /** Bytes queued on the DataChannel. */
    readonly bufferedAmount: number
    /** Send on the DataChannel as is (no chunking; `p2pcf.send(peer, data)` chunks and queues). */
    send(data: ArrayBuffer | ArrayBufferView | string): void
    addTrack(track: MediaStreamTrackLike, stream: MediaStreamLike): RTCRtpSenderLike
    /** Swap the track a sender sends (no renegotiation); undefined when `oldTrack` is not sent. */
    replaceTrack(oldTrack: MediaStreamTrackLike, newTrack: MediaStreamTrackLike | null): Promise<void> | undefined
    removeTrack(track: MediaStreamTrackLike, stream?: MediaStreamLike): void
    /** Add a transceiver of `kind` ('audio' or 'video'); the non-initiator asks the initiator to. */
    addTransceiver(kind: 'audio' | 'video' | (string & {}), init?: TransceiverInit): void
    addStream(stream: MediaStreamLike): void
    removeStream(stream: MediaStreamLike): void
    /** The connection's RTCStatsReport (the selected candidate pair, bytes, round-trip time). */
    getStats(): Promise<RTCStatsReportLike>
    /** Resolves once at most `threshold` bytes are queued on the DataChannel. */
    drained(threshold: number): Promise<void>
    /** Apply a signal from the other side (P2PCF does this with what arrives on the channel). */
    signal(data: SignalData): Promise<void>
    destroy(): void
    on(event: 'track', handler: (track: MediaStreamTrackLike, stream: MediaStreamLike) => void): this
    on(event: 'stream', handler: (stream: MediaStreamLike) => void): this
    on(event: 'connect' | 'close', handler: () => void): this
    on(event: 'data', handler: (data: ArrayBuffer) => void): this
    on(event: 'error', handler: (error: Error) => void): this
    on(event: 'signal', handler: (data: SignalData) => void): this
    once(event: string, handler: (...args: any[]) => void): this
    off(event: string, handler: (...args: any[]) => void): this
    /** The same as `off` (Node's EventEmitter name). */
    removeListener(event: string, handler: (...args: any[]) => void): this
    /** Call the handlers of `event`; whether there were any. */
    emit(event: string, ...args: any[]): boolean
  }
}

export = P2PCF
