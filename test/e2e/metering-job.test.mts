// The hourly metering job end to end: templates/2-metering-job.bicep deployed into the sandbox
// with the az stand-in (as the README tells a user), this repository registered as the job's
// image (the sandbox's `az acr build`), then executions started by hand and by the schedule on the
// sandbox clock. The replica runs the real `node scripts/2-emit-meter.mts --file <usage.csv>`
// with the file ledger in this test's data directory and signs in as the JOB's user-assigned
// identity through the sandbox's managed identity endpoint. Checked against the sandbox's state:
// events, tokens, role assignments, executions and their exit codes.
import { spawn } from "node:child_process";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ROLE } from "../../sandbox/core/state.mts";
import { tsRunner } from "../../sandbox/core/runtime.mts";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { describe, ROOT, runScript, sandboxEnv } from "../helpers/scripts.mts";
import { arm } from "../helpers/arm.mts";
import { isvCredential } from "../helpers/realclients.mts";
import { Buffer } from "node:buffer";
import { BlobServiceClient } from "@azure/storage-blob";
import { blobLedgerStore } from "../../lib/audit/blob-store.mts";
import { loadLedger } from "../../lib/metering/submission.mts";
import type { AuditRecord } from "../../lib/audit/log.mts";
import { hourBack, isoHour } from "../helpers/hours.mts";
import { connectCustomer, readAudit, roleAssignmentsOf } from "../helpers/workflow.mts";

const sb = await startTestSandbox();
const env = await sandboxEnv(sb);
const customer = sb.world.customers[0];
await connectCustomer(env, customer);
const config = JSON.parse(await readFile(join(env.METERING_DATA_DIR, "config.json"), "utf8"));
const RG = String(config.publisher.resourceGroup);
const RG_ID = `/subscriptions/${sb.world.isv.subscriptionId}/resourceGroups/${RG}`;
const vaultName = String(config.publisher.optional.keyVaultName);
const storageName = String(config.publisher.optional.storageAccountName);
const IMAGE = "meteringacr.azurecr.io/metering:1";
const API = "api-version=2025-01-01";
const METERING_AUDIENCE = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7";

/** `az …` as a user who sourced the sandbox's env runs it: the stand-in first on PATH. */
function az(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    const child = spawn("az", args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "", stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", rej);
    child.on("close", (code) => res({ code, stdout, stderr }));
  });
}

const usageFile = async (name: string, hour: number, quantities: number[]) => {
  const lines = ["subscription,managed-resource-group,dimension,quantity,effective-start-time",
    ...quantities.map((q, i) => `${customer.subscriptionId},${customer.managedResourceGroup},${customer.dimensions[i]},${q},${isoHour(hour)}`)];
  const path = join(env.METERING_DATA_DIR, "..", `${Date.now()}-${name}`);
  await writeFile(path, lines.join("\n") + "\n");
  return path;
};

/** The template with the file ledger in this test's data directory unless `params` say otherwise (later ones win, as in az). */
async function deploy(params: string[]) {
  const r = await az(["deployment", "group", "create", "-g", RG, "-f", "templates/2-metering-job.bicep", "-p", `image=${IMAGE}`,
    `keyVaultName=${vaultName}`, `storageAccountName=${storageName}`, `dataDir=${env.METERING_DATA_DIR}`, "ledger=file", ...params, "-o", "json"]);
  assert.is(r.code, 0, `az deployment group create: ${r.stderr}`);
  return JSON.parse(r.stdout).properties.outputs as Record<string, { value: string }>;
}

interface AdminExecution {
  name: string;
  status: string;
  trigger: string;
  replicas: Array<{ exitCode: number | null; stdout: string; stderr: string }>;
}
const events = () => admin<Array<{ resourceId: string; dimension: string; quantity: number; effectiveStartTime: string }>>(sb, "GET", "/metering/events");

