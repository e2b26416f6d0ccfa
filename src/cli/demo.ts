/**
 * `tda-lab demo`: a small end-to-end run on the bundled reference checkpoint: load the
 * model and adapter, compute per-example losses and LoRA gradients, print a table.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SafetensorsFile } from '../io/safetensors';
import { runGrads } from './grads';
import { formatTable } from './table';

/** The reference checkpoint shipped with the package (HF layout + PEFT adapter). */
export const DEMO_MODEL_DIR = path.join(__dirname, '..', '..', 'test', 'fixtures', 'llama-tiny');

export async function runDemo(log: (line: string) => void = console.log): Promise<void> {
  const expected = JSON.parse(fs.readFileSync(path.join(DEMO_MODEL_DIR, 'expected.json'), 'utf8'));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tda-demo-'));
  try {
    const data = path.join(work, 'examples.jsonl');
    const lines = (expected.input_ids as number[][]).map((ids, j) => JSON.stringify({ input_ids: ids, prompt_length: expected.prompt_lengths[j] }));
    fs.writeFileSync(data, lines.join('\n') + '\n');
    const out = path.join(work, 'grads.safetensors');
    log(`model:   ${DEMO_MODEL_DIR}`);
    log(`adapter: ${path.join(DEMO_MODEL_DIR, 'adapter')}`);
    const summary = await runGrads({ model: DEMO_MODEL_DIR, adapter: path.join(DEMO_MODEL_DIR, 'adapter'), data, out, progress: false });
    const grads = SafetensorsFile.open(out);
    const keys = grads.names().filter((k) => k !== 'loss');
    const n = summary.examples;
    const flat: Float32Array[] = Array.from({ length: n }, () => new Float32Array(0));
    const rows = [];
    for (let j = 0; j < n; j++) {
      const parts = keys.map((k) => {
        const all = grads.readFloat32(k);
        const per = all.length / n;
        return all.subarray(j * per, (j + 1) * per);
      });
      const joined = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
      let o = 0;
      for (const p of parts) {
        joined.set(p, o);
        o += p.length;
      }
      flat[j] = joined;
      rows.push({
        example: j,
        tokens: expected.input_ids[j].length,
        response_tokens: expected.input_ids[j].length - expected.prompt_lengths[j],
        loss: summary.losses[j],
        reference_loss: expected.example_losses[j],
        grad_norm: Math.hypot(...joined),
      });
    }
    grads.close();
    log('\nPer-example loss (response tokens) and LoRA gradient norm');
    log(formatTable(rows));
    const cos = (a: Float32Array, b: Float32Array) => {
      let d = 0;
      a.forEach((v, i) => (d += v * b[i]));
      return d / (Math.hypot(...a) * Math.hypot(...b));
    };
    log('\nGradient cosine similarity between examples (the simplest influence score)');
    log(formatTable(flat.map((a, i) => Object.fromEntries([['example', i], ...flat.map((b, j) => [`ex${j}`, cos(a, b)])]))));
    log(`\n${summary.tensors} LoRA tensors per example, ${summary.seconds.toFixed(2)} s`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
