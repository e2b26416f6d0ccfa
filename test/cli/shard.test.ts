import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors';
import { Rng } from '../../src/random';
import { shardRange } from '../../src/cli/shard';
import { writeGradientFile } from '../../src/gradients/file';
import { FIXTURE_DIR, tmpDir } from '../helpers/fixtures';

const BIN = path.join(__dirname, '..', '..', 'bin', 'tda-lab.js');
const cli = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });

function allTensors(file: string): Map<string, Float32Array> {
  const f = SafetensorsFile.open(file);
  const out = new Map(f.names().map((n) => [n, f.readFloat32(n)]));
  f.close();
  return out;
}

function assertIdentical(a: string, b: string): void {
  const ta = allTensors(a);
  const tb = allTensors(b);
  assert.deepEqual([...ta.keys()], [...tb.keys()]);
  for (const [name, data] of ta) assert.deepEqual(Buffer.from(data.buffer), Buffer.from(tb.get(name)!.buffer), `${name} differs`);
}

describe('sharding and merging', () => {
  it('shardRange covers every item once, aligned to the batch size', () => {
    for (const [total, count, align] of [
      [10, 3, 1],
      [103, 4, 8],
      [5, 5, 2],
      [7, 1, 4],
    ]) {
      const seen: number[] = [];
      for (let i = 0; i < count; i++) {
        const r = shardRange(total, { index: i, count }, align);
        if (r.start < total) assert.equal(r.start % align, 0);
        for (let j = r.start; j < r.end; j++) seen.push(j);
      }
      assert.deepEqual(seen, Array.from({ length: total }, (_, j) => j), `${total}/${count}/${align}`);
    }
  });

  describe('command line', function () {
    this.timeout(180000);
    let work: string;
    const adapter = path.join(FIXTURE_DIR, 'adapter');
    before(() => {
      work = tmpDir();
      const rng = new Rng(4);
      const lines = Array.from({ length: 11 }, () => {
        const len = 4 + rng.int(8);
        return JSON.stringify({ input_ids: Array.from({ length: len }, () => rng.int(97)), prompt_length: 1 + rng.int(3) });
      });
      fs.writeFileSync(path.join(work, 'data.jsonl'), lines.join('\n'));
    });
    after(() => fs.rmSync(work, { recursive: true, force: true }));
    const p = (f: string) => path.join(work, f);
    const grads = (out: string, extra: string[] = []) => {
      const r = cli(['grads', '--model', FIXTURE_DIR, '--adapter', adapter, '--data', p('data.jsonl'), '--out', p(out), '--batch-size', '2', ...extra]);
      assert.equal(r.status, 0, r.stderr);
    };

    it('grads --shard i/n then merge equals the single run exactly', () => {
      grads('all.safetensors');
      for (const i of [2, 0, 1]) grads(`g${i}.safetensors`, ['--shard', `${i}/3`]);
      const r = cli(['merge', '--out', p('merged.safetensors'), p('g2.safetensors'), p('g0.safetensors'), p('g1.safetensors')]);
      assert.equal(r.status, 0, r.stderr);
      assertIdentical(p('merged.safetensors'), p('all.safetensors'));
    });

    it('score --shard i/n then merge equals the single run exactly (DataInf)', () => {
      const base = ['score', '--method', 'dataInf', '--train', p('all.safetensors'), '--test', p('all.safetensors')];
      assert.equal(cli([...base, '--out', p('s.safetensors')]).status, 0);
      for (const i of [0, 1]) assert.equal(cli([...base, '--out', p(`s${i}.safetensors`), '--shard', `${i}/2`]).status, 0);
      const r = cli(['merge', '--out', p('smerged.safetensors'), p('s0.safetensors'), p('s1.safetensors')]);
      assert.equal(r.status, 0, r.stderr);
      assertIdentical(p('smerged.safetensors'), p('s.safetensors'));
    });

    it('score --shard i/n over more queries than one product block: merged shards equal the single run exactly (gradDot, DataInf, top-k)', () => {
      // 300 queries: blocks of 128, 128 and 44; thirds cut the first two blocks in the middle.
      const rng = new Rng(9);
      const set = (n: number) => ({
        n,
        blocks: [
          { name: 'x.lora_A.weight', shape: [3, 700], dim: 2100, data: Float32Array.from({ length: n * 2100 }, () => rng.normal()) },
          { name: 'x.lora_B.weight', shape: [40, 3], dim: 120, data: Float32Array.from({ length: n * 120 }, () => rng.normal()) },
        ],
      });
      writeGradientFile(p('train300.safetensors'), set(70), { mask: 'response' });
      writeGradientFile(p('test300.safetensors'), set(300), { mask: 'response' });
      for (const [method, extra] of [['gradDot', []], ['dataInf', []], ['gradDot', ['--top-k', '5']]] as const) {
        const base = ['score', '--method', method, '--train', p('train300.safetensors'), '--test', p('test300.safetensors'), ...extra];
        const tag = `${method}${extra.length ? '-topk' : ''}`;
        const whole = cli([...base, '--out', p(`${tag}.safetensors`)]);
        assert.equal(whole.status, 0, whole.stderr);
        for (const i of [0, 1, 2]) {
          const r = cli([...base, '--out', p(`${tag}${i}.safetensors`), '--shard', `${i}/3`]);
          assert.equal(r.status, 0, r.stderr);
        }
        const r = cli(['merge', '--out', p(`${tag}-merged.safetensors`), p(`${tag}2.safetensors`), p(`${tag}0.safetensors`), p(`${tag}1.safetensors`)]);
        assert.equal(r.status, 0, r.stderr);
        assertIdentical(p(`${tag}-merged.safetensors`), p(`${tag}.safetensors`));
      }
    });

    it('missing, duplicated or mismatched shards are errors', () => {
      const merge = (...files: string[]) => cli(['merge', '--out', p('bad.safetensors'), ...files.map(p)]);
      let r = merge('g0.safetensors', 'g2.safetensors');
      assert.equal(r.status, 1);
      assert.match(r.stderr, /missing shard 1\/3/);
      r = merge('g0.safetensors', 'g1.safetensors', 'g1.safetensors', 'g2.safetensors');
      assert.match(r.stderr, /g1\.safetensors.*shard 1\/3 is given twice/);
      grads('full0.safetensors', ['--shard', '0/3', '--mask', 'full']);
      r = merge('full0.safetensors', 'g1.safetensors', 'g2.safetensors');
      assert.match(r.stderr, /'mask' is "response" but "full"/);
      r = merge('all.safetensors');
      assert.match(r.stderr, /all\.safetensors.*is not a shard/);
      r = merge('s0.safetensors', 'g1.safetensors');
      assert.match(r.stderr, /does not belong with/);
      assert.ok(!fs.existsSync(p('bad.safetensors')));
    });
  });
});
