/**
 * The blob ids a repository folder holds, read from the pack footers (which list them in the clear),
 * so the serving Transporter answers "which of these chunks do you lack?" without any key.
 *
 * Read lazily on the first question, then kept up to date with what goes through this server: a pack
 * committed adds its ids, a pack removed takes its ids out before the file goes. An error may only
 * ever be on the safe side: an id reported lacking that is there costs a re-upload, an id reported
 * present that is not would lose data. So a pack named while the footers are being read may be
 * missed (lacking), while a pack removed meanwhile makes the reading start over. Packs written or
 * removed in the folder by anything other than this server are seen only by the next server started on it.
 *
 * Memory: each id is kept as a 32-character one-byte string (latin1 of the raw bytes, half of hex) in
 * a Set, about 100 bytes per id with V8's string header and the Set's table: some 1 GB for 10 million
 * chunks (2.5 TiB of unique data at 256 KiB a chunk). A sorted flat Buffer of ids would take a third.
 */
import { CorruptDataError, ID_BYTES, PACK_ENTRY, PACK_TRAILER, decodePackEntries, decodePackTrailer } from '@vaultline/repository';
import type { LocalBackend } from '@vaultline/repository';

/** `packs/<xx>/<packid>.pack`, as the repository names them (format.ts packPath). */
const PACK_PATH = /^packs\/[0-9a-f]{2}\/[0-9a-f]+\.pack$/;

function isPackPath(p: string): boolean {
  return PACK_PATH.test(p);
}

export class BlobIds {
  private ids: Set<string> | null = null;
  private scanning: Promise<Set<string>> | null = null;
  /** Bumped by every removal; a scan that started under an older generation is not trusted. */
  private generation = 0;

  constructor(private readonly backend: LocalBackend) {}

  /** Which of `ids` (N × 32 bytes) the folder lacks: bit i of the answer (LSB first) is set when id i is lacking. */
  async lacking(ids: Buffer): Promise<Buffer> {
    const known = await this.known();
    const n = ids.length / ID_BYTES;
    const bits = Buffer.alloc(Math.ceil(n / 8));
    for (let i = 0; i < n; i++) {
      if (!known.has(ids.toString('latin1', i * ID_BYTES, (i + 1) * ID_BYTES))) bits[i >> 3]! |= 1 << (i & 7);
    }
    return bits;
  }

  /** A pack was committed through this server. */
  async added(p: string): Promise<void> {
    if (!this.ids || !isPackPath(p)) return;
    const ids = this.ids;
    // An unreadable footer only means the pack's ids are reported lacking.
    for (const id of await this.idsOf(p).catch(() => [])) ids.add(id);
  }

  /** Called before a pack is removed: its ids go first, so none is ever reported present without its pack. */
  async removing(p: string): Promise<void> {
    if (!isPackPath(p)) return;
    this.generation++;
    const ids = this.ids;
    if (!ids) return;
    try {
      for (const id of await this.idsOf(p)) ids.delete(id);
    } catch {
      // Which ids the pack held is not known: read everything again on the next question.
      this.ids = null;
    }
  }

  private async known(): Promise<Set<string>> {
    while (!this.ids) {
      const generation = this.generation;
      this.scanning ??= this.scan().finally(() => {
        this.scanning = null;
      });
      const ids = await this.scanning;
      if (generation === this.generation) this.ids = ids;
    }
    return this.ids;
  }

  private async scan(): Promise<Set<string>> {
    const ids = new Set<string>();
    for (const dir of await this.backend.list('packs')) {
      for (const name of await this.backend.list(`packs/${dir}`)) {
        const p = `packs/${dir}/${name}`;
        // Not a pack (a `.tmp-` leftover of an upload, say).
        if (!isPackPath(p)) continue;
        // A pack removed since the listing, or one whose footer is damaged, holds nothing to report.
        for (const id of await this.idsOf(p).catch(() => [])) ids.add(id);
      }
    }
    return ids;
  }

  /** The ids in a pack's footer: two ranged reads (trailer, then entries), checked against the footer's SHA-256. */
  private async idsOf(p: string): Promise<string[]> {
    const size = (await this.backend.stat(p))?.size ?? 0;
    if (size < PACK_TRAILER) throw new CorruptDataError(`${p}: shorter than a pack trailer`);
    const trailer = await this.backend.readRange(p, size - PACK_TRAILER, PACK_TRAILER);
    const count = decodePackTrailer(trailer, p);
    const bodyBytes = count * PACK_ENTRY;
    if (bodyBytes > size - PACK_TRAILER) throw new CorruptDataError(`${p}: pack footer lists more entries than fit`);
    const body = await this.backend.readRange(p, size - PACK_TRAILER - bodyBytes, bodyBytes);
    return decodePackEntries(body, trailer, p).map((e) => e.id.toString('latin1'));
  }
}
