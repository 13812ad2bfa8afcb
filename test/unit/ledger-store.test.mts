// Which ledger a configuration names (lib/audit/store.mts parseLedgerSpec), and how customers
// fall into shards (lib/metering/shards.mts). Pure.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { blobEndpointOf, isContainerName, parseLedgerSpec } from "../../lib/audit/store.mts";
import { UsageError } from "../../lib/core/errors.mts";
import { rowsByShard, shardFinder, shardLockName, shardOf } from "../../lib/metering/shards.mts";
import { UsageRows } from "../../lib/metering/usage-file.mts";

const N = suite("isContainerName()");
N("Azure's rule: 3-63 lower-case letters, digits and single hyphens, a letter or digit at each end", () => {
  for (const good of ["abc", "ledger", "a-b-c", "0ledger9", "a".repeat(63)]) assert.ok(isContainerName(good), good);
  for (const bad of ["ab", "a".repeat(64), "Ledger", "a--b", "-abc", "abc-", "a_b", "a.b", "", "$web", undefined, 42]) assert.not.ok(isContainerName(bad), String(bad));
});
N.run();

const P = suite("parseLedgerSpec()");
P("nothing, or file, is the local audit.jsonl", () => {
  assert.equal(parseLedgerSpec(undefined, "x"), { kind: "file" });
  assert.equal(parseLedgerSpec("file", "x"), { kind: "file" });
  assert.equal(parseLedgerSpec({ kind: "file" }, "x"), { kind: "file" });
});
P("a blob ledger by account name: Azure's public blob endpoint; the prefix ends with a slash", () => {
  assert.equal(parseLedgerSpec({ kind: "blob", account: "contosoledger", container: "ledger", prefix: "prod" }, "x"), {
    kind: "blob", blobEndpoint: "https://contosoledger.blob.core.windows.net/", container: "ledger", prefix: "prod/",
  });
  assert.equal(parseLedgerSpec({ kind: "blob", account: "https://contosoledger.blob.core.usgovcloudapi.net", container: "ledger", shards: 8 }, "x"), {
    kind: "blob", blobEndpoint: "https://contosoledger.blob.core.usgovcloudapi.net/", container: "ledger", prefix: "", shards: 8,
  });
});
P("METERING_LEDGER text: blob:<account>/<container>[/<prefix>], or an endpoint URL with the account in its path (Azurite)", () => {
  assert.equal(parseLedgerSpec("blob:contosoledger/ledger/a/b", "x"), { kind: "blob", blobEndpoint: "https://contosoledger.blob.core.windows.net/", container: "ledger", prefix: "a/b/" });
  assert.equal(parseLedgerSpec("blob:https://contosoledger.blob.core.windows.net/ledger", "x"), { kind: "blob", blobEndpoint: "https://contosoledger.blob.core.windows.net/", container: "ledger", prefix: "" });
  assert.equal(parseLedgerSpec("blob:https://127.0.0.1:10000/devstoreaccount1/ledger/run-1/", "x"), {
    kind: "blob", blobEndpoint: "https://127.0.0.1:10000/devstoreaccount1/", container: "ledger", prefix: "run-1/",
  });
});
P("bad specs: one line naming the source and what is expected", () => {
  const refused = (value: unknown, pattern: RegExp) => {
    try {
      parseLedgerSpec(value, "config.json publisher.ledger");
      assert.unreachable(JSON.stringify(value));
    } catch (error) {
      assert.instance(error, UsageError);
      assert.match((error as Error).message, pattern);
      assert.not.match((error as Error).message, /\n/);
    }
  };
  refused({ kind: "s3" }, /^Cannot use config\.json publisher\.ledger: kind must be "file" or "blob", not "s3"$/);
  refused({ kind: "blob", container: "ledger" }, /needs "account"/);
  refused({ kind: "blob", account: "contosoledger", container: "Ledger" }, /"container" must be a container name/);
  refused({ kind: "blob", account: "contosoledger", container: "ledger", prefix: "/abs" }, /"prefix" must be a relative blob path/);
  refused({ kind: "blob", account: "contosoledger", container: "ledger", shards: 0 }, /"shards" must be a whole number from 1 to 1024/);
  refused({ kind: "blob", account: "not a name!", container: "ledger" }, /expected a storage account name .* or a blob endpoint URL/);
  refused("s3://bucket", /expected "file" or "blob:<account or blob endpoint URL>\/<container>\[\/<prefix>\]"/);
  refused([], /expected an object/);
  assert.throws(() => blobEndpointOf("ftp://x"), /a blob endpoint is an https:\/\/ URL/);
});
P.run();

const S = suite("shardOf()");
S("stable, case-insensitive, and spread over every shard", () => {
  const ref = { subscriptionId: "A5B0D1D4-1111-4222-8333-444455556666", managedResourceGroup: "MRG-Contoso" };
  const lower = { subscriptionId: ref.subscriptionId.toLowerCase(), managedResourceGroup: ref.managedResourceGroup.toLowerCase() };
  for (const n of [1, 2, 8, 1024]) assert.is(shardOf(ref, n), shardOf(lower, n));
  assert.is(shardOf(ref, 1), 0);
  const counts = new Array(8).fill(0);
  for (let i = 0; i < 800; i++) counts[shardOf({ subscriptionId: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`, managedResourceGroup: `mrg-${i}` }, 8)]++;
  for (const c of counts) assert.ok(c > 60 && c < 140, `shards of 800 customers: ${counts}`);
  assert.is(shardLockName(0, 8), "shard-1-of-8");
});
S("shardFinder answers as shardOf; rowsByShard puts each row in its customer's shard, in input order", () => {
  const customers = Array.from({ length: 40 }, (_, i) => ({ subscriptionId: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`, managedResourceGroup: `mrg-${i}` }));
  const find = shardFinder(4);
  for (const c of [...customers, ...customers]) assert.is(find(c), shardOf(c, 4));
  const rows = UsageRows.from(customers.flatMap((c, i) => ["cpu", "gpu"].map((dimension, d) => ({ line: 2 + 2 * i + d, ...c, dimension, quantity: i + 1, effectiveStartTime: "2026-12-01T10:00:00Z" }))));
  const parts = rowsByShard(rows, 4);
  assert.is(parts.length, 4);
  assert.is(parts.reduce((n, p) => n + p.length, 0), rows.length);
  parts.forEach((part, k) => {
    const lines = part.toArray().map((r) => r.line);
    assert.equal(lines, [...lines].sort((a, b) => a - b), `shard ${k} keeps input order`);
    for (const r of part) assert.is(shardOf(r, 4), k);
  });
  assert.equal(parts.flatMap((p) => p.toArray()).sort((a, b) => a.line - b.line), rows.toArray());
});
S.run();
