/**
 * The stages of src/ as floors: a folder may import from the floors below it, never from
 * above, and no two folders import each other, directly or around a cycle. Read from the
 * import statements of every source file, so a wrong import fails here, not in review.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const SRC = path.resolve(__dirname, '..', '..', 'src');

/** What each folder must not import (folder names under src/). */
const FORBIDDEN: Record<string, string[]> = {
  runtime: ['model', 'gradients', 'attribution'],
  model: ['gradients', 'attribution'],
  gradients: ['attribution'],
  eval: ['model'],
  viz: ['model'],
  dda: ['model'],
  attribution: ['experiments'],
};

interface ImportEdge {
  file: string;
  from: string;
  to: string;
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** The top-level folder of a file under src/ ('.' for files directly in src/). */
function folderOf(file: string): string {
  const rel = path.relative(SRC, file).split(path.sep);
  return rel.length > 1 ? rel[0] : '.';
}

/** Every relative import, export-from, dynamic import and require.resolve of the sources, as folder edges. */
function importEdges(): ImportEdge[] {
  const edges: ImportEdge[] = [];
  const spec = /(?:\bfrom\s+|\bimport\s*\(\s*|\brequire(?:\.resolve)?\s*\(\s*)['"](\.{1,2}\/[^'"]*)['"]/g;
  for (const file of sourceFiles(SRC)) {
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(spec)) {
      const target = path.resolve(path.dirname(file), m[1]);
      if (!target.startsWith(SRC)) continue;
      edges.push({ file: path.relative(SRC, file), from: folderOf(file), to: folderOf(target + (fs.existsSync(target) && fs.statSync(target).isDirectory() ? '/index.ts' : '.ts')) });
    }
  }
  return edges;
}

/** A cycle in the folder graph (as a list of folders, first = last), or null. */
function findCycle(edges: Map<string, Set<string>>): string[] | null {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): string[] | null => {
    state.set(n, 'open');
    stack.push(n);
    for (const m of edges.get(n) ?? []) {
      if (state.get(m) === 'open') return [...stack.slice(stack.indexOf(m)), m];
      if (!state.has(m)) {
        const c = visit(m);
        if (c) return c;
      }
    }
    stack.pop();
    state.set(n, 'done');
    return null;
  };
  for (const n of edges.keys()) {
    if (!state.has(n)) {
      const c = visit(n);
      if (c) return c;
    }
  }
  return null;
}

describe('architecture: the stages as floors', () => {
  const edges = importEdges();

  it('reads the imports of every stage', () => {
    const folders = new Set(edges.map((e) => e.from));
    for (const f of ['runtime', 'io', 'data', 'model', 'gradients', 'attribution', 'dda', 'eval', 'viz', 'train', 'experiments', 'cli']) {
      assert.ok(folders.has(f), `no imports read from src/${f}`);
    }
    assert.ok(edges.some((e) => e.from === 'gradients' && e.to === 'model'), 'the gradients stage imports the model');
  });

  for (const [folder, forbidden] of Object.entries(FORBIDDEN)) {
    it(`${folder}/ imports nothing of ${forbidden.join(', ')}`, () => {
      const bad = edges.filter((e) => e.from === folder && forbidden.includes(e.to));
      assert.deepEqual(bad.map((e) => `${e.file} -> ${e.to}/`), []);
    });
  }

  it('has no import cycle between folders (the package index aside)', () => {
    const graph = new Map<string, Set<string>>();
    for (const e of edges) {
      // src/index.ts is the public barrel: it imports every stage and nothing imports it.
      if (e.from === e.to || e.file === 'index.ts') continue;
      if (!graph.has(e.from)) graph.set(e.from, new Set());
      graph.get(e.from)!.add(e.to);
    }
    assert.equal(findCycle(graph)?.join(' -> ') ?? null, null);
  });

  it('finds a cycle when there is one (the check itself)', () => {
    assert.deepEqual(findCycle(new Map([['a', new Set(['b'])], ['b', new Set(['c'])], ['c', new Set(['a'])]])), ['a', 'b', 'c', 'a']);
    assert.equal(findCycle(new Map([['a', new Set(['b'])], ['b', new Set(['c'])]])), null);
  });
});
