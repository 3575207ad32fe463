// /perf/1.0.0 for the js peers (libp2p specs, perf/perf.md "Protocol"), written against the
// js-libp2p 3.x stream API so that it can serve as the js baseline of the benchmarks:
//
//   client: open a stream, send the download size as a big-endian uint64, upload, close the
//           write side, read until the server closes.
//   server: read the size, read until the client's write side closes (EOF), then send the
//           requested bytes and close. The download never starts before the upload ended.
//
// Efficiency: the payload is one constant zero block (the spec: "Zero is fine") handed to
// send() in large writes that js cuts into muxer frames without copying; sends honour
// backpressure (send() → false: wait for drain). Received data is only counted (byteLength of
// each message), never copied or inspected beyond the 8-byte header.

export const PERF = '/perf/1.0.0'

// Writes of this size; js splits them into frames (yamux 64 KiB, mplex 1 MiB, noise 64 KiB).
const BLOCK = 1024 * 1024
const ZEROS = new Uint8Array(BLOCK)
// A download size beyond this (the spec allows up to 2^64 - 1, meaning "until the client stops")
// is served as "as much as the client reads": capped at the largest exact js integer.
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)

/** Calls fn with each Uint8Array of a stream message (Uint8Array or Uint8ArrayList). */
function eachBuf (data, fn) {
  if (data instanceof Uint8Array) fn(data)
  else for (const b of data) fn(b)
}

/**
 * Resolves when no more data will arrive on `stream` ('end'), rejects if it was reset or
 * aborted first (or `signal` fires). Attach before any await, so that no event is missed.
 */
function endOf (stream, signal) {
  return new Promise((resolve, reject) => {
    const fail = (e) => reject(e ?? new Error(`stream ${stream.status}`))
    if (stream.readableEnded) {
      if (stream.status === 'reset' || stream.status === 'aborted') fail()
      else resolve()
      return
    }
    stream.addEventListener('end', () => {
      if (stream.status === 'reset' || stream.status === 'aborted') fail()
      else resolve()
    }, { once: true })
    stream.addEventListener('close', (evt) => {
      if (evt.error != null) fail(evt.error)
      else resolve()
    }, { once: true })
    signal?.addEventListener('abort', () => fail(signal.reason), { once: true })
  })
}

/** Sends `n` bytes of the constant block on `stream`, honouring backpressure. */
async function sendZeros (stream, n, signal) {
  while (n > 0) {
    const len = n < BLOCK ? n : BLOCK
    n -= len
    if (!stream.send(len === BLOCK ? ZEROS : ZEROS.subarray(0, len))) await stream.onDrain({ signal })
  }
}

/**
 * The server side: a stream handler for node.handle(PERF, ...). `onServed(conn, r)`, if given,
 * is called when a stream ends, with r = { ok, error?, requested, uploadBytes, downloadBytes }:
 * what the client asked for, the upload bytes read, the download bytes sent.
 */
export const perfHandler = (onServed = null) => async (stream, conn) => {
  const t0 = process.hrtime.bigint()
  let sent = 0
  let want = null
  const header = new Uint8Array(8)
  let headerLen = 0
  let uploaded = 0
  const ended = endOf(stream)
  ended.catch(() => {})
  stream.addEventListener('message', (evt) => {
    if (headerLen < 8) {
      eachBuf(evt.data, (b) => {
        const take = Math.min(8 - headerLen, b.byteLength)
        header.set(b.subarray(0, take), headerLen)
        headerLen += take
        uploaded += b.byteLength - take
      })
    } else {
      uploaded += evt.data.byteLength
    }
  })
  const served = (extra) => onServed?.(conn, {
    ...extra,
    requested: want == null ? null : String(want),
    uploadBytes: uploaded,
    downloadBytes: sent,
    seconds: Number(process.hrtime.bigint() - t0) / 1e9
  })
  try {
    await ended
    if (headerLen < 8) throw new Error(`perf: the stream ended after ${headerLen} of the 8 header bytes`)
    want = new DataView(header.buffer).getBigUint64(0, false)
    const n = Number(want > MAX_SAFE ? MAX_SAFE : want)
    await sendZeros(stream, n)
    sent = n
    await stream.close()
    served({ ok: true })
  } catch (e) {
    stream.abort(e)
    served({ ok: false, error: (e?.name != null && e.name !== 'Error' ? `${e.name}: ` : '') + (e?.message ?? String(e)) })
  }
}

/**
 * The client side: on a new /perf/1.0.0 stream of `conn`, uploads `upload` bytes and asks for
 * `download`. Returns { uploadBytes, downloadBytes, seconds, uploadMBps, downloadMBps,
 * uploadSeconds, downloadSeconds, cpuSeconds } (MB = 10^6 bytes; seconds from asking for
 * the stream to the server's close, as perf.md measures "from stream open to stream close";
 * both rates are over that whole time, like `ringp2p perf`). Throws if the stream fails;
 * byte counts are what moved, for the caller to compare with what was asked.
 */
export async function perfOnce (conn, upload, download, signal) {
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  const stream = await conn.newStream(PERF, { signal, maxOutboundStreams: 1024 })
  let downloaded = 0
  let firstByte = null
  stream.addEventListener('message', (evt) => {
    if (firstByte == null) firstByte = process.hrtime.bigint()
    downloaded += evt.data.byteLength
  })
  const ended = endOf(stream, signal)
  ended.catch(() => {})
  let uploadDone
  try {
    const header = new Uint8Array(8)
    new DataView(header.buffer).setBigUint64(0, BigInt(download), false)
    if (!stream.send(header)) await stream.onDrain({ signal })
    await sendZeros(stream, upload, signal)
    await stream.close({ signal })
    uploadDone = process.hrtime.bigint()
    await ended
  } catch (e) {
    stream.abort(e)
    throw e
  }
  const t1 = process.hrtime.bigint()
  const cpu = process.cpuUsage(cpu0)
  const seconds = Number(t1 - t0) / 1e9
  const s = seconds > 0 ? seconds : 1e-9
  return {
    uploadBytes: upload,
    downloadBytes: downloaded,
    seconds,
    uploadMBps: upload / 1e6 / s,
    downloadMBps: downloaded / 1e6 / s,
    uploadSeconds: Number(uploadDone - t0) / 1e9,
    downloadSeconds: Number(t1 - (firstByte ?? uploadDone)) / 1e9,
    cpuSeconds: (cpu.user + cpu.system) / 1e6
  }
}
