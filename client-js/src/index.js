export { P2PCF, P2PCF as default } from './p2pcf.js'
export { Peer } from './peer.js'
