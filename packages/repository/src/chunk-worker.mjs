// Hot-path worker: hash, dedup check, compress (and encrypt) one chunk at a time.
// Plain JavaScript on purpose: worker threads must start without a TypeScript
// loader (the package runs under tsx, vitest and plain node alike).
//
// Memory discipline (fresh pages cost 11-25 µs each on these hosts): input and
// output live in SharedArrayBuffer slots owned by the writer, the zstd context
// and the scratch buffer are created once per worker and reused forever.
import { parentPort } from 'node:worker_threads';
import * as crypto from 'node:crypto';
import { createRequire } from 'node:module';
import { makeChunkHasher } from './chunk-codec.mjs';

const require = createRequire(import.meta.url);
const zstd = require('zstd-napi/binding');

let inView; // Buffer over the input SAB
let outView; // Buffer over the output SAB
let chunkSize = 0;
let outSlotSize = 0;
let encKey = null;
let hashChunk = null;
let known = new Set();
const cctx = new zstd.CCtx();
const dctx = new zstd.DCtx();
let scratch = null;

function store(slot, len, checkKnown) {
  const src = inView.subarray(slot * chunkSize, slot * chunkSize + len);
  const hex = hashChunk(src);
  if (checkKnown && known.has(hex)) return { slot, id: hex, dup: true, storedLen: 0 };
  const dstBase = slot * outSlotSize;
  let storedLen;
  if (!encKey) {
    storedLen = cctx.compress2(outView.subarray(dstBase, dstBase + outSlotSize), src);
  } else {
    const n = cctx.compress2(scratch, src);
    const nonce = crypto.randomBytes(12);
    const c = crypto.createCipheriv('aes-256-gcm', encKey, nonce);
    nonce.copy(outView, dstBase);
    const a = c.update(scratch.subarray(0, n));
    a.copy(outView, dstBase + 12);
    const b = c.final();
    b.copy(outView, dstBase + 12 + a.length);
    c.getAuthTag().copy(outView, dstBase + 12 + a.length + b.length);
    storedLen = 12 + n + 16;
  }
  known.add(hex);
  return { slot, id: hex, dup: false, storedLen };
}

// Merge job (partially changed chunk of an incremental): the writer has staged
// the new bytes in the slot and sends the parent's stored blob plus the gaps
// (byte ranges the new writes did not cover); decode the blob and copy only
// the gaps into the slot, so decompression runs here, off the main thread.
function decodeInto(slot, blob, ranges, rawLen) {
  let plain = blob;
  if (encKey) {
    const d = crypto.createDecipheriv('aes-256-gcm', encKey, blob.subarray(0, 12));
    d.setAuthTag(blob.subarray(blob.length - 16));
    plain = Buffer.concat([d.update(blob.subarray(12, blob.length - 16)), d.final()]);
  }
  const n = dctx.decompress(scratch, plain);
  if (n !== rawLen) throw new Error(`base chunk decoded to ${n} bytes, expected ${rawLen}`);
  const base = slot * chunkSize;
  // `ranges` are the gaps not covered by new writes: copy them from the base.
  for (let i = 0; i < ranges.length; i += 2) scratch.copy(inView, base + ranges[i], ranges[i], ranges[i + 1]);
}

parentPort.on('message', (m) => {
  try {
    if (m.op === 'init') {
      inView = Buffer.from(m.inSab);
      outView = Buffer.from(m.outSab);
      chunkSize = m.chunkSize;
      outSlotSize = m.outSlotSize;
      encKey = m.encKey ? Buffer.from(m.encKey) : null;
      hashChunk = makeChunkHasher(m.hash, m.idKey ? Buffer.from(m.idKey) : null);
      cctx.setParameter(zstd.CParameter.compressionLevel, m.level);
      cctx.setParameter(zstd.CParameter.checksumFlag, 1);
      scratch = Buffer.alloc(outSlotSize);
      parentPort.postMessage({ op: 'ready' });
    } else if (m.op === 'known') {
      known = new Set();
      const ids = Buffer.from(m.ids);
      for (let o = 0; o + 32 <= ids.length; o += 32) known.add(ids.toString('hex', o, o + 32));
    } else if (m.op === 'store') {
      parentPort.postMessage({ op: 'stored', seq: m.seq, ...store(m.slot, m.len, m.checkKnown) });
    } else if (m.op === 'merge-store') {
      // The writer read the parent's stored blob straight into this slot's output area.
      const blob = outView.subarray(m.slot * outSlotSize, m.slot * outSlotSize + m.blobLen);
      decodeInto(m.slot, blob, m.gaps, m.len);
      parentPort.postMessage({ op: 'stored', seq: m.seq, ...store(m.slot, m.len, m.checkKnown) });
    }
  } catch (err) {
    parentPort.postMessage({ op: 'error', seq: m.seq, slot: m.slot, message: String(err && err.message ? err.message : err) });
  }
});
