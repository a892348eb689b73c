// Types for p2pcf-client: the P2PCF API (p2pcf 1.3.14 compatible) plus our additions.

export interface RtcImplementation {
  RTCPeerConnection: {
    new (config?: RTCConfiguration): RTCPeerConnection
    generateCertificate?(keygenAlgorithm: AlgorithmIdentifier | EcKeyGenParams): Promise<RTCCertificate>
  }
}

export interface P2PCFOptions {
  /** The P2PCF worker to signal through. Default: the public p2pcf worker. */
  workerUrl?: string
  stunIceServers?: RTCIceServer[]
  /** Used when either side is behind a symmetric NAT. */
  turnIceServers?: RTCIceServer[]
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
  rtcPeerConnectionOptions?: RTCConfiguration
  /** Ours: the WebRTC implementation (e.g. `@roamhq/wrtc` in Node). Default: the global one. */
  rtc?: RtcImplementation
  /** Ours: a fixed context id where there is no `history` (Node). Default: random. */
  contextId?: string
  /** Ours: refuse incoming messages larger than this (default 64 MiB). */
  maxMessageBytes?: number
  /** Ours: give up on a peer that has not connected after this long (default 15000). */
  connectTimeoutMs?: number
  /** Ours: the fetch to reach the worker with. Default: the global fetch. */
  fetch?: typeof fetch
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
  WebSocket?: { new (url: string): WebSocket }
}

export type SignalData =
  | { type: 'offer' | 'answer'; sdp: string }
  | { type: 'candidate'; candidate: RTCIceCandidateInit }
  | { renegotiate: true }
  | { transceiverRequest: { kind: string } }

export declare class Peer {
  /** The remote session id. */
  readonly id: string
  /** The remote client id (the first argument of its `new P2PCF`). */
  readonly client_id: string
  readonly connected: boolean
  readonly destroyed: boolean
  send(data: ArrayBuffer | ArrayBufferView): void
  addTrack(track: MediaStreamTrack, stream: MediaStream): RTCRtpSender
  removeTrack(track: MediaStreamTrack, stream?: MediaStream): void
  addStream(stream: MediaStream): void
  removeStream(stream: MediaStream): void
  destroy(): void
  on(event: 'track', handler: (track: MediaStreamTrack, stream: MediaStream) => void): this
  on(event: 'stream', handler: (stream: MediaStream) => void): this
  on(event: 'connect' | 'close', handler: () => void): this
  on(event: 'data', handler: (data: ArrayBuffer) => void): this
  on(event: 'error', handler: (error: Error) => void): this
  off(event: string, handler: (...args: any[]) => void): this
  once(event: string, handler: (...args: any[]) => void): this
}

export declare class P2PCF {
  constructor(clientId: string, roomId: string, options?: P2PCFOptions)
  readonly clientId: string
  readonly roomId: string
  readonly sessionId: string
  readonly contextId: string
  /** Peers by session id, connected or connecting. */
  readonly peers: Map<string, Peer>
  readonly connectedSessions: string[]
  /** Ours: how this client signals, once known ('auto' resolves to one of them). */
  readonly signalling: 'websocket' | 'polling' | null
  /** Probe the network and join the room. */
  start(): Promise<void>
  /** Send to one peer; resolves once queued (large messages wait for the channel to drain). */
  send(peer: Peer, data: ArrayBuffer | ArrayBufferView | string): Promise<void>
  broadcast(data: ArrayBuffer | ArrayBufferView | string): Promise<void[]>
  /** Leave: stops every timer, closes every connection, tells the worker. Safe at any time. */
  destroy(): void
  on(event: 'peerconnect' | 'peerclose', handler: (peer: Peer) => void): this
  /** Ours: a peer that never connected (the original emits nothing useful for these). */
  on(event: 'peerfailed', handler: (peer: Peer, reason: string) => void): this
  on(event: 'msg', handler: (peer: Peer, data: ArrayBuffer) => void): this
  on(event: 'error', handler: (error: Error, peer?: Peer) => void): this
  off(event: string, handler: (...args: any[]) => void): this
  once(event: string, handler: (...args: any[]) => void): this
}

export default P2PCF
