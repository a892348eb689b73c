// The demo room: pick a room, see who is here, chat, optionally share a camera.
// Uses the p2pcf client (served at /p2pcf.js by this worker's static assets) with this worker as
// its signalling server.
import P2PCF from '/p2pcf.js'

const $ = id => document.getElementById(id)
const isLocal = ['localhost', '127.0.0.1', '[::1]'].includes(location.hostname)
const encoder = new TextEncoder()
const decoder = new TextDecoder()
let p2pcf = null
let camera = null
const names = new Map() // peer id -> client name

function randomName () {
  const words = ['otter', 'heron', 'lynx', 'finch', 'koala', 'raven', 'tapir', 'gecko']
  return `${words[Math.floor(Math.random() * words.length)]}-${Math.floor(Math.random() * 900 + 100)}`
}

function log (text, who = null) {
  const item = document.createElement('li')
  if (who) {
    const name = document.createElement('span')
    name.className = 'who'
    name.textContent = who
    item.append(name, document.createTextNode(text))
  } else {
    item.className = 'system'
    item.textContent = text
  }
  $('log').append(item)
  item.scrollIntoView({ block: 'end' })
}

function renderPeers () {
  const list = $('peers')
  list.querySelectorAll('li[data-id]').forEach(li => li.remove())
  for (const [id, name] of names) {
    const item = document.createElement('li')
    item.dataset.id = id
    item.textContent = name
    list.append(item)
  }
  $('nobody').classList.toggle('hidden', names.size > 0)
  const status = $('status')
  status.textContent = names.size ? `connected to ${names.size} ${names.size === 1 ? 'peer' : 'peers'}` : 'waiting for others…'
  status.classList.toggle('ok', names.size > 0)
}

function showVideo (peerId, stream) {
  let video = document.querySelector(`video[data-id="${CSS.escape(peerId)}"]`)
  if (!video) {
    video = document.createElement('video')
    video.dataset.id = peerId
    video.autoplay = true
    video.playsInline = true
    video.muted = peerId === 'me'
    $('videos').append(video)
  }
  video.srcObject = stream
}

function removeVideo (peerId) {
  document.querySelector(`video[data-id="${CSS.escape(peerId)}"]`)?.remove()
}

function join (room, name) {
  history.replaceState(history.state, '', `#${encodeURIComponent(room)}`)
  sessionStorage.setItem('p2pcf-demo-name', name) // per tab: two tabs are two people
  $('join').classList.add('hidden')
  $('room-view').classList.remove('hidden')
  $('room-label').textContent = `Room ${room}`
  const options = { workerUrl: location.origin }
  if (isLocal) Object.assign(options, { stunIceServers: [], turnIceServers: [] }) // no internet needed locally
  p2pcf = new P2PCF(name, room, options)
  window.demo = p2pcf

  p2pcf.on('peerconnect', peer => {
    names.set(peer.id, peer.client_id)
    renderPeers()
    log(`${peer.client_id} joined`)
    if (camera) peer.addStream(camera)
    peer.on('stream', stream => showVideo(peer.id, stream))
  })
  p2pcf.on('peerclose', peer => {
    if (names.has(peer.id)) log(`${names.get(peer.id)} left`)
    names.delete(peer.id)
    removeVideo(peer.id)
    renderPeers()
  })
  p2pcf.on('msg', (peer, data) => log(decoder.decode(data), names.get(peer.id) || peer.client_id))
  p2pcf.start()
  renderPeers()
  log(`You joined as ${name}. Share this page's link to invite someone.`)
}

$('room').value = decodeURIComponent(location.hash.slice(1)) || `room-${Math.random().toString(36).slice(2, 8)}`
$('name').value = sessionStorage.getItem('p2pcf-demo-name') || randomName()

$('join-form').addEventListener('submit', event => {
  event.preventDefault()
  join($('room').value.trim(), $('name').value.trim())
})

$('chat-form').addEventListener('submit', event => {
  event.preventDefault()
  const text = $('message').value.trim()
  if (!text || !p2pcf) return
  p2pcf.broadcast(encoder.encode(text))
  log(text, 'you')
  $('message').value = ''
})

$('camera').addEventListener('click', async () => {
  if (camera) {
    for (const peer of p2pcf.peers.values()) if (peer.connected) peer.removeStream(camera)
    camera.getTracks().forEach(t => t.stop())
    camera = null
    removeVideo('me')
    $('camera').textContent = 'Share camera'
    return
  }
  try {
    camera = await navigator.mediaDevices.getUserMedia({ video: true, audio: true })
  } catch (err) {
    log(`Camera unavailable: ${err.message}`)
    return
  }
  showVideo('me', camera)
  for (const peer of p2pcf.peers.values()) if (peer.connected) peer.addStream(camera)
  $('camera').textContent = 'Stop camera'
})

$('leave').addEventListener('click', () => {
  p2pcf?.destroy()
  location.hash = ''
  location.reload()
})

// Opening a link with a room in it joins straight away.
if (location.hash.length > 1) join($('room').value, $('name').value)
