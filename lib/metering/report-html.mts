// The usage report as one self-contained HTML page (4-report --format html): a chart of usage
// over time per dimension, drawn as inline SVG, and a per-customer table with totals (and
// amounts where priced). Cloud Shell users download the file and open it anywhere, so it loads
// nothing: no script, no font, no image, and a Content-Security-Policy that forbids them
// (`default-src 'none'`), so even a page edited by hand cannot reach the network. Every text
// from the ledger or config (customer, dimension, plan names) goes through `escapeHtml`.
import { quantityText, type UsageReport } from "./report.mts";

/** Text for HTML content and quoted attributes. Pure. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** Series colours (Tableau 10: distinct for colour-blind readers, readable on white). */
const COLOURS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
const CHART = { width: 960, panel: 120, gap: 36, left: 70, right: 20, top: 24, bottom: 28 };
/** Periods up to this many get a marker per point (with its figure on hover). */
const MAX_MARKED_PERIODS = 200;

const _num = (n: number) => (Math.round(n * 100) / 100).toString();

/** A round step for about `ticks` ticks up to `max`. */
function _step(max: number, ticks: number): number {
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
}

/** A period as an axis label: the hour without its year and zone, a day or month as it is. */
function _label(period: string): string {
  return /T\d\d:00Z$/.test(period) ? `${period.slice(5, 10)} ${period.slice(11, 16)}` : period;
}

/**
 * The chart: one panel per dimension (each on its own scale: dimensions count different
 * units), the sum over customers per period, on one shared time axis.
 */
function _chart(report: UsageReport): string {
  const { width, panel, gap, left, right, top, bottom } = CHART;
  const plotW = width - left - right;
  const index = new Map(report.periods.map((p, i) => [p, i]));
  const series = new Map(report.dimensions.map((d) => [d, new Array<number>(report.periods.length).fill(0)]));
  for (const c of report.cells) {
    const i = index.get(c.period);
    if (i !== undefined) series.get(c.dimension)![i] += c.quantity;
  }
  const n = report.periods.length;
  const panels = Math.max(1, series.size);
  const height = top + panels * (panel + gap) - gap + bottom;
  const x = (i: number) => left + (n <= 1 ? plotW / 2 : (i * plotW) / (n - 1));
  const parts: string[] = [];
  parts.push(`<svg id="usage-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-labelledby="chart-title">`);
  parts.push(`<title id="chart-title">Billed usage per ${report.by} and dimension, ${escapeHtml(report.since)} to ${escapeHtml(report.until)}</title>`);
  [...series.entries()].forEach(([dimension, values], k) => {
    const colour = COLOURS[k % COLOURS.length];
    const y0 = top + k * (panel + gap);
    const max = Math.max(0, ...values);
    const step = max > 0 ? _step(max, 2) : 1;
    const yMax = max > 0 ? Math.ceil(max / step) * step : 1;
    const y = (v: number) => y0 + panel - (v / yMax) * panel;
    parts.push(`<text class="panel-title" x="${left}" y="${y0 - 8}">${escapeHtml(dimension)}</text>`);
    for (let v = 0; v <= yMax + step / 2; v += step) {
      parts.push(`<line class="${v === 0 ? "axis" : "grid"}" x1="${left}" x2="${width - right}" y1="${_num(y(v))}" y2="${_num(y(v))}"/>`);
      parts.push(`<text class="tick" x="${left - 8}" y="${_num(y(v) + 4)}" text-anchor="end">${escapeHtml(quantityText(Number(v.toPrecision(12))))}</text>`);
    }
    const d = values.map((v, i) => `${i === 0 ? "M" : "L"}${_num(x(i))} ${_num(y(v))}`).join(" ");
    parts.push(`<g class="series" data-dimension="${escapeHtml(dimension)}" stroke="${colour}" fill="${colour}">`);
    parts.push(`<path d="${d}" fill="none" stroke-width="2"><title>${escapeHtml(dimension)}</title></path>`);
    if (n <= MAX_MARKED_PERIODS) {
      values.forEach((v, i) => {
        if (v > 0) parts.push(`<circle cx="${_num(x(i))}" cy="${_num(y(v))}" r="3"><title>${escapeHtml(`${dimension} ${report.periods[i]}: ${quantityText(v)}`)}</title></circle>`);
      });
    }
    parts.push(`</g>`);
  });
  const labelEvery = Math.max(1, Math.ceil(n / 8));
  for (let i = 0; i < n; i += labelEvery) {
    parts.push(`<text class="tick" x="${_num(x(i))}" y="${height - bottom + 18}" text-anchor="middle">${escapeHtml(_label(report.periods[i]))}</text>`);
  }
  parts.push(`</svg>`);
  const legend = report.dimensions.map((d, k) =>
    `<li><span class="swatch" style="background:${COLOURS[k % COLOURS.length]}"></span>${escapeHtml(d)}</li>`).join("");
  return `${parts.join("\n")}\n<ul class="legend">${legend}</ul>`;
}

