import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadTokenizer, tokenizerFromJson } from '../../src/data/tokenizer';
import { buildWordLevelTokenizerConfig, buildWordLevelTokenizerJson } from '../../src/data/wordTokenizer';
import { tempDirs, throwsTda, writeJson } from '../helpers/errors';

const WORDS = ['the', 'cat', 'sat', 'on', 'mat', '.', 'a', 'dog'];
// ids: <unk>=0 <s>=1 </s>=2 <pad>=3, then the words from 4
const ID = (w: string) => 4 + WORDS.indexOf(w);

describe('tokenizer (word-level tokenizer.json through @huggingface/tokenizers)', () => {
  const tmp = tempDirs();
  afterEach(() => tmp.cleanup());

  function writeTokenizer(config: object | null = buildWordLevelTokenizerConfig()): string {
    const dir = tmp.make();
    writeJson(path.join(dir, 'tokenizer.json'), buildWordLevelTokenizerJson(WORDS));
    if (config) writeJson(path.join(dir, 'tokenizer_config.json'), config);
    return dir;
  }

  it('encodes with a leading <s>, maps unknown words to <unk>, and decodes back', () => {
    const tok = loadTokenizer(writeTokenizer());
    assert.deepEqual([tok.bosId, tok.eosId, tok.padId, tok.vocabSize], [1, 2, 3, 4 + WORDS.length]);
    const ids = tok.encode('the cat sat on the mat.');
    assert.deepEqual(ids, [1, ID('the'), ID('cat'), ID('sat'), ID('on'), ID('the'), ID('mat'), ID('.')]);
    assert.deepEqual(tok.encode('a  dog', { addSpecialTokens: false }), [ID('a'), ID('dog')]);
    assert.deepEqual(tok.encode('the bird', { addSpecialTokens: false }), [ID('the'), 0]);
    assert.equal(tok.decode(ids), '<s> the cat sat on the mat .');
    assert.equal(tok.decode(ids, { skipSpecialTokens: true }), 'the cat sat on the mat .');
    assert.equal(tok.decode([...ids, 2], { skipSpecialTokens: true }), 'the cat sat on the mat .');
    assert.equal(tok.decode([]), '');
    // Round trip on text made of vocabulary words.
    const text = 'a dog sat on the cat';
    assert.equal(tok.decode(tok.encode(text), { skipSpecialTokens: true }), text);
  });

  it('also accepts the tokenizer.json path', () => {
    const dir = writeTokenizer();
    assert.equal(loadTokenizer(path.join(dir, 'tokenizer.json')).eosId, 2);
  });

  it('without tokenizer_config.json falls back to well-known special tokens', () => {
    const tok = loadTokenizer(writeTokenizer(null));
    assert.deepEqual([tok.bosId, tok.eosId, tok.padId], [1, 2, 3]);
    assert.deepEqual(tok.encode('the fish', { addSpecialTokens: false }), [ID('the'), 0], 'unk from tokenizer.json');
  });

  it('respects tokenizer_config.json: null bos (Qwen2 style) and AddedToken objects', () => {
    const tok = loadTokenizer(writeTokenizer({ bos_token: null, eos_token: { __type: 'AddedToken', content: '</s>' }, pad_token: '</s>' }));
    assert.deepEqual([tok.bosId, tok.eosId, tok.padId], [null, 2, 2]);
  });

  it('errors name the file and field', () => {
    const dir = tmp.make();
    throwsTda(() => loadTokenizer(dir), path.join(dir, 'tokenizer.json'), 'not found');
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{"model": ');
    throwsTda(() => loadTokenizer(dir), path.join(dir, 'tokenizer.json'), 'JSON');
    const bad = writeTokenizer({ eos_token: '<|im_end|>' });
    throwsTda(() => loadTokenizer(bad), path.join(bad, 'tokenizer_config.json'), "'eos_token'", '<|im_end|>');
    throwsTda(() => tokenizerFromJson({ version: '1.0' }, {}, 'x/tokenizer.json'), 'x/tokenizer.json', "'model'");
  });

  it('a tokenizer without an unk token refuses out-of-vocabulary text', () => {
    const json = buildWordLevelTokenizerJson(WORDS) as { model: Record<string, unknown> };
    delete json.model.unk_token;
    const tok = tokenizerFromJson(json, {}, 't/tokenizer.json');
    assert.deepEqual(tok.encode('the cat', { addSpecialTokens: false }), [ID('the'), ID('cat')]);
    throwsTda(() => tok.encode('the bird'), 't/tokenizer.json', '"bird"', 'not in the vocabulary');
  });

  it('the word-level builder rejects words the pre-tokenizer would split, and duplicates', () => {
    throwsTda(() => buildWordLevelTokenizerJson(['two words']), "'words'", 'two words');
    throwsTda(() => buildWordLevelTokenizerJson(["don't"]), "'words'");
    throwsTda(() => buildWordLevelTokenizerJson(['cat', 'cat']), "'words'", 'duplicate');
    throwsTda(() => buildWordLevelTokenizerJson(['<s>']), "'words'");
  });
});
