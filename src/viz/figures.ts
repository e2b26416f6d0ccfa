/**
 * Plotly figure specs (plain JSON: `{data, layout}`), built once and shown either in a
 * notebook or in the self-contained HTML report.
 */

export interface Figure {
  data: Record<string, unknown>[];
  layout: Record<string, unknown>;
}

const BASE_LAYOUT = {
  template: 'plotly_white',
  font: { family: 'Inter, Helvetica, Arial, sans-serif', size: 13 },
  margin: { l: 60, r: 20, t: 50, b: 50 },
  legend: { orientation: 'h', y: -0.2 },
};

function layout(title: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...BASE_LAYOUT, title: { text: title }, ...extra };
}

/** ROC curves, one line per named curve, with the chance diagonal. */
export function rocFigure(title: string, curves: { name: string; fpr: number[]; tpr: number[]; auc?: number }[]): Figure {
  return {
    data: [
      ...curves.map((c) => ({
        type: 'scatter',
        mode: 'lines',
        name: c.auc === undefined ? c.name : `${c.name} (AUC ${c.auc.toFixed(3)})`,
        x: c.fpr,
        y: c.tpr,
        line: { shape: 'hv' },
      })),
      { type: 'scatter', mode: 'lines', name: 'chance', x: [0, 1], y: [0, 1], line: { dash: 'dot', color: '#999' }, showlegend: false },
    ],
    layout: layout(title, {
      xaxis: { title: { text: 'false positive rate' }, range: [0, 1] },
      yaxis: { title: { text: 'true positive rate' }, range: [0, 1.02] },
    }),
  };
}

/** Grouped bars: one group per category (e.g. method), one bar per series (e.g. variant), optional error bars. */
export function groupedBarFigure(
  title: string,
  categories: string[],
  series: { name: string; values: number[]; lo?: number[]; hi?: number[] }[],
  yTitle: string,
  yRange?: [number, number],
): Figure {
  return {
    data: series.map((s) => ({
      type: 'bar',
      name: s.name,
      x: categories,
      y: s.values,
      error_y:
        s.lo && s.hi
          ? { type: 'data', symmetric: false, array: s.hi.map((h, i) => h - s.values[i]), arrayminus: s.lo.map((l, i) => s.values[i] - l) }
          : undefined,
    })),
    layout: layout(title, { barmode: 'group', yaxis: { title: { text: yTitle }, range: yRange } }),
  };
}

/** Lines over an ordered x axis (e.g. AUC per checkpoint), one per series. */
export function lineFigure(title: string, x: (number | string)[], series: { name: string; values: number[] }[], xTitle: string, yTitle: string): Figure {
  return {
    data: series.map((s) => ({ type: 'scatter', mode: 'lines+markers', name: s.name, x, y: s.values })),
    layout: layout(title, { xaxis: { title: { text: xTitle } }, yaxis: { title: { text: yTitle } } }),
  };
}

/** Scatter plot with an optional fitted line y = intercept + slope * x. */
export function scatterFigure(
  title: string,
  groups: { name: string; x: number[]; y: number[]; text?: string[] }[],
  axes: { x: string; y: string },
  fit?: { slope: number; intercept: number; label: string },
): Figure {
  const data: Record<string, unknown>[] = groups.map((g) => ({ type: 'scatter', mode: 'markers', name: g.name, x: g.x, y: g.y, text: g.text, marker: { size: 8, opacity: 0.8 } }));
  if (fit) {
    const xs = groups.flatMap((g) => g.x);
    const lo = Math.min(...xs);
    const hi = Math.max(...xs);
    data.push({ type: 'scatter', mode: 'lines', name: fit.label, x: [lo, hi], y: [fit.intercept + fit.slope * lo, fit.intercept + fit.slope * hi], line: { dash: 'dash' } });
  }
  return { data, layout: layout(title, { xaxis: { title: { text: axes.x } }, yaxis: { title: { text: axes.y } } }) };
}

/** Heatmap of a matrix (e.g. scores of a few queries against training examples). */
export function heatmapFigure(title: string, z: number[][], x: string[], y: string[], colorTitle: string): Figure {
  return {
    data: [{ type: 'heatmap', z, x, y, colorscale: 'RdBu', reversescale: true, zmid: 0, colorbar: { title: { text: colorTitle } } }],
    layout: layout(title),
  };
}

/** True when a value is a figure spec plotly can render. */
export function isFigure(x: unknown): x is Figure {
  return typeof x === 'object' && x !== null && Array.isArray((x as Figure).data) && typeof (x as Figure).layout === 'object';
}
