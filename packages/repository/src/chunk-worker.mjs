// Hot-path worker: hash, dedup check, compress (and encrypt) chunks.
// Plain JavaScript on purpose: worker threads must start without a TypeScript
// loader (the package runs under tsx, vitest and plain node alike).
//
// Memory discipline (fresh pages cost 11-25 µs each on these hosts): input and
// output live in SharedArrayBuffer slots owned by the writer, the zstd context
// and the scratch buffer are created once per worker and reused forever.
//
// One job = one slot: optionally merge base data into it first (the writer put
// the parent's stored blob at the start of the slot's output area; it is
// decoded here and only the `gaps` are copied in), then store either the whole
// slot or only `runs` ([start,end) pairs, the changed pieces of a partly
// changed chunk): each is hashed, checked against the known ids and, when new,
// compressed into the output area, one after the other.
import { parentPort } from 'node:worker_threads';
import * as crypto from 'node:crypto';
import { createRequire } from 'node:module';
import { KnownIds, makeChunkHasher } from './chunk-codec.mjs';

const require = createRequire(import.meta.url);
const zstd = require('zstd-napi/binding');

let inView; // Buffer over the input SAB
let outView; // Buffer over the output SAB
let chunkSize = 0;
let outSlotSize = 0;
let encKey = null;
let hashChunk = null;
// Ids to treat as already stored: the parent's (sent by the writer) and what this worker stored since.
let known = new KnownIds(Buffer.alloc(0));
const cctx = new zstd.CCtx();
const dctx = new zstd.DCtx();
let scratch = null;

/** Compress (and encrypt) `src` into the output view at `dst`; returns the stored length. */
function encode(src, dst, limit) {
  if (!encKey) return cctx.compress2(outView.subarray(dst, limit), src);
  const n = cctx.compress2(scratch, src);
  const nonce = crypto.randomBytes(12);
  const c = crypto.createCipheriv('aes-256-gcm', encKey, nonce);
  nonce.copy(outView, dst);
  const a = c.update(scratch.subarray(0, n));
  a.copy(outView, dst + 12);
  const b = c.final();
  b.copy(outView, dst + 12 + a.length);
  c.getAuthTag().copy(outView, dst + 12 + a.length + b.length);
  return 12 + n + 16;
}

function storeRange(slot, start, end, checkKnown, outOff) {
  const src = inView.subarray(slot * chunkSize + start, slot * chunkSize + end);
  const hex = hashChunk(src);
  if (checkKnown && known.has(hex)) return { id: hex, dup: true, storedLen: 0, outOff };
  const base = slot * outSlotSize;
  const storedLen = encode(src, base + outOff, base + outSlotSize);
  known.add(hex);
  return { id: hex, dup: false, storedLen, outOff };
}

// Decode the parent's blob (at the start of the slot's output area) and copy
// the gaps (ranges the new writes did not cover) into the slot. Bytes past the
// base's length (a disk that grew) read as zeros.
function mergeBase(slot, blobLen, baseRawLen, gaps) {
  let plain = outView.subarray(slot * outSlotSize, slot * outSlotSize + blobLen);
  if (encKey) {
    const d = crypto.createDecipheriv('aes-256-gcm', encKey, plain.subarray(0, 12));
    d.setAuthTag(plain.subarray(plain.length - 16));
    plain = Buffer.concat([d.update(plain.subarray(12, plain.length - 16)), d.final()]);
  }
  const n = dctx.decompress(scratch, plain);
  if (n !== baseRawLen) throw new Error(`base chunk decoded to ${n} bytes, expected ${baseRawLen}`);
  if (n < chunkSize) scratch.fill(0, n, chunkSize);
  const base = slot * chunkSize;
  for (let i = 0; i < gaps.length; i += 2) scratch.copy(inView, base + gaps[i], gaps[i], gaps[i + 1]);
}

function store(m) {
  if (m.merge) mergeBase(m.slot, m.merge.blobLen, m.merge.baseRawLen, m.merge.gaps);
  const runs = m.runs ?? [0, m.len];
  const results = [];
  let outOff = 0;
  for (let i = 0; i < runs.length; i += 2) {
    const r = storeRange(m.slot, runs[i], runs[i + 1], m.checkKnown, outOff);
    outOff += r.storedLen;
    results.push(r);
  }
  return results;
}

// Restore: decode stored blobs (read by the main thread into a shared input
// buffer) straight into a shared, page-aligned output stage. A job is a whole
// chunk ({inOff, storedLen, rawLen, dstOff, len}) or a split chunk
// ({dstOff, pieces: [{start, len, hole} | {start, len, srcOff, inOff, storedLen, rawLen}]}).
function decodeBlob(input, inOff, storedLen, rawLen, dst, what) {
  let plain = input.subarray(inOff, inOff + storedLen);
  try {
    if (encKey) {
      const d = crypto.createDecipheriv('aes-256-gcm', encKey, plain.subarray(0, 12));
      d.setAuthTag(plain.subarray(plain.length - 16));
      plain = Buffer.concat([d.update(plain.subarray(12, plain.length - 16)), d.final()]);
    }
    const n = dctx.decompress(dst, plain);
    if (n !== rawLen) throw new Error(`decoded ${n} bytes, expected ${rawLen}`);
  } catch (err) {
    throw new Error(`${what}: ${err && err.message ? err.message : err}`);
  }
}

function decodeJobs(m) {
  const input = Buffer.from(m.inSab);
  const out = Buffer.from(m.outSab);
  for (const j of m.jobs) {
    if (!j.pieces) {
      decodeBlob(input, j.inOff, j.storedLen, j.rawLen, out.subarray(j.dstOff, j.dstOff + j.len), j.what);
      continue;
    }
    let cached = -1;
    for (const p of j.pieces) {
      if (p.hole) {
        out.fill(0, j.dstOff + p.start, j.dstOff + p.start + p.len);
        continue;
      }
      if (cached !== p.inOff) {
        decodeBlob(input, p.inOff, p.storedLen, p.rawLen, scratch, j.what);
        cached = p.inOff;
      }
      scratch.copy(out, j.dstOff + p.start, p.srcOff, p.srcOff + p.len);
    }
  }
  return [];
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
      known = new KnownIds(Buffer.from(m.ids.buffer, m.ids.byteOffset, m.ids.byteLength));
    } else if (m.op === 'store') {
      parentPort.postMessage({ op: 'stored', seq: m.seq, results: store(m) });
    } else if (m.op === 'batch') {
      const settled = m.jobs.map((j) => {
        try {
          return { results: store(j) };
        } catch (err) {
          return { error: String(err && err.message ? err.message : err) };
        }
      });
      parentPort.postMessage({ op: 'batched', seq: m.seq, settled });
    } else if (m.op === 'decode') {
      parentPort.postMessage({ op: 'decoded', seq: m.seq, results: decodeJobs(m) });
    }
  } catch (err) {
    parentPort.postMessage({ op: 'error', seq: m.seq, slot: m.slot, message: String(err && err.message ? err.message : err) });
  }
});
