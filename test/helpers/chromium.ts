/**
 * Screenshots of HTML files in headless Chromium (Debian's `chromium` package, installed by
 * .ci/run), and a check that plots actually drew something.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PNG } from 'pngjs';

export function chromiumPath(): string {
  for (const p of ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome']) if (fs.existsSync(p)) return p;
  throw new Error('headless Chromium is needed for this test: apt-get install chromium (.ci/run installs it)');
}

/** Renders `htmlFile` at the given window size and returns the decoded PNG. */
export function screenshot(htmlFile: string, width = 1280, height = 2400): PNG {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tda-chromium-'));
  const out = path.join(profile, 'shot.png');
  try {
    const r = spawnSync(
      chromiumPath(),
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--hide-scrollbars',
        `--user-data-dir=${profile}`,
        `--window-size=${width},${height}`,
        '--virtual-time-budget=15000',
        `--screenshot=${out}`,
        `file://${path.resolve(htmlFile)}`,
      ],
      { encoding: 'utf8', timeout: 120000 },
    );
    if (!fs.existsSync(out)) throw new Error(`chromium wrote no screenshot (exit ${r.status}): ${r.stderr.slice(-500)}`);
    return PNG.sync.read(fs.readFileSync(out));
  } finally {
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

/** Pixels that are clearly colored (not white, grey or black text): plot traces and bars. */
export function coloredPixelShare(png: PNG, region?: { x0: number; y0: number; x1: number; y1: number }): number {
  const { width, height, data } = png;
  const r0 = region ?? { x0: 0, y0: 0, x1: width, y1: height };
  let colored = 0;
  let total = 0;
  for (let y = r0.y0; y < Math.min(r0.y1, height); y++) {
    for (let x = r0.x0; x < Math.min(r0.x1, width); x++) {
      const i = (y * width + x) * 4;
      const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
      total++;
      if (Math.max(r, g, b) - Math.min(r, g, b) > 60) colored++;
    }
  }
  return colored / total;
}
