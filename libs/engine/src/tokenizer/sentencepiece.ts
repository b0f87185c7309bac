// tokenizer.model (SentencePiece ModelProto) → an equivalent tokenizer.json object that @huggingface/tokenizers can
// run, the way Hugging Face converts "slow" Llama/InternLM tokenizers: BPE (merges derived from the piece scores) or
// Unigram, byte fallback, "▁" for spaces with a dummy prefix, control pieces as special tokens.
// Only the ModelProto fields the conversion needs are decoded, by a small protobuf wire-format reader.
import { ModelFormatError } from '../errors';

export const SP_SPACE = '\u2581';

export enum PieceType {
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
}

export interface SentencePiece {
  piece: string;
  score: number;
  type: PieceType;
}

export interface SentencePieceModel {
  pieces: SentencePiece[];
  /** 1 unigram, 2 bpe, 3 word, 4 char. */
  modelType: number;
  byteFallback: boolean;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  /** The normalizer's compiled character map (NFKC etc.); empty for 'identity'. */
  precompiledCharsmap?: Uint8Array;
  unkId: number;
  bosId: number;
  eosId: number;
}

class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array, private readonly end = buf.length) {}
  get done(): boolean {
    return this.pos >= this.end;
  }
  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.end) throw new Error('truncated varint');
      const b = this.buf[this.pos++];
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  }
  /** Reads a field key; returns [field number, wire type]. */
  key(): [number, number] {
    const k = Number(this.varint());
    return [k >>> 3, k & 7];
  }
  bytes(): Uint8Array {
    const len = Number(this.varint());
    if (this.pos + len > this.end) throw new Error('truncated length-delimited field');
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
  float(): number {
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
}

/** int32 fields are varints sign-extended to 64 bits. */
const int32 = (v: bigint): number => Number(BigInt.asIntN(32, v));
const utf8 = new TextDecoder('utf-8', { fatal: false });

function parsePiece(buf: Uint8Array): SentencePiece {
  const r = new Reader(buf);
  const p: SentencePiece = { piece: '', score: 0, type: PieceType.Normal };
  while (!r.done) {
    const [field, wire] = r.key();
    if (field === 1 && wire === 2) p.piece = utf8.decode(r.bytes());
    else if (field === 2 && wire === 5) p.score = r.float();
    else if (field === 3 && wire === 0) p.type = Number(r.varint()) as PieceType;
    else r.skip(wire);
  }
  return p;
}

/** Decodes a SentencePiece ModelProto (tokenizer.model). */
export function parseSentencePieceModel(buf: Uint8Array, file = 'tokenizer.model'): SentencePieceModel {
  const m: SentencePieceModel = {
    pieces: [], modelType: 1, byteFallback: false, addDummyPrefix: true, removeExtraWhitespaces: true, unkId: 0, bosId: 1, eosId: 2,
  };
  try {
    const r = new Reader(buf);
    while (!r.done) {
      const [field, wire] = r.key();
      if (field === 1 && wire === 2) {
        m.pieces.push(parsePiece(r.bytes()));
      } else if (field === 2 && wire === 2) {
        const t = new Reader(r.bytes());
        while (!t.done) {
          const [f, w] = t.key();
          if (w !== 0) {
            t.skip(w);
            continue;
          }
          const v = t.varint();
          if (f === 3) m.modelType = Number(v);
          else if (f === 35) m.byteFallback = v !== 0n;
          else if (f === 40) m.unkId = int32(v);
          else if (f === 41) m.bosId = int32(v);
          else if (f === 42) m.eosId = int32(v);
        }
      } else if (field === 3 && wire === 2) {
        const n = new Reader(r.bytes());
        while (!n.done) {
          const [f, w] = n.key();
          if (f === 2 && w === 2) {
            const map = n.bytes();
            if (map.length > 0) m.precompiledCharsmap = map.slice();
            continue;
          }
          if (w !== 0) {
            n.skip(w);
            continue;
          }
          const v = n.varint();
          if (f === 3) m.addDummyPrefix = v !== 0n;
          else if (f === 4) m.removeExtraWhitespaces = v !== 0n;
        }
      } else {
        r.skip(wire);
      }
    }
  } catch (e) {
    throw new ModelFormatError(`cannot parse SentencePiece model: ${(e as Error).message}`, { file }, { cause: e });
  }
  if (m.pieces.length === 0) throw new ModelFormatError('SentencePiece model has no pieces', { file });
  if (m.modelType !== 1 && m.modelType !== 2) {
    throw new ModelFormatError('unsupported SentencePiece model type', { file, expected: 'unigram (1) or bpe (2)', found: String(m.modelType) });
  }
  return m;
}

/** BPE merges implied by the vocabulary: every split of a piece into two pieces, ordered by the merged piece's score. */
export function bpeMergesFromPieces(pieces: readonly SentencePiece[]): Array<[string, string]> {
  const ids = new Map<string, number>();
  pieces.forEach((p, i) => {
    if (p.type === PieceType.Normal) ids.set(p.piece, i);
  });
  const merges: Array<{ l: string; r: string; score: number; id: number; lid: number; rid: number }> = [];
  pieces.forEach((p, id) => {
    if (p.type !== PieceType.Normal) return;
    const chars = Array.from(p.piece);
    for (let i = 1; i < chars.length; i++) {
      const l = chars.slice(0, i).join('');
      const r = chars.slice(i).join('');
      const lid = ids.get(l);
      const rid = ids.get(r);
      if (lid !== undefined && rid !== undefined) merges.push({ l, r, score: p.score, id, lid, rid });
    }
  });
  merges.sort((a, b) => b.score - a.score || a.id - b.id || a.lid - b.lid || a.rid - b.rid);
  return merges.map((m) => [m.l, m.r]);
}

export interface ConvertOptions {
  addBos?: boolean;
  addEos?: boolean;
}

/** Builds the tokenizer.json object equivalent to a SentencePiece model. */
export function sentencePieceToTokenizerJson(m: SentencePieceModel, opts: ConvertOptions = {}): Record<string, unknown> {
  const unk = m.pieces[m.unkId]?.piece ?? '<unk>';
  const added = m.pieces
    .map((p, id) => ({ p, id }))
    .filter(({ p }) => p.type === PieceType.Control || p.type === PieceType.Unknown || p.type === PieceType.UserDefined)
    .map(({ p, id }) => ({
      id, content: p.piece, single_word: false, lstrip: false, rstrip: false, normalized: false, special: p.type !== PieceType.UserDefined,
    }));
  const normalizers: Record<string, unknown>[] = [];
  if (m.precompiledCharsmap) {
    normalizers.push({ type: 'Precompiled', precompiled_charsmap: Buffer.from(m.precompiledCharsmap).toString('base64') });
  }
  if (m.removeExtraWhitespaces) {
    normalizers.push({ type: 'Replace', pattern: { Regex: '^ +| +$' }, content: '' });
    normalizers.push({ type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' });
  }
  if (m.addDummyPrefix) {
    // SentencePiece adds the dummy prefix only to non-empty text (after whitespace cleanup a blank input is empty).
    normalizers.push(
      m.removeExtraWhitespaces
        ? { type: 'Replace', pattern: { Regex: '^([\\s\\S])' }, content: `${SP_SPACE}$1` }
        : { type: 'Prepend', prepend: SP_SPACE },
    );
  }
  normalizers.push({ type: 'Replace', pattern: { String: ' ' }, content: SP_SPACE });
  const decoders: Record<string, unknown>[] = [{ type: 'Replace', pattern: { String: SP_SPACE }, content: ' ' }];
  if (m.byteFallback) decoders.push({ type: 'ByteFallback' });
  decoders.push({ type: 'Fuse' });
  if (m.addDummyPrefix) decoders.push({ type: 'Strip', content: ' ', start: 1, stop: 0 });

  const model =
    m.modelType === 2
      ? {
          type: 'BPE', dropout: null, unk_token: unk, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true,
          byte_fallback: m.byteFallback, ignore_merges: false,
          vocab: Object.fromEntries(m.pieces.map((p, i) => [p.piece, i])),
          merges: bpeMergesFromPieces(m.pieces),
        }
      : { type: 'Unigram', unk_id: m.unkId, byte_fallback: m.byteFallback, vocab: m.pieces.map((p) => [p.piece, p.score]) };

  const bos = m.bosId >= 0 ? m.pieces[m.bosId]?.piece : undefined;
  const eos = m.eosId >= 0 ? m.pieces[m.eosId]?.piece : undefined;
  const single: unknown[] = [];
  const specialTokens: Record<string, unknown> = {};
  if ((opts.addBos ?? true) && bos) {
    single.push({ SpecialToken: { id: bos, type_id: 0 } });
    specialTokens[bos] = { id: bos, ids: [m.bosId], tokens: [bos] };
  }
  single.push({ Sequence: { id: 'A', type_id: 0 } });
  if (opts.addEos && eos) {
    single.push({ SpecialToken: { id: eos, type_id: 0 } });
    specialTokens[eos] = { id: eos, ids: [m.eosId], tokens: [eos] };
  }
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: 'Sequence', normalizers },
    pre_tokenizer: null,
    post_processor: { type: 'TemplateProcessing', single, pair: [...single, { Sequence: { id: 'B', type_id: 1 } }], special_tokens: specialTokens },
    decoder: { type: 'Sequence', decoders },
    model,
  };
}

// ---- writer (for tests and fixtures) ----

function varintBytes(v: number | bigint): number[] {
  let x = BigInt.asUintN(64, BigInt(v));
  const out: number[] = [];
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x !== 0n) b |= 0x80;
    out.push(b);
  } while (x !== 0n);
  return out;
}

