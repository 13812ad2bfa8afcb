// 4-report against the sandbox: usage billed with the real scripts, then the report's figures
// (json, csv, table) checked against the events the metering emulator recorded, summed here on
// their own; an event whose answer was lost counted apart until 4-reconcile settles it as billed; the HTML page opened in Debian's chromium (playwright-core, no browser download)
// with every request refused: the chart is drawn (one series per dimension), the table's totals
// and amount are the sandbox's, a dimension named `<script>…` is text. Skipped, with the reason
// printed, where /usr/bin/chromium is absent (.ci/run installs it as root).
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { CLOCK_PRELOAD, describe, runScript, sandboxEnv } from "../helpers/scripts.mts";
import { runOk } from "../helpers/workflow.mts";
import { testOrSkip } from "../helpers/realclients.mts";
import { loadWorldSeed } from "../../sandbox/main.mts";

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const HOUR_MS = 3_600_000;
/** A dimension id the metering API takes (only control characters are refused) and a page must show as text. */
const XSS = "<script>document.body.dataset.pwned=1</script>";
/** Prices per unit in thousandths, so the expected amount is computed in integers here. */
const PRICES_MILLI: Record<string, Record<string, number>> = { silver: { "cpu-hours": 100, "storage-gb": 25, [XSS]: 1500 }, gold: { "cpu-hours": 120, "storage-gb": 30, "api-calls": 1 } };

const seed = await loadWorldSeed();
for (const plan of seed.offers[0].plans) plan.dimensions.push(XSS);
const sb = await startTestSandbox({ seed });
const env = await sandboxEnv(sb);
const customers = seed.customers;
type Accepted = { resourceId: string; dimension: string; quantity: number; effectiveStartTime: string; planId: string };
const accepted = () => admin<Accepted[]>(sb, "GET", "/metering/events");
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const dir = await mkdtemp(join(tmpdir(), "metering-report-"));
let since = "";
let until = "";

interface Report {
  periods: string[];
  dimensions: string[];
  cells: Array<{ customer: { subscriptionId: string; managedResourceGroup: string }; dimension: string; period: string; quantity: number; count: number; amount?: string }>;
  customers: Array<{ customer: { subscriptionId: string }; resourceId: string; amounts: Array<{ currency: string; amount: string }> }>;
  totals: { byDimension: Array<{ dimension: string; quantity: number; count: number }>; quantity: number; count: number; amounts: Array<{ currency: string; amount: string }> };
}

/** What the sandbox holds as billed, summed here: per dimension (quantity, count) and the amount in thousandths. */
async function expected(only?: string) {
  const events = (await accepted()).filter((e) => only === undefined || e.resourceId === only);
  const byDimension = new Map<string, { quantity: number; count: number }>();
  // In units of 10^-5 of the currency: quantity in hundredths × price in thousandths, integers.
  let units = 0;
  for (const e of events) {
    const d = byDimension.get(e.dimension) ?? { quantity: 0, count: 0 };
    // Quantities are multiples of 0.25: a double adds them exactly.
    byDimension.set(e.dimension, { quantity: d.quantity + e.quantity, count: d.count + 1 });
    units += Math.round(e.quantity * 100) * (PRICES_MILLI[e.planId]?.[e.dimension] ?? 0);
  }
  // Exact, at least two decimals, as the report writes money.
  const [whole, fraction] = [Math.floor(units / 100_000), String(units % 100_000).padStart(5, "0").replace(/0+$/, "").padEnd(2, "0")];
  return { events, byDimension, amount: `${whole}.${fraction}` };
}

/** The quantity of the event whose answer is lost (the only storage-gb of 0.75). */
const LOST_QUANTITY = "0.75";

const R = suite("4-report");

