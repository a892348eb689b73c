// The CommonJS entry, bundled into dist/p2pcf.cjs: `require('p2pcf-client')` is the P2PCF
// constructor itself, as with p2pcf; `.default`, `.P2PCF` and `.Peer` hang off it (index.d.cts).
const { P2PCF, Peer } = require('./index.js')

module.exports = P2PCF
module.exports.default = P2PCF
module.exports.P2PCF = P2PCF
module.exports.Peer = Peer
