/**
 * `tsx scripts/slurm/compare.ts merged.safetensors single.safetensors`: exits 0 when both hold
 * the same tensors with the same bytes and the same metadata apart from what merging adds
 * (`merged_from_shards`), else prints the first difference and exits 1.
 */
import { SafetensorsFile } from '../../src/io/safetensors';

const [mergedFile, singleFile] = process.argv.slice(2);
const merged = SafetensorsFile.open(mergedFile);
const single = SafetensorsFile.open(singleFile);
const fail = (why: string) => {
  process.stderr.write(`${mergedFile} differs from ${singleFile}: ${why}\n`);
  process.exit(1);
};
const names = merged.names();
if (names.join() !== single.names().join()) fail(`tensors [${names}] vs [${single.names()}]`);
for (const name of names) {
  const a = merged.info(name);
  const b = single.info(name);
  if (a.dtype !== b.dtype || a.shape.join() !== b.shape.join()) fail(`${name}: ${a.dtype} [${a.shape}] vs ${b.dtype} [${b.shape}]`);
  const x = merged.readRaw(name);
  const y = single.readRaw(name);
  if (x.length !== y.length || x.some((v, i) => v !== y[i])) fail(`${name}: the values differ`);
}
const meta = { ...merged.metadata };
delete meta.merged_from_shards;
if (JSON.stringify(Object.entries(meta).sort()) !== JSON.stringify(Object.entries(single.metadata).sort())) {
  fail(`metadata ${JSON.stringify(meta)} vs ${JSON.stringify(single.metadata)}`);
}
process.stdout.write(`${mergedFile} equals ${singleFile} bit for bit (${names.length} tensors)\n`);
