// Conferencing: one Sender broadcasts a stream (and data) to many Receivers, over any signalling
// driver. `import { Sender, Receiver, MemoryDriver } from 'p2pcf-client/conference'`.
export { Sender } from './sender.js'
export { Receiver } from './receiver.js'
export { MemoryDriver, BroadcastChannelDriver, WebSocketDriver } from './drivers.js'