async function finished(job: string, execution: string, timeoutMs = 120_000): Promise<{ status: string; admin: AdminExecution }> {
  const t0 = Date.now();
  for (;;) {
    const r = await arm(sb, "GET", `${RG_ID}/providers/Microsoft.App/jobs/${job}/executions/${execution}?${API}`);
    assert.is(r.status, 200, r.text);
    if (r.json.properties.status !== "Running") {
      const all = await admin<AdminExecution[]>(sb, "GET", `/container-apps/executions?job=${job}`);
      return { status: r.json.properties.status, admin: all.find((e) => e.name === execution)! };
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`${execution} still running after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
const replicaText = (ex: AdminExecution) => ex.replicas.map((r) => `exit ${r.exitCode}\n${r.stdout}\n${r.stderr}`).join("\n---\n");

// The sandbox's `az acr build`: this repository is the image, and its `node` the runtime these tests run on.
await admin(sb, "POST", "/container-images", { image: IMAGE, workdir: ROOT, node: tsRunner() });

const J = suite("the metering job (templates/2-metering-job.bicep)");
let outputs: Record<string, { value: string }>;
const firstFile = await usageFile("job-usage.csv", hourBack(2), [3, 5]);

J("deploys with the az stand-in: environment, job, identity and its roles as the template says", async () => {
  outputs = await deploy([`emitArgs=${JSON.stringify(["--file", firstFile])}`]);
  const job = await arm(sb, "GET", `${RG_ID}/providers/Microsoft.App/jobs/metering-job?${API}`);
  assert.is(job.status, 200, job.text);
  const p = job.json.properties;
  assert.is(p.environmentId, outputs.environmentId.value);
  assert.equal(p.configuration.scheduleTriggerConfig, { cronExpression: "7 * * * *", parallelism: 1, replicaCompletionCount: 1 });
  assert.is(p.configuration.replicaRetryLimit, 1);
  assert.is(p.configuration.replicaTimeout, 1800);
  const container = p.template.containers[0];
  assert.equal(container.command, ["node", "scripts/2-emit-meter.mts"]);
  assert.equal(container.args, ["--file", firstFile]);
  const envOf = Object.fromEntries(container.env.map((e: { name: string; value: string }) => [e.name, e.value]));
  assert.is(envOf.AZURE_CLIENT_ID, outputs.identityClientId.value);
  assert.is(envOf.AZURE_TOKEN_CREDENTIALS, "ManagedIdentityCredential");
  assert.is(envOf.METERING_DATA_DIR, env.METERING_DATA_DIR);
  assert.is(envOf.METERING_LEDGER, "file");
  assert.equal(Object.keys(job.json.identity.userAssignedIdentities), [outputs.identityId.value]);
  const roles = roleAssignmentsOf(sb, outputs.identityPrincipalId.value);
  const vaultId = sb.state.ofType("Microsoft.KeyVault/vaults").find((v) => v.name === vaultName)!.id;
  assert.ok(roles.some((r) => r.scope === vaultId && r.roleId === ROLE.KeyVaultCryptoUser), "Key Vault Crypto User on the signing vault");
  for (const c of ["ledger", "usage"]) {
    assert.ok(roles.some((r) => r.scope.endsWith(`/blobServices/default/containers/${c}`) && r.roleId === "ba92f5b4-2d11-453d-a403-e96b0029c9fe"), `Storage Blob Data Contributor on ${c}`);
  }
});

J("a started execution runs 2-emit-meter as the job's identity: Succeeded, exit 0, the events accepted once, signed in Key Vault with the job's token", async () => {
  const before = (await admin<Array<unknown>>(sb, "GET", "/tokens")).length;
  // As the README says: `az rest` (the stand-in) posts the start.
  const s = await az(["rest", "--method", "post", "--url", `/subscriptions/{subscriptionId}/resourceGroups/${RG}/providers/Microsoft.App/jobs/metering-job/start?${API}`, "--body", "{}"]);
  assert.is(s.code, 0, s.stderr);
  const started = JSON.parse(s.stdout) as { name: string; id: string };
  assert.match(started.name, /^metering-job-[a-z0-9]{7}$/);
  const { status, admin: ex } = await finished("metering-job", started.name);
  assert.is(status, "Succeeded", replicaText(ex));
  assert.is(ex.replicas.length, 1);
  assert.is(ex.replicas[0].exitCode, 0);
  const evs = await events();
  assert.equal(evs.map((e) => [e.dimension, e.quantity]).sort(), [[customer.dimensions[0], 3], [customer.dimensions[1], 5]]);
  assert.ok(evs.every((e) => e.resourceId === customer.resourceUsageId && Date.parse(e.effectiveStartTime) === hourBack(2)));
  const issued = (await admin<Array<{ oid: string; aud: string; grant: string; assertion?: { kid: string } }>>(sb, "GET", "/tokens")).slice(before);
  const principal = outputs.identityPrincipalId.value;
  assert.ok(issued.some((t) => t.oid === principal && t.aud.startsWith("https://vault.azure.net") && t.grant === "container-apps-job"), "Key Vault token of the job's UAMI from the job's identity endpoint");
  const vaultTokens = issued.filter((t) => t.aud.startsWith("https://vault.azure.net"));
  assert.equal([...new Set(vaultTokens.map((t) => t.oid))], [principal], "no one else got a Key Vault token (not the user, not the ISV's compute)");
  const federated = issued.filter((t) => t.aud === METERING_AUDIENCE);
  assert.is(federated.length, 1, "one federated token for the customer");
  assert.is(federated[0].assertion?.kid, config.publisher.idp.keyJson.kid, "its assertion signed with the ISV's Key Vault key");
  assert.ok((await readAudit(env)).records.some((r) => r.response?.status === 200), "the outcome is in the file ledger");
});

J("the schedule trigger on the sandbox clock: the next instant starts one execution; its events were sent already, none twice", async () => {
  // A cron instant five minutes ahead, so the real clock cannot reach it during the test and
  // the clock move stays within what Entra tolerates of a script's assertion times.
  const now = sb.state.now();
  const instant = Math.floor(now / 60_000) * 60_000 + 5 * 60_000;
  const minute = new Date(instant).getUTCMinutes();
  const secondFile = await usageFile("job-usage-2.csv", hourBack(3), [7]);
  await deploy([`emitArgs=${JSON.stringify(["--file", secondFile])}`, `cronExpression=${minute} * * * *`]);
  const list = async () => (await arm(sb, "GET", `${RG_ID}/providers/Microsoft.App/jobs/metering-job/executions?${API}`)).json.value as Array<{ name: string }>;
  const manual = (await list()).length;
  try {
    await admin(sb, "POST", "/clock", { offsetMs: sb.state.clockOffsetMs + (instant - now) + 2_000 });
    const t0 = Date.now();
    while ((await list()).length === manual && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 100));
    const all = await list();
    assert.is(all.length, manual + 1, "one scheduled execution");
    assert.is(all[0].name, `metering-job-${instant / 60_000}`);
    const { status, admin: ex } = await finished("metering-job", all[0].name);
    assert.is(status, "Succeeded", replicaText(ex));
    assert.is(ex.trigger, "Schedule");
    const evs = await events();
    assert.is(evs.length, 3, "the first file's two events once, the second file's one");
    assert.ok(evs.some((e) => e.quantity === 7 && Date.parse(e.effectiveStartTime) === hourBack(3)));
  } finally {
    await admin(sb, "POST", "/clock", { offsetMs: 0 });
  }
});

J("a job whose identity lacks Key Vault Crypto User fails its execution: exit 1, Failed, nothing sent", async () => {
  const file = await usageFile("job-usage-3.csv", hourBack(4), [9]);
  const out = await deploy([
    "jobName=metering-job-norole", "identityName=metering-job-norole-id", "environmentName=metering-env",
    "grantSigningRole=false", "replicaRetryLimit=0", `emitArgs=${JSON.stringify(["--file", file])}`,
  ]);
  assert.not.ok(roleAssignmentsOf(sb, out.identityPrincipalId.value).some((r) => r.roleId === ROLE.KeyVaultCryptoUser));
  const before = (await events()).length;
  const tokensBefore = (await admin<Array<unknown>>(sb, "GET", "/tokens")).length;
  const s = await arm(sb, "POST", `${RG_ID}/providers/Microsoft.App/jobs/metering-job-norole/start?${API}`, {});
  const { status, admin: ex } = await finished("metering-job-norole", s.json.name);
  assert.is(status, "Failed", replicaText(ex));
  assert.equal(ex.replicas.map((r) => r.exitCode), [1]);
  assert.match(ex.replicas[0].stderr, /Key Vault Crypto User/);
  assert.is((await events()).length, before);
  const issued = (await admin<Array<{ oid: string; aud: string; grant: string }>>(sb, "GET", "/tokens")).slice(tokensBefore);
  assert.ok(issued.some((t) => t.oid === out.identityPrincipalId.value && t.aud.startsWith("https://vault.azure.net") && t.grant === "container-apps-job"),
    "it did sign in as its identity: the vault refused it");
  assert.not.ok(issued.some((t) => t.aud === METERING_AUDIENCE), "no metering token without a signed assertion");
});

J("with the template's default ledger, the replica's records go to append blobs in the ledger container", async () => {
  const file = await usageFile("job-usage-4.csv", hourBack(5), [2, 4]);
  const prefix = "job-e2e/";
  await deploy(["jobName=metering-job-blob", "ledger=blob", `ledgerPrefix=${prefix}`, `emitArgs=${JSON.stringify(["--file", file])}`]);
  const job = await arm(sb, "GET", `${RG_ID}/providers/Microsoft.App/jobs/metering-job-blob?${API}`);
  const ledgerEnv = job.json.properties.template.containers[0].env.find((e: { name: string }) => e.name === "METERING_LEDGER").value as string;
  const account = await arm(sb, "GET", `${RG_ID}/providers/Microsoft.Storage/storageAccounts/${storageName}?api-version=2025-06-01`);
  const blobEndpoint = account.json.properties.primaryEndpoints.blob as string;
  assert.is(ledgerEnv, `blob:${blobEndpoint}ledger/${prefix}`);
  const before = (await events()).length;
  const s = await arm(sb, "POST", `${RG_ID}/providers/Microsoft.App/jobs/metering-job-blob/start?${API}`, {});
  const { status, admin: ex } = await finished("metering-job-blob", s.json.name);
  assert.is(status, "Succeeded", replicaText(ex));
  const evs = await events();
  assert.is(evs.length, before + 2);
  const records: AuditRecord[] = [];
  await blobLedgerStore({ blobEndpoint, container: "ledger", prefix, credential: isvCredential(sb) }).scan({ onRecord: (r) => records.push(r) });
  const sent = records.filter((r) => r.operation.endsWith(".intent"));
  assert.ok(sent.length >= 1, "the intents are in the blob ledger");
  assert.ok(records.some((r) => r.response?.status === 200), "and their outcomes");
  const hour = new Date(hourBack(5)).toISOString().slice(0, 13);
  assert.ok(sent.some((r) => JSON.stringify(r).includes(hour)), "intents of this hour's events");
  assert.not.ok((await readAudit(env)).text.includes(hour), "nothing of this hour in the local audit.jsonl");
});

J("every hour by itself: two scheduled executions of 4 replicas over files dropped into the usage container bill exactly the files' events; the blob ledger agrees; each file recorded once", async () => {
  for (const c of sb.world.customers.slice(1)) await connectCustomer(env, c);
  const account = await arm(sb, "GET", `${RG_ID}/providers/Microsoft.Storage/storageAccounts/${storageName}?api-version=2025-06-01`);
  const blobEndpoint = account.json.properties.primaryEndpoints.blob as string;
  const usage = new BlobServiceClient(blobEndpoint, isvCredential(sb)).getContainerClient("usage");
  await usage.createIfNotExists();
  const intended = new Map<string, number>();
  /** A file of every customer's dimensions for `hour`, dropped under drop/. */
  const drop = async (name: string, hour: number, base: number) => {
    const lines = ["subscription,managed-resource-group,dimension,quantity,effective-start-time"];
    sb.world.customers.forEach((c, ci) => c.dimensions.forEach((d, di) => {
      const q = base + ci * 10 + di;
      intended.set(`${c.resourceUsageId}|${d}|${isoHour(hour)}`, q);
      lines.push(`${c.subscriptionId},${c.managedResourceGroup},${d},${q},${isoHour(hour)}`);
    }));
    const text = `${lines.join("\n")}\n`;
    await usage.getBlockBlobClient(`drop/${name}`).upload(text, Buffer.byteLength(text));
  };
  await drop("a.csv", hourBack(6), 100);
  await drop("b.csv", hourBack(7), 200);
  // Two cron instants a minute apart, two to three minutes ahead (the real clock does not reach
  // them during the test), so the clock moves less than the 5 minutes tokens are back-dated by:
  // Azurite checks a token's nbf on the real clock.
  const now = sb.state.now();
  const first = Math.floor(now / 60_000) * 60_000 + 3 * 60_000;
  const minutes = [first, first + 60_000].map((t) => new Date(t).getUTCMinutes());
  const prefix = "hourly/";
  // The replicas have no data directory of their own: config.json reaches them through the ledger.
  const jobDataDir = await mkdtemp(join(tmpdir(), "metering-job-replica-"));
  const localConfig = await readFile(join(env.METERING_DATA_DIR, "config.json"), "utf8");
  const pushed = await runScript("0-ledger.mts", ["push-config", "--json"], { env: { ...env, METERING_LEDGER: `blob:${blobEndpoint}ledger/${prefix}` } });
  assert.is(pushed.code, 0, describe(pushed));
  await deploy([
    "jobName=metering-hourly", "ledger=blob", `ledgerPrefix=${prefix}`, "parallelism=4", `cronExpression=${minutes.join(",")} * * * *`, `dataDir=${jobDataDir}`,
    `emitArgs=${JSON.stringify(["--from", "blob:usage/drop/", "--shards", "8"])}`,
  ]);
  const executions = async () => (await arm(sb, "GET", `${RG_ID}/providers/Microsoft.App/jobs/metering-hourly/executions?${API}`)).json.value as Array<{ name: string }>;
  const mine = (await events()).length;
  try {
    for (const [i, instant] of [first, first + 60_000].entries()) {
      if (i === 1) await drop("c.csv", hourBack(8), 300);
      await admin(sb, "POST", "/clock", { offsetMs: sb.state.clockOffsetMs + (instant - sb.state.now()) + 2_000 });
      const t0 = Date.now();
      while ((await executions()).length === i && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 100));
      const all = await executions();
      assert.is(all.length, i + 1, "one scheduled execution per instant");
      const { status, admin: ex } = await finished("metering-hourly", all[0].name, 300_000);
      assert.is(status, "Succeeded", replicaText(ex));
      assert.is(ex.trigger, "Schedule");
      assert.equal(ex.replicas.map((r) => r.exitCode), [0, 0, 0, 0], replicaText(ex));
    }
  } finally {
    await admin(sb, "POST", "/clock", { offsetMs: 0 });
  }
  const billed = (await events()).slice(mine).map((e) => [`${e.resourceId}|${e.dimension}|${e.effectiveStartTime.replace(/\.\d+Z$/, "Z")}`, e.quantity] as const);
  assert.is(new Set(billed.map(([k]) => k)).size, billed.length, "no event twice");
  assert.equal(new Map(billed), intended, "exactly the files' events");
  const store = blobLedgerStore({ blobEndpoint, container: "ledger", prefix, credential: isvCredential(sb) });
  const records: AuditRecord[] = [];
  await store.scan({ onRecord: (r) => records.push(r) });
  const { ledger } = await loadLedger({ store });
  for (const [k, q] of intended) {
    const [resourceId, dimension, hour] = k.split("|");
    const entry = [...ledger.entries.values()].find((e) => e.event.resourceId === resourceId && e.event.dimension === dimension && e.event.effectiveStartTime === hour);
    assert.is(entry?.state, "accepted", k);
    assert.is(entry?.billedQuantity, q, k);
  }
  assert.is(await readFile(join(jobDataDir, "config.json"), "utf8"), localConfig, "the replicas took the pushed config.json");
  const files = records.filter((r) => r.operation === "usage.file").map((r) => String(r.name).replace(/^.*\/usage\//, ""));
  assert.equal(files.sort(), ["drop/a.csv", "drop/b.csv", "drop/c.csv"], "each file recorded once");
});

J.after(async () => {
  await sb.stop();
});
J.run();