R.before(async () => {
  await runOk("0-add-defaults.mts", [], env);
  await runOk("0-isv-setup.mts", [], env);
  for (const c of customers) await runOk("1-connect-customer.mts", [c.subscriptionId, c.managedResourceGroup], env);
  // Six hours of usage, three customers, a few dimensions each: multiples of 0.25.
  const lines = ["subscription,managed-resource-group,dimension,quantity,hours-ago"];
  customers.forEach((c, ci) => {
    for (let h = 1; h <= 6; h++) {
      lines.push(`${c.subscriptionId},${c.managedResourceGroup},cpu-hours,${(ci + 1) * 2 + h * 0.25},${h}`);
      if (h % 2 === 0) lines.push(`${c.subscriptionId},${c.managedResourceGroup},storage-gb,${40 + ci * 10 + h},${h}`);
      if (ci === 1) lines.push(`${c.subscriptionId},${c.managedResourceGroup},api-calls,${1000 * h},${h}`);
    }
  });
  lines.push(`${customers[0].subscriptionId},${customers[0].managedResourceGroup},${XSS},3,2`);
  const file = join(dir, "usage.csv");
  await writeFile(file, `${lines.join("\n")}\n`);
  const r = await runScript("2-emit-meter.mts", ["--file", file], { env });
  assert.is(r.code, 0, describe(r));
  // One more event, accepted by the API but its answer lost: open in the ledger until 4-reconcile settles it.
  await runOk("0-publisher-app.mts", ["--app-id", sb.world.offers[0].technicalConfiguration!.appId], env);
  await admin(sb, "POST", "/faults", { service: "metering", route: "/api/usageEvent", method: "POST", kind: "drop", times: -1 });
  const lostRun = await runScript("2-emit-meter.mts", [customers[2].subscriptionId, customers[2].managedResourceGroup, "3", "storage-gb", LOST_QUANTITY], { env });
  await admin(sb, "DELETE", "/faults");
  assert.is(lostRun.code, 1, describe(lostRun));
  // Prices, as a person would add them to config.json.
  const path = join(env.METERING_DATA_DIR, "config.json");
  const cfg = JSON.parse(await readFile(path, "utf8"));
  const price = (m: number) => String(m / 1000);
  cfg.plans = Object.fromEntries(Object.entries(PRICES_MILLI).map(([plan, dims]) =>
    [plan, { currency: "USD", dimensions: Object.fromEntries(Object.entries(dims).map(([d, m]) => [d, { price: price(m) }])) }]));
  await writeFile(path, JSON.stringify(cfg, null, 2));
  const now = Date.now();
  since = day(now - 7 * HOUR_MS);
  until = day(now);
});

