// The shared ledger 0-isv-setup configures (lib/audit/ledger-setup.mts): the container name it
// accepts, the publisher.ledger value it writes for a blob endpoint (read back by parseLedgerSpec
// as the same endpoint), what it does with a ledger a config already names, and the check for
// records left in a local audit.jsonl.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { blobLedgerConfig, checkLedgerContainer, DEFAULT_LEDGER_CONTAINER, hasLocalRecords, ledgerAccountOf, planLedgerConfig } from "../../lib/audit/ledger-setup.mts";
import { parseLedgerSpec } from "../../lib/audit/store.mts";
import { LedgerConflictError, UsageError } from "../../lib/core/errors.mts";
import { exitCodeFor } from "../../lib/cli/command.mts";

const refusal = (fn: () => unknown): Error => {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  assert.unreachable("expected a refusal");
  throw new Error("unreachable");
};

const C = suite("checkLedgerContainer()");
C("a container name passes and is returned; the default is one", () => {
  assert.is(checkLedgerContainer({ container: DEFAULT_LEDGER_CONTAINER }), "ledger");
  assert.is(checkLedgerContainer({ container: "prod-ledger-01", issuerContainers: ["public", "issuer"] }), "prod-ledger-01");
  assert.is(checkLedgerContainer({ container: "a".repeat(63) }), "a".repeat(63));
});
C("not a container name: UsageError naming the flag and the rule, one line", () => {
  for (const bad of ["ab", "a".repeat(64), "Ledger", "led--ger", "-ledger", "ledger-", "led_ger", "led ger", ""]) {
    const e = refusal(() => checkLedgerContainer({ container: bad }));
    assert.instance(e, UsageError, bad);
    assert.is(e.message, `Cannot use --ledger-container ${JSON.stringify(bad)}: a container name is 3-63 lower-case letters, digits and single hyphens, starting and ending with a letter or digit`);
  }
});
C("the issuer's public-read container is refused: the ledger's records would be readable by anyone", () => {
  const e = refusal(() => checkLedgerContainer({ container: "public", issuerContainers: ["public"] }));
  assert.instance(e, UsageError);
  assert.match(e.message, /^Cannot use --ledger-container "public": it is the issuer's public-read container; choose another name \(default "ledger"\)$/);
  assert.instance(refusal(() => checkLedgerContainer({ container: "issuer", issuerContainers: ["public", "issuer"] })), UsageError);
});
C.run();

const A = suite("ledgerAccountOf() / blobLedgerConfig()");
A("Azure's public blob endpoint is the account name; any other endpoint is the URL itself", () => {
  assert.is(ledgerAccountOf("https://contosoledger.blob.core.windows.net/"), "contosoledger");
  assert.is(ledgerAccountOf("https://contosoledger.blob.core.windows.net"), "contosoledger");
  assert.is(ledgerAccountOf("https://contosoledger.blob.core.usgovcloudapi.net/"), "https://contosoledger.blob.core.usgovcloudapi.net/");
  assert.is(ledgerAccountOf("https://127.0.0.1:10000/devstoreaccount1"), "https://127.0.0.1:10000/devstoreaccount1/");
  assert.is(ledgerAccountOf("https://localhost:10000/devstoreaccount1/"), "https://localhost:10000/devstoreaccount1/");
  assert.is(ledgerAccountOf("https://my-proxy.example/acct/"), "https://my-proxy.example/acct/");
});
A("the config value reads back as a ledger at the very endpoint and container it was made from", () => {
  for (const blobEndpoint of ["https://contosoledger.blob.core.windows.net/", "https://acct.blob.core.chinacloudapi.cn/", "https://127.0.0.1:41234/devstoreaccount1/"]) {
    const value = blobLedgerConfig({ blobEndpoint, container: "ledger" });
    assert.equal(Object.keys(value), ["kind", "account", "container"]);
    assert.equal(parseLedgerSpec(value, "x"), { kind: "blob", blobEndpoint, container: "ledger", prefix: "" });
  }
  assert.equal(blobLedgerConfig({ blobEndpoint: "https://contosoledger.blob.core.windows.net/", container: "ledger" }), { kind: "blob", account: "contosoledger", container: "ledger" });
});
A.run();

const P = suite("planLedgerConfig()");
const ENDPOINT = "https://idpabc.blob.core.windows.net/";
P("no ledger, or the local file: set", () => {
  assert.is(planLedgerConfig({ current: undefined, blobEndpoint: ENDPOINT, container: "ledger", path: "config.json" }), "set");
  assert.is(planLedgerConfig({ current: { kind: "file" }, blobEndpoint: undefined, container: "ledger", path: "config.json" }), "set");
});
P("the same container of the same account (by name or URL, any prefix or shards): keep", () => {
  assert.is(planLedgerConfig({ current: { kind: "blob", account: "idpabc", container: "ledger" }, blobEndpoint: ENDPOINT, container: "ledger", path: "c" }), "keep");
  assert.is(planLedgerConfig({ current: { kind: "blob", account: ENDPOINT, container: "ledger", prefix: "prod/", shards: 8 }, blobEndpoint: "https://idpabc.blob.core.windows.net", container: "ledger", path: "c" }), "keep");
});
P("another blob ledger (other container, other account, or an account not there yet): LedgerConflictError, exit 2, saying what to do", () => {
  const current = { kind: "blob", account: "contosoledger", container: "ledger", prefix: "prod" };
  for (const [blobEndpoint, container] of [[ENDPOINT, "ledger"], ["https://contosoledger.blob.core.windows.net/", "other"], [undefined, "ledger"]] as const) {
    const e = refusal(() => planLedgerConfig({ current, blobEndpoint, container, path: "/d/config.json" }));
    assert.instance(e, LedgerConflictError);
    assert.is(exitCodeFor(e), 2);
    assert.is((e as LedgerConflictError).path, "/d/config.json");
    assert.match(e.message, /^Cannot make .+ the ledger: \/d\/config\.json publisher\.ledger names the blob ledger https:\/\/contosoledger\.blob\.core\.windows\.net\/ledger\/prod\/ already; run without --ledger blob to keep it, or remove publisher\.ledger from config\.json first to switch \(its records stay there\)$/);
    assert.not.match(e.message, /\n/);
  }
  const e = refusal(() => planLedgerConfig({ current, blobEndpoint: undefined, container: "ledger", path: "c" }));
  assert.match(e.message, /^Cannot make container ledger of the issuer's storage account the ledger:/);
});
P("a publisher.ledger that does not parse is the usual UsageError", () => {
  assert.instance(refusal(() => planLedgerConfig({ current: { kind: "tape" }, blobEndpoint: ENDPOINT, container: "ledger", path: "c" })), UsageError);
});
P.run();

const H = suite("hasLocalRecords()");
H("no file or an empty one: false; anything in it: true", async () => {
  const dir = await mkdtemp(join(tmpdir(), "ledger-setup-"));
  try {
    const path = join(dir, "audit.jsonl");
    assert.is(await hasLocalRecords(path), false);
    await writeFile(path, "");
    assert.is(await hasLocalRecords(path), false);
    await writeFile(path, `{"time":"2026-12-01T00:00:00.000Z","operation":"issuer.deploy"}\n`);
    assert.is(await hasLocalRecords(path), true);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
H.run();
