import * as assert from 'node:assert/strict';
import { tokenizerFromJson } from '../../src/data/tokenizer';
import { buildWordLevelTokenizerConfig } from '../../src/data/wordTokenizer';
import { QUICK_WORLD_SIZES, World, biasSentences, ddaData, ifLlmData, lmd3Data, makeWorld, pretrainingCorpus, worldTokenizerJson } from '../../src/experiments/world';

/** Every text the generators make for this world (with several option settings). */
function allTexts(world: World): string[] {
  const dda = ddaData(world);
  const out: string[] = [...pretrainingCorpus(world, { extra: biasSentences(world, dda.pairs, 1) })];
  const pair = (e: { prompt: string; response: string }): void => {
    out.push(e.prompt, e.response);
  };
  dda.train.forEach((e) => out.push(e.prompt, e.response, e.trueResponse));
  dda.queries.forEach((q) => out.push(q.prompt, q.trueResponse));
  ddaData(world, { canaryCity: 'target' }).train.forEach(pair);
  const ifl = ifLlmData(world);
  ifl.classAttribution.train.forEach(pair);
  ifl.classAttribution.tests.forEach(pair);
  ifl.backdoor.train.forEach(pair);
  ifl.backdoor.tests.forEach((t) => out.push(t.prompt, t.response, t.cleanPrompt, t.cleanResponse));
  ifl.harmful.train.forEach(pair);
  ifl.harmful.tests.forEach(pair);
  Object.values(ifl.harmful.harmfulResponses).forEach((r) => out.push(...r));
  for (const diversity of ['low', 'high'] as const) {
    const l = lmd3Data(world, { diversity, k: 8, treatedFraction: 1 });
    l.treatedTrain.forEach(pair);
    l.tests.forEach(pair);
  }
  return out;
}

describe('experiments/world: vocabulary and tokenizer', () => {
  for (const [name, world] of [
    ['default', makeWorld(1)],
    ['quick', makeWorld(2, QUICK_WORLD_SIZES)],
  ] as const) {
    it(`every generated text encodes without <unk> (${name} world)`, () => {
      const tok = tokenizerFromJson(worldTokenizerJson(world), buildWordLevelTokenizerConfig());
      assert.equal(tok.vocabSize, 4 + world.vocabulary.length);
      const texts = allTexts(world);
      const seen = new Set<number>();
      for (const t of texts) {
        const ids = tok.encode(t, { addSpecialTokens: false });
        assert.ok(!ids.includes(0), `<unk> in ${JSON.stringify(t)}`);
        assert.equal(ids.length, t.split(' ').length, t); // words are space-separated in every text
        ids.forEach((id) => seen.add(id));
        assert.equal(tok.decode(ids), t);
      }
      // The vocabulary is exact: with these settings every word (trigger, code, cues...) occurs.
      const unused = world.vocabulary.filter((w, i) => !seen.has(4 + i));
      assert.deepEqual(unused, [], `${name}: vocabulary words no text uses`);
    });
  }

  it('ids follow the sorted vocabulary after the special tokens', () => {
    const world = makeWorld(2, QUICK_WORLD_SIZES);
    const json = worldTokenizerJson(world) as { model: { vocab: Record<string, number> } };
    assert.equal(json.model.vocab['<unk>'], 0);
    assert.equal(json.model.vocab['<pad>'], 3);
    world.vocabulary.forEach((w, i) => assert.equal(json.model.vocab[w], 4 + i));
  });
});