R("refuses bad input with exit 2 and writes nothing", async () => {
  const out = join(dir, "never.html");
  for (const args of [["--by", "week"], ["--since", "2026-02-30"], ["--since", "2026-12-02", "--until", "2026-12-01"], ["--format", "pdf"], ["--customer", "not-a-guid/mrg"],
    ["--customer", customers[0].subscriptionId], ["--json", "--format", "csv"], ["--since", "2000-01-01", "--until", "2026-01-01", "--by", "hour"], ["--bogus"],
    ["--out", join(dir, "no-such-dir", "r.html")], ["--out", dir]]) {
    const r = await runScript("4-report.mts", ["--out", out, ...args], { env });
    assert.is(r.code, 2, `${args.join(" ")}\n${describe(r)}`);
    assert.is(r.stderr.trim().split("\n")[0].length > 0, true);
    assert.is(existsSync(out), false, args.join(" "));
  }
  // A bad price in config.json: one line naming the key, nothing written.
  const path = join(env.METERING_DATA_DIR, "config.json");
  const good = await readFile(path, "utf8");
  const cfg = JSON.parse(good);
  cfg.plans.silver.dimensions["cpu-hours"].price = "-1";
  await writeFile(path, JSON.stringify(cfg));
  try {
    const r = await runScript("4-report.mts", ["--out", out], { env });
    assert.is(r.code, 2, describe(r));
    assert.match(r.stderr, /^Cannot price the report: plans\.silver\.dimensions\.cpu-hours\.price: expected a price per unit/);
    assert.is(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.is(existsSync(out), false);
  } finally {
    await writeFile(path, good);
  }
});

R("an event whose answer was lost is left out (counted apart) until 4-reconcile settles it as billed", async () => {
  const before = await runScript("4-report.mts", ["--since", since, "--until", until, "--json"], { env });
  assert.is(before.code, 0, describe(before));
  const open = JSON.parse(before.stdout) as Report & { unresolved: { count: number; quantity: number } };
  assert.equal(open.unresolved, { count: 1, quantity: Number(LOST_QUANTITY) });
  const want = await expected();
  const storage = want.byDimension.get("storage-gb")!;
  assert.equal(open.totals.byDimension.find((t) => t.dimension === "storage-gb"), { dimension: "storage-gb", quantity: storage.quantity - Number(LOST_QUANTITY), count: storage.count - 1 });
  const table = await runScript("4-report.mts", ["--since", since, "--until", until], { env });
  assert.match(table.stderr, /1 event\(s\) of unknown fate are not counted: run 4-reconcile/);

  // A day later (both clocks), past the API's window: reconciliation finds it at Microsoft.
  const offsetMs = 25 * HOUR_MS;
  await admin(sb, "POST", "/clock", { offsetMs });
  try {
    const rec = await runScript("4-reconcile.mts", ["--since", since, "--until", until, "--json"], { preload: [CLOCK_PRELOAD], env: { ...env, METERING_TEST_CLOCK_OFFSET_MS: String(offsetMs) } });
    assert.is(rec.code, 0, describe(rec));
    assert.equal((JSON.parse(rec.stdout) as { settlements: Array<{ billed: boolean; event: { quantity: number } }> }).settlements.map((x) => [x.event.quantity, x.billed]), [[Number(LOST_QUANTITY), true]]);
  } finally {
    await admin(sb, "POST", "/clock", { offsetMs: 0 });
  }
  const after = JSON.parse((await runScript("4-report.mts", ["--since", since, "--until", until, "--json"], { env })).stdout) as Report & { unresolved: { count: number } };
  assert.is(after.unresolved.count, 0);
  assert.equal(after.totals.byDimension.find((t) => t.dimension === "storage-gb"), { dimension: "storage-gb", ...storage });
});

R("--json: every dimension's total, the events and the amount are the sandbox's", async () => {
  const r = await runScript("4-report.mts", ["--since", since, "--until", until, "--by", "hour", "--json"], { env });
  assert.is(r.code, 0, describe(r));
  const report = JSON.parse(r.stdout) as Report;
  const want = await expected();
  assert.equal(report.totals.byDimension.map((t) => [t.dimension, t.quantity, t.count]), [...want.byDimension.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([d, t]) => [d, t.quantity, t.count]));
  assert.is(report.totals.count, want.events.length);
  assert.equal(report.totals.amounts, [{ currency: "USD", amount: want.amount }]);
  assert.ok(report.periods.length >= 7, "every hour of the period is a period");
  // The cells add up to the totals, and each names a period of the report.
  const periods = new Set(report.periods);
  assert.is(report.cells.every((c) => periods.has(c.period)), true);
  assert.is(report.cells.reduce((n, c) => n + c.count, 0), want.events.length);
});

R("--customer, --format csv and the table: one customer's figures", async () => {
  const c = customers[1];
  const want = await expected(c.app.resourceUsageId);
  const r = await runScript("4-report.mts", ["--since", since, "--until", until, "--customer", `${c.subscriptionId}/${c.managedResourceGroup}`, "--format", "csv"], { env });
  assert.is(r.code, 0, describe(r));
  const rows = r.stdout.trim().split("\r\n").slice(1).map((l) => l.split(","));
  assert.ok(rows.length > 0);
  assert.is(rows.every((row) => row[0] === c.subscriptionId), true);
  const sums = new Map<string, number>();
  for (const row of rows) sums.set(row[4], (sums.get(row[4]) ?? 0) + Number(row[6]));
  assert.equal([...sums.entries()].sort(), [...want.byDimension.entries()].map(([d, t]) => [d, t.quantity]).sort());
  const table = await runScript("4-report.mts", ["--since", since, "--until", until, "--customer", `${c.subscriptionId}/${c.managedResourceGroup}`], { env });
  assert.is(table.code, 0, describe(table));
  assert.match(table.stdout, new RegExp(`Total amount: USD ${want.amount.replace(".", "\\.")}\\n`));
  for (const line of table.stdout.split("\n")) assert.ok(line.length <= 80, line);
});

testOrSkip(R, import.meta.filename ?? "report.test.mts", existsSync(CHROMIUM) ? undefined : `${CHROMIUM} not found (Debian package chromium; .ci/run installs it as root)`,
  "--format html: what a person sees in chromium, with no request leaving the page", async () => {
    const out = join(dir, "report.html");
    const r = await runScript("4-report.mts", ["--since", since, "--until", until, "--by", "hour", "--format", "html", "--out", out], { env });
    assert.is(r.code, 0, describe(r));
    const want = await expected();
    const { chromium } = await import("playwright-core");
    const profile = await mkdtemp(join(tmpdir(), "metering-chromium-"));
    const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, offline: true, viewport: { width: 1040, height: 900 } });
    try {
      const url = new URL(`file://${out}`).href;
      const requests: string[] = [];
      context.on("request", (req) => {
        if (req.url() !== url) requests.push(req.url());
      });
      await context.route("**/*", (route) => route.request().url() === url ? route.continue() : route.abort());
      const page = await context.newPage();
      await page.goto(url, { waitUntil: "load" });

      // The chart: drawn, one series per dimension billed, each a line of non-zero width.
      const chart = await page.locator("#usage-chart").boundingBox();
      assert.ok(chart && chart.width > 100 && chart.height > 100, JSON.stringify(chart));
      const groups = page.locator("#usage-chart g.series");
      const series: Array<{ dimension: string | null; width: number; points: number }> = [];
      for (let i = 0; i < await groups.count(); i++) {
        const g = groups.nth(i);
        const box = await g.locator("path").boundingBox();
        series.push({ dimension: await g.getAttribute("data-dimension"), width: box?.width ?? 0, points: await g.locator("circle").count() });
      }
      assert.equal(series.map((s) => s.dimension).sort(), [...want.byDimension.keys()].sort());
      for (const s of series) assert.ok(s.width > 0 && s.points > 0, JSON.stringify(s));

      // The table's totals: per dimension quantity and events, and the amount, as the sandbox holds them.
      const rows = page.locator("#usage-table tfoot tr.total");
      const totals: Array<{ label: string; quantity: string; count: string }> = [];
      for (let i = 0; i < await rows.count(); i++) {
        const [label, quantity, count] = (await rows.nth(i).locator("th, td").allInnerTexts()).map((t) => t.trim());
        totals.push({ label, quantity, count });
      }
      assert.equal(totals.map((t) => [t.label, Number(t.quantity), Number(t.count)]).sort(),
        [...want.byDimension.entries()].map(([d, t]) => [`Total ${d}`, t.quantity, t.count]).sort());
      assert.is((await page.locator("#usage-table tfoot tr.total-amount td.amount").innerText()).trim(), `USD ${want.amount}`);
      assert.is(await page.locator("#usage-table tbody td.customer").count(), customers.length);

      // The `<script>` dimension is text in the table and the legend; nothing ran, no script element exists.
      assert.ok(await page.locator("#usage-table td.dimension", { hasText: XSS }).count() >= 1);
      assert.ok((await page.locator(".legend").innerText()).includes(XSS));
      assert.is(await page.locator("script").count(), 0);
      assert.is(await page.locator("body").getAttribute("data-pwned"), null);
      assert.equal(requests, [], "no request left the page");

      const shot = process.env.REPORT_SCREENSHOT ?? join(dir, "report.png");
      await page.screenshot({ path: shot, fullPage: true });
      assert.ok((await readFile(shot)).subarray(1, 4).toString() === "PNG");
    } finally {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    }
  });

R.after(async () => {
  await sb.stop();
  await rm(dir, { recursive: true, force: true });
});
R.run();
