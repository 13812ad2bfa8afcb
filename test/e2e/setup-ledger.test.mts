// 0-isv-setup --ledger blob as processes against the sandbox with Azurite: the template makes a
// private ledger container in the issuer's storage account (there in Azurite) and Storage Blob
// Data Contributor scoped to that container for the signed-in ISV (in the ARM emulator's state);
// config.json's publisher.ledger then names it, and 2-emit-meter bills through it (the metering
// emulator's events, the ledger's append blobs). A rerun changes nothing; bad input and a ledger
// config.json already names elsewhere are refused before anything changes; a data role made by
// hand on the container is taken over, not duplicated.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ContainerClient } from "@azure/storage-blob";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { blobLedgerStore } from "../../lib/audit/blob-store.mts";
import type { AuditRecord } from "../../lib/audit/log.mts";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { grantRole, armPut } from "../helpers/arm.mts";
import { isvCredential } from "../helpers/realclients.mts";
import { describe, runScript, sandboxEnv } from "../helpers/scripts.mts";
import { readAudit, roleAssignmentsOf, runOk } from "../helpers/workflow.mts";

const BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe";
const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const sb = await startTestSandbox({ azurite: true });
const env = await sandboxEnv(sb);
const customer = sb.world.customers[0];
const userId = sb.world.isv.userObjectId;
const configPath = join(env.METERING_DATA_DIR, "config.json");
const readConfig = async () => JSON.parse(await readFile(configPath, "utf8"));
const container = (name: string) => new ContainerClient(`${sb.endpoints.blob}/${name}`, isvCredential(sb));
const ledgerRolesAt = (name: string) => roleAssignmentsOf(sb, userId).filter((r) => r.roleId === BLOB_DATA_CONTRIBUTOR && r.scope.toLowerCase().endsWith(`/blobservices/default/containers/${name}`));
const containersNamed = (name: string) => sb.state.ofType("Microsoft.Storage/storageAccounts/blobServices/containers").filter((c) => c.name === name);
/** What a refused run must leave as it was: config.json, audit.jsonl, every ARM resource. */
const snapshot = async () => ({
  config: await readFile(configPath, "utf8").catch(() => undefined),
  audit: (await readAudit(env)).text,
  resources: JSON.stringify([...sb.state.resources.values()].map((r) => [r.id, r.properties])),
});

const S = suite("0-isv-setup --ledger blob");

S.before(async () => {
  await runOk("0-add-defaults.mts", [], env);
});

