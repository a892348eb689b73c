// Types for p2pcf-client as ESM (`import P2PCF from 'p2pcf-client'`, src/index.js): the
// declarations live in index.d.cts (the CommonJS entry's, `export =` the constructor); this file
// re-exports them as the ESM entry's default and named exports.
import P2PCF = require('./index.cjs')

export default P2PCF
export { P2PCF }
export import Peer = P2PCF.Peer
export import P2PCFOptions = P2PCF.P2PCFOptions
export import IceServer = P2PCF.IceServer
export import PeerConnectionConfig = P2PCF.PeerConnectionConfig
export import RtcImplementation = P2PCF.RtcImplementation
export import FetchLike = P2PCF.FetchLike
export import WebSocketClass = P2PCF.WebSocketClass
export import SignalData = P2PCF.SignalData
export import TransceiverInit = P2PCF.TransceiverInit
export import MediaStreamLike = P2PCF.MediaStreamLike
export import MediaStreamTrackLike = P2PCF.MediaStreamTrackLike
export import RTCRtpSenderLike = P2PCF.RTCRtpSenderLike
export import RTCStatsReportLike = P2PCF.RTCStatsReportLike
