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
// compressed into the output area, one after the other; a new blob's entropy
// is sampled too (the ransomware signal), while its bytes are in cache.
import { parentPort } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { ID_MISMATCH, KnownIds, blobDecoder, makeChunkHasher, openBlob, sealBlob } from './chunk-codec.mjs';
import { sampleEntropy } from './entropy-sample.mjs';

const require = createRequire(import.meta.url);
const zstd = require('zstd-napi/binding');

let inView; // Buffer over the input SAB
let outView; // Buffer over the output SAB
let chunkSize = 0;
let outSlotSize = 0;
let encKey = null;
// Format v3: encrypted blobs carry their id as AES-GCM AAD.
let bindIds = false;
// Restore re-hashes decoded blobs unless the AAD already proved their ids.
let rehashIds = true;
let hashChunk = null;
// Ids to treat as already stored: the parent's (sent by the writer) and what this worker stored since.
let known = new KnownIds(Buffer.alloc(0));
const cctx = new zstd.CCtx();
let dctx = blobDecoder(zstd, true);
let scratch = null;

const aadOf = (hex) => (bindIds ? Buffer.from(hex, 'hex') : null);

/** Compress (and encrypt) `src`, the plaintext of blob `hex`, into the output view at `dst`; returns the stored length. */
function encode(src, hex, dst, limit) {
  if (!encKey) return cctx.compress2(outView.subarray(dst, limit), src);
  const n = cctx.compress2(scratch, src);
  return sealBlob(scratch.subarray(0, n), encKey, aadOf(hex), outView, dst);
}

function storeRange(slot, start, end, checkKnown, outOff) {
  const src = inView.subarray(slot * chunkSize + start, slot * chunkSize + end);
  const hex = hashChunk(src);
  if (checkKnown && known.has(hex)) return { id: hex, dup: true, storedLen: 0, outOff, entropy: 0 };
  const base = slot * outSlotSize;
  const storedLen = encode(src, hex, base + outOff, base + outSlotSize);
  known.add(hex);
  return { id: hex, dup: false, storedLen, outOff, entropy: sampleEntropy(src) };
}

// Decode the parent's blob (at the start of the slot's output area) and copy
// the gaps (ranges the new writes did not cover) into the slot. Bytes past the
// base's length (a disk that grew) read as zeros.
function mergeBase(slot, baseId, blobLen, baseRawLen, gaps) {
  decodeBlob(outView, slot * outSlotSize, blobLen, baseId, baseRawLen, scratch, `base chunk ${baseId}`);
  if (baseRawLen < chunkSize) scratch.fill(0, baseRawLen, chunkSize);
  const base = slot * chunkSize;
  for (let i = 0; i < gaps.length; i += 2) scratch.copy(inView, base + gaps[i], gaps[i], gaps[i + 1]);
}

function store(m) {
  if (m.merge) mergeBase(m.slot, m.merge.id, m.merge.blobLen, m.merge.baseRawLen, m.merge.gaps);
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
// chunk ({id, where, inOff, storedLen, rawLen, dstOff, len}) or a split chunk
// ({where, dstOff, pieces: [{start, len, hole} | {start, len, id, srcOff, inOff, storedLen, rawLen}]}).
// Every blob is proven to be the blob of its id as it is decoded: by the AAD
// (encrypted, v3) or by hashing its plaintext while it is still in cache.
function decodeBlob(input, inOff, storedLen, id, rawLen, dst, what) {
  let plain = input.subarray(inOff, inOff + storedLen);
  try {
    if (encKey) plain = openBlob(plain, encKey, aadOf(id));
    const n = dctx.decompress(dst, plain);
    if (n !== rawLen) throw new Error(`decoded ${n} bytes, expected ${rawLen}`);
    if (rehashIds && hashChunk(dst.subarray(0, n)) !== id) throw new Error(ID_MISMATCH);
  } catch (err) {
    throw new Error(`${what}: ${err && err.message ? err.message : err}`);
  }
}

function decodeJobs(m) {
  const input = Buffer.from(m.inSab);
  const out = Buffer.from(m.outSab);
  for (const j of m.jobs) {
    if (!j.pieces) {
      decodeBlob(input, j.inOff, j.storedLen, j.id, j.rawLen, out.subarray(j.dstOff, j.dstOff + j.len), `chunk ${j.id} (${j.where})`);
      continue;
    }
    let cached = -1;
    for (const p of j.pieces) {
      if (p.hole) {
        out.fill(0, j.dstOff + p.start, j.dstOff + p.start + p.len);
        continue;
      }
      if (cached !== p.inOff) {
        decodeBlob(input, p.inOff, p.storedLen, p.id, p.rawLen, scratch, `chunk ${p.id} (${j.where})`);
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
      bindIds = m.bindIds;
      rehashIds = m.rehashIds;
      dctx = blobDecoder(zstd, rehashIds);
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