function field(num: number, wire: number, payload: number[]): number[] {
  return [...varintBytes((num << 3) | wire), ...payload];
}

function lenField(num: number, bytes: number[] | Uint8Array): number[] {
  return field(num, 2, [...varintBytes(bytes.length), ...bytes]);
}

/** Encodes a SentencePiece ModelProto (only the fields parseSentencePieceModel reads). */
export function encodeSentencePieceModel(m: SentencePieceModel): Uint8Array {
  const enc = new TextEncoder();
  const out: number[] = [];
  for (const p of m.pieces) {
    const f = new Uint8Array(4);
    new DataView(f.buffer).setFloat32(0, p.score, true);
    out.push(...lenField(1, [...lenField(1, enc.encode(p.piece)), ...field(2, 5, [...f]), ...field(3, 0, varintBytes(p.type))]));
  }
  out.push(
    ...lenField(2, [
      ...field(3, 0, varintBytes(m.modelType)),
      ...field(35, 0, varintBytes(m.byteFallback ? 1 : 0)),
      ...field(40, 0, varintBytes(m.unkId)),
      ...field(41, 0, varintBytes(m.bosId)),
      ...field(42, 0, varintBytes(m.eosId)),
    ]),
  );
  out.push(
    ...lenField(3, [
      ...(m.precompiledCharsmap ? lenField(2, m.precompiledCharsmap) : []),
      ...field(3, 0, varintBytes(m.addDummyPrefix ? 1 : 0)),
      ...field(4, 0, varintBytes(m.removeExtraWhitespaces ? 1 : 0)),
    ]),
  );
  return Uint8Array.from(out);
}