S("a bad --ledger-container (or the issuer's own container) exits 2, one line, nothing written or deployed", async () => {
  const before = await snapshot();
  for (const [args, message] of [
    [["--ledger", "blob", "--ledger-container", "Ledger_1"], /^Cannot use --ledger-container "Ledger_1": a container name is 3-63 lower-case letters, digits and single hyphens/],
    [["--ledger", "blob", "--ledger-container", "public"], /^Cannot use --ledger-container "public": it is the issuer's public-read container/],
    [["--ledger-container", "ledger"], /^Cannot use --ledger-container without --ledger blob/],
    [["--ledger", "table"], /^Cannot use --ledger "table": expected file or blob/],
  ] as const) {
    const r = await runScript("0-isv-setup.mts", [...args], { env });
    assert.is(r.code, 2, describe(r));
    assert.match(r.stderr, message);
    assert.is(r.stderr.trim().split("\n").length, 2, "one line and the --help pointer");
    assert.is(r.stdout, "");
  }
  assert.equal(await snapshot(), before);
  assert.is(containersNamed("ledger").length, 0);
});

S("without --ledger, setup keeps today's behaviour: no ledger container, no publisher.ledger", async () => {
  await runOk("0-isv-setup.mts", [], env);
  assert.is((await readConfig()).publisher.ledger, undefined);
  assert.is(containersNamed("ledger").length, 0);
  assert.is(await container("ledger").exists(), false);
  assert.is(ledgerRolesAt("ledger").length, 0);
});

S("--ledger blob: a private container in the issuer's account, the data role scoped to it for the ISV, publisher.ledger in config.json, the import hint", async () => {
  const r = await runScript("0-isv-setup.mts", ["--ledger", "blob"], { env });
  assert.is(r.code, 0, describe(r));
  const cfg = await readConfig();
  const account = cfg.publisher.optional.storageAccountName as string;

  // Azurite has it, private; ARM has it in the issuer's storage account.
  assert.ok(await container("ledger").exists());
  const [arm] = containersNamed("ledger");
  assert.ok(arm, "the container is an ARM resource");
  assert.match(arm.id, new RegExp(`/providers/Microsoft\\.Storage/storageAccounts/${account}/blobServices/default/containers/ledger$`, "i"));
  assert.is(arm.properties.publicAccess, "None");

  // Storage Blob Data Contributor for the signed-in ISV, at the container and nowhere wider for the ledger.
  const roles = ledgerRolesAt("ledger");
  assert.is(roles.length, 1, JSON.stringify(roleAssignmentsOf(sb, userId)));
  assert.is(roles[0].scope.toLowerCase(), arm.id.toLowerCase());
  assert.match(roles[0].id.split("/").pop()!, GUID_RE);

  // config.json: the account is Azurite's blob endpoint URL (not Azure's public name form).
  assert.equal(cfg.publisher.ledger, { kind: "blob", account: `${sb.endpoints.blob}/`, container: "ledger" });
  assert.is(cfg.publisher.optional.containerName, "public", "the issuer container stays");
  assert.ok(r.stdout.split("\n").includes(`ledger     ${sb.endpoints.blob}/ledger/`), r.stdout);
  // Setup's own records went to audit.jsonl (the ledger then); they do not move by themselves.
  assert.match(r.stderr, /records of .*audit\.jsonl stay there; copy them into the new ledger once: node scripts\/0-ledger\.mts import/);
  const deploy = (await readAudit(env)).records.filter((x) => x.operation === "issuer.deploy").at(-1)!;
  assert.is(deploy.detail.ledgerContainerName, "ledger");

  const where = await runScript("0-ledger.mts", ["where", "--json"], { env });
  assert.is(where.code, 0, describe(where));
  assert.equal(JSON.parse(where.stdout), { kind: "blob", blobEndpoint: `${sb.endpoints.blob}/`, container: "ledger", prefix: "", where: `${sb.endpoints.blob}/ledger/` });
});

S("2-emit-meter with that ledger: the event reaches the metering emulator, its records are append blobs in the ledger container", async () => {
  await runOk("1-connect-customer.mts", [customer.subscriptionId, customer.managedResourceGroup], env);
  const localBefore = (await readAudit(env)).text;
  const before = (await admin<unknown[]>(sb, "GET", "/metering/events")).length;
  const r = await runScript("2-emit-meter.mts", [customer.subscriptionId, customer.managedResourceGroup, "1", customer.dimensions[0], "3", "--json"], { env });
  assert.is(r.code, 0, describe(r));
  const events = (await admin<Array<{ resourceId: string; dimension: string; quantity: number }>>(sb, "GET", "/metering/events")).slice(before);
  assert.equal(events.map((e) => [e.resourceId, e.dimension, e.quantity]), [[customer.resourceUsageId, customer.dimensions[0], 3]]);

  const blobs: string[] = [];
  for await (const b of container("ledger").listBlobsFlat({ prefix: "log/" })) blobs.push(b.name);
  assert.ok(blobs.length > 0, "append blobs under log/");
  // Private: no anonymous read of a ledger blob (the issuer's documents next door are public).
  const anonymous = await fetch(`${sb.endpoints.blob}/ledger/${blobs[0]}`);
  await anonymous.body?.cancel();
  assert.ok(anonymous.status === 403 || anonymous.status === 404, `anonymous read answered ${anonymous.status}`);
  assert.is((await fetch(`${(await readConfig()).publisher.idp.issuer}/.well-known/jwks.json`)).status, 200);
  const records: AuditRecord[] = [];
  await blobLedgerStore({ blobEndpoint: `${sb.endpoints.blob}/`, container: "ledger", prefix: "", credential: isvCredential(sb) }).scan({ onRecord: (x) => records.push(x) });
  const ops = records.map((x) => x.operation);
  assert.ok(ops.includes("usageEvent.intent") && ops.includes("usageEvent"), ops.join(", "));
  assert.ok(ops.includes("customer.connect"), "connect's record went to the blob ledger too");
  assert.is((await readAudit(env)).text, localBefore, "nothing more in audit.jsonl");
});

S("run again: exit 0, config.json byte for byte, one container and one assignment, no import hint", async () => {
  const config = await readFile(configPath, "utf8");
  const r = await runScript("0-isv-setup.mts", ["--ledger", "blob"], { env });
  assert.is(r.code, 0, describe(r));
  assert.is(await readFile(configPath, "utf8"), config);
  assert.is(containersNamed("ledger").length, 1);
  assert.is(ledgerRolesAt("ledger").length, 1);
  assert.not.match(r.stderr, /0-ledger\.mts import/);
  assert.ok(r.stdout.split("\n").includes(`ledger     ${sb.endpoints.blob}/ledger/ (already configured)`), r.stdout);
});

S("a publisher.ledger naming another blob ledger is refused before anything changes (exit 2); --ledger file leaves it and says so", async () => {
  const cfg = await readConfig();
  await writeFile(configPath, JSON.stringify({ ...cfg, publisher: { ...cfg.publisher, ledger: { kind: "blob", account: "contosoledger", container: "ledger", prefix: "prod/" } } }, null, 2));
  try {
    const before = await snapshot();
    for (const args of [["--ledger", "blob"], ["--ledger", "blob", "--ledger-container", "other"]]) {
      const r = await runScript("0-isv-setup.mts", args, { env });
      assert.is(r.code, 2, describe(r));
      assert.match(r.stderr, /^Cannot make .* the ledger: .*config\.json publisher\.ledger names the blob ledger https:\/\/contosoledger\.blob\.core\.windows\.net\/ledger\/prod\/ already; run without --ledger blob to keep it, or remove publisher\.ledger/);
      assert.is(r.stderr.trim().split("\n").length, 1);
    }
    assert.equal(await snapshot(), before);
    assert.is(await container("other").exists(), false);
  } finally {
    await writeFile(configPath, JSON.stringify(cfg, null, 2));
  }
  const config = await readFile(configPath, "utf8");
  const r = await runScript("0-isv-setup.mts", ["--ledger", "file"], { env });
  assert.is(r.code, 0, describe(r));
  assert.match(r.stderr, /publisher\.ledger stays the blob ledger .*\/ledger\/; setup does not move a ledger back/);
  assert.is(await readFile(configPath, "utf8"), config);
});

S("a data role someone gave by hand on the container is taken over: one assignment, its name kept", async () => {
  const cfg = await readConfig();
  const { ledger: _, ...publisher } = cfg.publisher;
  await writeFile(configPath, JSON.stringify({ ...cfg, publisher }, null, 2));
  const accountId = `/subscriptions/${cfg.publisher.subscriptionId}/resourceGroups/${cfg.publisher.resourceGroup}/providers/Microsoft.Storage/storageAccounts/${cfg.publisher.optional.storageAccountName}`;
  const containerId = `${accountId}/blobServices/default/containers/by-hand`;
  await armPut(sb, `${containerId}?api-version=2025-06-01`, { properties: { publicAccess: "None" } });
  await grantRole(sb, containerId, userId, BLOB_DATA_CONTRIBUTOR);
  const [handMade] = ledgerRolesAt("by-hand");
  assert.ok(handMade);

  const r = await runScript("0-isv-setup.mts", ["--ledger", "blob", "--ledger-container", "by-hand"], { env });
  assert.is(r.code, 0, describe(r));
  assert.equal(ledgerRolesAt("by-hand").map((x) => x.id), [handMade.id]);
  assert.equal((await readConfig()).publisher.ledger, { kind: "blob", account: `${sb.endpoints.blob}/`, container: "by-hand" });
});

S.after(() => sb.stop());
S.run();
