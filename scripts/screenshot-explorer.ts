/**
 * The README's explorer picture: a screenshot of a run folder's explorer.html in Debian's
 * headless Chromium (playwright-core, no browser download), stored as an 8-bit palette PNG
 * (the 256 most frequent colors; a page is mostly flat colors, so this keeps it small).
 *
 *   npx tsx scripts/screenshot-explorer.ts runs/<timestamp>-dda-quick docs/explorer.png [query index]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium } from 'playwright-core';
import * as zlib from 'node:zlib';
import { PNG } from 'pngjs';

/** An indexed-color PNG of an RGBA image: the 256 most frequent colors, others mapped to the nearest. */
export function palettePng(img: PNG): Buffer {
  const { width, height, data } = img;
  const key = (i: number) => (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
  const counts = new Map<number, number>();
  for (let i = 0; i < data.length; i += 4) counts.set(key(i), (counts.get(key(i)) ?? 0) + 1);
  const palette = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 256).map(([c]) => c);
  const index = new Map<number, number>(palette.map((c, i) => [c, i]));
  const nearest = (c: number): number => {
    let best = 0;
    let bestD = Infinity;
    palette.forEach((p, i) => {
      const d = ((p >> 16) - (c >> 16)) ** 2 + (((p >> 8) & 255) - ((c >> 8) & 255)) ** 2 + ((p & 255) - (c & 255)) ** 2;
      if (d < bestD) [best, bestD] = [i, d];
    });
    index.set(c, best);
    return best;
  };
  const raw = Buffer.alloc(height * (width + 1));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const c = key((y * width + x) * 4);
      raw[y * (width + 1) + 1 + x] = index.get(c) ?? nearest(c);
    }
  }
  const chunk = (type: string, body: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length);
    const tb = Buffer.concat([Buffer.from(type, 'ascii'), body]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(tb));
    return Buffer.concat([len, tb, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 3; // indexed color
  const plte = Buffer.from(palette.flatMap((c) => [c >> 16, (c >> 8) & 255, c & 255]));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('PLTE', plte),
    chunk('IDAT', zlib.deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

async function main(): Promise<void> {
  const [runDir, out, query = '0'] = process.argv.slice(2);
  if (!runDir || !out) throw new Error('usage: screenshot-explorer.ts <run dir> <out.png> [query index]');
  const file = path.resolve(runDir, 'explorer.html');
  if (!fs.existsSync(file)) throw new Error(`${file} does not exist (run tda-lab reproduce dda first)`);
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1360, height: 1180 } });
    await page.goto(`file://${file}`);
    await page.waitForSelector('.tda-explorer[data-ready="1"]');
    await page.click(`.tdx-item[data-query="${query}"]`);
    await page.waitForTimeout(500);
    const shot = PNG.sync.read(await page.screenshot({ fullPage: false }));
    fs.writeFileSync(out, palettePng(shot));
  } finally {
    await browser.close();
  }
  process.stderr.write(`wrote ${out} (${(fs.statSync(out).size / 1024).toFixed(0)} KB)\n`);
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
