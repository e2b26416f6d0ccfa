/**
 * The world's word-level tokenizer: one id per word of `world.vocabulary` (sorted), after the
 * special tokens <unk>=0, <s>=1, </s>=2, <pad>=3. Every text the generators of this folder
 * produce (pretraining, bias sentences, DDA, IF-on-LLMs, LMD3) encodes without <unk>.
 */
import { TextTokenizer, tokenizerFromJson } from '../../data/tokenizer';
import { buildWordLevelTokenizerConfig, buildWordLevelTokenizerJson } from '../../data/wordTokenizer';
import { World } from './world';

/** `tokenizer.json` contents (an object; write it with JSON.stringify). */
export function worldTokenizerJson(world: World): object {
  return buildWordLevelTokenizerJson([...world.vocabulary].sort());
}

/** `tokenizer_config.json` contents. */
export function worldTokenizerConfig(): object {
  return buildWordLevelTokenizerConfig();
}

/** A ready tokenizer for the world. */
export function worldTokenizer(world: World): TextTokenizer {
  return tokenizerFromJson(worldTokenizerJson(world), buildWordLevelTokenizerConfig());
}