function _table(report: UsageReport): string {
  const priced = report.customers.some((c) => c.lines.some((l) => l.amount !== undefined));
  const money = (amount: string | undefined, currency: string | undefined) => (amount === undefined ? "" : `${escapeHtml(currency ?? "")} ${escapeHtml(amount)}`);
  const head = `<tr><th>Customer</th><th>Plan</th><th>Dimension</th><th class="n">Quantity</th><th class="n">Events</th>${priced ? `<th class="n">Unit price</th><th class="n">Amount</th>` : ""}</tr>`;
  const body: string[] = [];
  for (const c of report.customers) {
    const who = `${c.customer.subscriptionId}/${c.customer.managedResourceGroup}`;
    c.lines.forEach((l, i) => {
      body.push(`<tr class="line">${i === 0 ? `<td class="customer" rowspan="${c.lines.length + (priced ? 1 : 0)}">${escapeHtml(who)}</td>` : ""}` +
        `<td>${escapeHtml(l.planId)}</td><td class="dimension">${escapeHtml(l.dimension)}</td><td class="n quantity">${escapeHtml(quantityText(l.quantity))}</td><td class="n">${l.count}</td>` +
        `${priced ? `<td class="n">${money(l.unitPrice, l.currency)}</td><td class="n amount">${money(l.amount, l.currency)}</td>` : ""}</tr>`);
    });
    if (priced) {
      const amounts = c.amounts.map((a) => money(a.amount, a.currency)).join("<br>");
      body.push(`<tr class="subtotal"><td colspan="5">Customer total</td><td class="n amount">${amounts || "not priced"}</td></tr>`);
    }
  }
  const cols = priced ? 7 : 5;
  const foot: string[] = [];
  for (const t of report.totals.byDimension) {
    foot.push(`<tr class="total" data-dimension="${escapeHtml(t.dimension)}"><th colspan="3" scope="row">Total ${escapeHtml(t.dimension)}</th><td class="n quantity">${escapeHtml(quantityText(t.quantity))}</td><td class="n">${t.count}</td>${priced ? "<td></td><td></td>" : ""}</tr>`);
  }
  for (const a of report.totals.amounts) {
    foot.push(`<tr class="total-amount" data-currency="${escapeHtml(a.currency)}"><th colspan="${cols - 1}" scope="row">Total amount</th><td class="n amount">${money(a.amount, a.currency)}</td></tr>`);
  }
  const empty = report.customers.length === 0 ? `<tr><td colspan="${cols}">No billed usage in this period.</td></tr>` : "";
  return `<table id="usage-table"><thead>${head}</thead><tbody>${body.join("\n")}${empty}</tbody><tfoot>${foot.join("\n")}</tfoot></table>`;
}

/**
 * The whole page. Pure: the same report gives the same bytes (`generatedAt` is the caller's).
 */
export function renderReportHtml(report: UsageReport, o: { generatedAt?: string } = {}): string {
  const notes: string[] = [];
  if (report.unresolved.count > 0) {
    notes.push(`${report.unresolved.count} event(s) of unknown fate (${escapeHtml(quantityText(report.unresolved.quantity))} in all) are not counted: run 4-reconcile, or 2-emit-meter --resend inside the 24-hour window.`);
  }
  for (const u of report.unpriced) notes.push(`No price for ${escapeHtml(u.dimension)} of plan ${escapeHtml(u.planId)} in config.json (plans.&lt;plan&gt;.dimensions.&lt;id&gt;.price): its usage has no amount.`);
  const summary = `${report.totals.count} billed event(s) for ${report.customers.length} customer(s) in ${report.dimensions.length} dimension(s)`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Metered usage ${escapeHtml(report.since)} to ${escapeHtml(report.until)}</title>
<style>
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
.meta { color: #555; margin: 0 0 12px; } .note { color: #8a4b00; margin: 4px 0; }
#usage-chart { max-width: 100%; height: auto; } #usage-chart .grid { stroke: #e5e5e5; } #usage-chart .axis { stroke: #888; }
#usage-chart .tick { font-size: 11px; fill: #555; } #usage-chart .panel-title { font-size: 13px; font-weight: 600; fill: #222; }
.legend { list-style: none; padding: 0; margin: 4px 0 0; display: flex; flex-wrap: wrap; gap: 16px; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 6px; vertical-align: -1px; border-radius: 2px; }
table { border-collapse: collapse; } th, td { padding: 4px 10px; border-bottom: 1px solid #e5e5e5; text-align: left; vertical-align: top; }
.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; } td.customer { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; max-width: 28em; }
tfoot th, tfoot td, .subtotal td { font-weight: 600; } tfoot tr:first-child th, tfoot tr:first-child td { border-top: 2px solid #888; }
</style>
</head>
<body>
<h1>Metered usage, ${escapeHtml(report.since)} to ${escapeHtml(report.until)} (UTC, per ${escapeHtml(report.by)})</h1>
<p class="meta">${summary}. From the audit log: accepted events and events settled as billed by reconciliation.${o.generatedAt ? ` Made ${escapeHtml(o.generatedAt)}.` : ""}</p>
${notes.map((n) => `<p class="note">${n}</p>`).join("\n")}
<h2>Usage over time</h2>
${_chart(report)}
<h2>Per customer</h2>
${_table(report)}
</body>
</html>
`;
}
