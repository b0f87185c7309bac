// Tokenizer of a model directory: tokenizer.json through @huggingface/tokenizers, special tokens from
// tokenizer_config.json, generation_config.json and config.json. A directory with only tokenizer.model
// (SentencePiece: InternLM, InternLM2, older Llama repos) is converted to the equivalent tokenizer.json in memory.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { ModelFormatError } from '../errors';
import { readJson } from '../io/json';
import { IncrementalDetokenizer, type DetokenizerOptions } from './detokenizer';
import { parseSentencePieceModel, sentencePieceToTokenizerJson } from './sentencepiece';

/** tokenizer.model → tokenizer.json object, with tokenizer_config.json's BOS/EOS policy and added tokens. */
export function tokenizerJsonFromSentencePiece(file: string, cfg: TokenizerConfig): object {
  const model = parseSentencePieceModel(new Uint8Array(fs.readFileSync(file)), file);
  const json = sentencePieceToTokenizerJson(model, {
    addBos: typeof cfg.add_bos_token === 'boolean' ? cfg.add_bos_token : true,
    addEos: cfg.add_eos_token === true,
  });
  const decoderMap = cfg.added_tokens_decoder as Record<string, { content?: string; special?: boolean; lstrip?: boolean; rstrip?: boolean; normalized?: boolean; single_word?: boolean }> | undefined;
  if (decoderMap) {
    const added = json.added_tokens as Array<Record<string, unknown>>;
    const vocab = (json.model as { vocab: unknown }).vocab;
    for (const [idStr, t] of Object.entries(decoderMap)) {
      const id = Number(idStr);
      if (!t?.content || added.some((a) => a.id === id)) continue;
      added.push({ id, content: t.content, single_word: !!t.single_word, lstrip: !!t.lstrip, rstrip: !!t.rstrip, normalized: !!t.normalized, special: t.special !== false });
      if (!Array.isArray(vocab) && (vocab as Record<string, number>)[t.content] === undefined) (vocab as Record<string, number>)[t.content] = id;
    }
  }
  return json;
}

export interface SpecialTokens {
  bosToken?: string;
  bosId?: number;
  eosToken?: string;
  /** Every id that ends generation: tokenizer_config's eos_token plus generation_config/config eos_token_id (may be a list). */
  eosIds: number[];
  padId?: number;
  /** Whether a plain-text prompt gets BOS prepended (tokenizer_config add_bos_token or the post-processor). */
  addBos: boolean;
}

export interface EncodeOptions {
  /** Add the tokenizer's special tokens (BOS) as its post-processor says. Default true. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Default true. */
  skipSpecialTokens?: boolean;
}

type TokenizerConfig = Record<string, unknown>;

function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

function idList(v: unknown): number[] {
  if (typeof v === 'number') return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number');
  return [];
}

export class Tokenizer {
  readonly special: SpecialTokens;
  readonly vocabSize: number;
  /** tokenizer_config.json as read ({} when absent). */
  readonly config: TokenizerConfig;
  private readonly hf: HfTokenizer;
  private readonly cleanUpSpaces: boolean;
  private readonly specialIds: Set<number>;

  constructor(tokenizerJson: object, tokenizerConfig: TokenizerConfig = {}, extra: { generationConfig?: Record<string, unknown>; modelConfig?: Record<string, unknown> } = {}) {
    this.config = tokenizerConfig;
    this.hf = new HfTokenizer(tokenizerJson, tokenizerConfig);
    this.cleanUpSpaces = tokenizerConfig.clean_up_tokenization_spaces === true;
    const added = this.hf.get_added_tokens_decoder();
    this.specialIds = new Set([...added.entries()].filter(([, t]) => t.special).map(([id]) => id));
    this.vocabSize = this.hf.get_vocab(true).size;

    const bosToken = tokenContent(tokenizerConfig.bos_token);
    const eosToken = tokenContent(tokenizerConfig.eos_token);
    const padToken = tokenContent(tokenizerConfig.pad_token);
    const gen = extra.generationConfig ?? {};
    const model = extra.modelConfig ?? {};
    const bosId = bosToken !== undefined ? this.hf.token_to_id(bosToken) : idList(gen.bos_token_id ?? model.bos_token_id)[0];
    const eos = new Set<number>();
    if (eosToken !== undefined) {
      const id = this.hf.token_to_id(eosToken);
      if (id !== undefined) eos.add(id);
    }
    for (const id of idList(gen.eos_token_id)) eos.add(id);
    if (eos.size === 0) for (const id of idList(model.eos_token_id)) eos.add(id);
    const probe = this.hf.encode('a', { add_special_tokens: true }).ids;
    const addBos =
      typeof tokenizerConfig.add_bos_token === 'boolean'
        ? tokenizerConfig.add_bos_token
        : bosId !== undefined && probe.length > 0 && probe[0] === bosId;
    this.special = {
      bosToken: bosToken ?? (bosId !== undefined ? this.hf.id_to_token(bosId) : undefined),
      bosId,
      eosToken: eosToken ?? (eos.size ? this.hf.id_to_token([...eos][0]) : undefined),
      eosIds: [...eos],
      padId: padToken !== undefined ? this.hf.token_to_id(padToken) : undefined,
      addBos,
    };
  }

  /** Loads the tokenizer of an HF model directory. */
  static fromDir(dir: string): Tokenizer {
    const abs = path.resolve(dir);
    const tjFile = path.join(abs, 'tokenizer.json');
    const spFile = path.join(abs, 'tokenizer.model');
    const tokenizerConfig = readJson<TokenizerConfig>(path.join(abs, 'tokenizer_config.json'), true) ?? {};
    let tokenizerJson: object;
    if (fs.existsSync(tjFile)) {
      tokenizerJson = readJson<object>(tjFile);
    } else if (fs.existsSync(spFile)) {
      tokenizerJson = tokenizerJsonFromSentencePiece(spFile, tokenizerConfig);
    } else {
      throw new ModelFormatError('no tokenizer found', { file: abs, expected: 'tokenizer.json or tokenizer.model', found: 'missing' });
    }
    const generationConfig = readJson(path.join(abs, 'generation_config.json'), true);
    const modelConfig = readJson(path.join(abs, 'config.json'), true);
    try {
      return new Tokenizer(tokenizerJson, tokenizerConfig, { generationConfig, modelConfig });
    } catch (e) {
      if (e instanceof ModelFormatError) throw e;
      throw new ModelFormatError(`cannot load tokenizer: ${(e as Error).message}`, { file: fs.existsSync(tjFile) ? tjFile : spFile }, { cause: e });
    }
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    return this.hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    if (ids.length === 0) return '';
    return this.hf.decode(Array.from(ids), {
      skip_special_tokens: opts.skipSpecialTokens ?? true,
      clean_up_tokenization_spaces: this.cleanUpSpaces,
    });
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  createDetokenizer(opts: DetokenizerOptions = {}): IncrementalDetokenizer {
    return new IncrementalDetokenizer((ids) => this.decode(ids, { skipSpecialTokens: opts.skipSpecialTokens ?? true }), opts);
  }
}
