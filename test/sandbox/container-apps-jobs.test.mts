// The sandbox's Container Apps jobs: Microsoft.App managed environments and jobs over ARM's REST
// API (shapes, validation errors), executions run as local processes (env, retries, timeouts,
// stop), the managed identity endpoint a replica gets (tokens for the job's identities only),
// and the schedule trigger on the sandbox clock.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { latestCronInstant, parseCron } from "../../sandbox/services/jobs/cron.mts";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { arm, armPut } from "../helpers/arm.mts";

const sb = await startTestSandbox({ azurite: false });
const SUB = sb.world.isv.subscriptionId;
const RG = `/subscriptions/${SUB}/resourceGroups/jobs-rg`;
const API = "api-version=2025-01-01";
const MSI_API = "api-version=2023-01-31";
const ENV_ID = `${RG}/providers/Microsoft.App/managedEnvironments/jobs-env`;
const IMAGE = "sandboxacr.azurecr.io/probe:1";
const work = await mkdtemp(join(tmpdir(), "aca-jobs-"));
await armPut(sb, `${RG}?api-version=2021-04-01`, { location: "westeurope" });
await admin(sb, "POST", "/container-images", { image: IMAGE, workdir: work, node: [process.execPath] });

const uami = async (name: string) => await armPut(sb, `${RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${name}?${MSI_API}`, { location: "westeurope" });
const ID_A = await uami("job-id-a");
const ID_B = await uami("job-id-b");
const OTHER = await uami("not-attached");

interface JobOpts {
  script?: string;
  command?: string[];
  image?: string;
  trigger?: "Manual" | "Schedule";
  cron?: string;
  parallelism?: number;
  completions?: number;
  retry?: number;
  timeoutS?: number;
  identities?: string[];
  env?: unknown[];
  secrets?: unknown[];
}

function jobBody(o: JobOpts = {}): Record<string, unknown> {
  const trigger = o.trigger ?? "Manual";
  const triggerConfig = { parallelism: o.parallelism ?? 1, replicaCompletionCount: o.completions ?? 1, ...(o.cron ? { cronExpression: o.cron } : {}) };
  return {
    location: "westeurope",
    ...(o.identities ? { identity: { type: "UserAssigned", userAssignedIdentities: Object.fromEntries(o.identities.map((id) => [id, {}])) } } : {}),
    properties: {
      environmentId: ENV_ID,
      configuration: {
        triggerType: trigger,
        replicaTimeout: o.timeoutS ?? 60,
        replicaRetryLimit: o.retry ?? 0,
        [trigger === "Schedule" ? "scheduleTriggerConfig" : "manualTriggerConfig"]: triggerConfig,
        ...(o.secrets ? { secrets: o.secrets } : {}),
      },
      template: {
        containers: [{
          name: "main", image: o.image ?? IMAGE,
          command: o.command ?? ["node", "-e", o.script ?? "process.exit(0)"],
          env: o.env ?? [],
          resources: { cpu: 0.5, memory: "1Gi" },
        }],
      },
    },
  };
}

const putJob = (name: string, o?: JobOpts) => arm(sb, "PUT", `${RG}/providers/Microsoft.App/jobs/${name}?${API}`, jobBody(o));
async function createJob(name: string, o?: JobOpts) {
  const r = await putJob(name, o);
  if (r.status !== 201 && r.status !== 200) throw new Error(`PUT job ${name}: ${r.status} ${r.text}`);
  return r.json;
}
const start = (name: string, body?: unknown) => arm(sb, "POST", `${RG}/providers/Microsoft.App/jobs/${name}/start?${API}`, body ?? {});
const execution = (job: string, ex: string) => arm(sb, "GET", `${RG}/providers/Microsoft.App/jobs/${job}/executions/${ex}?${API}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface AdminExecution {
  name: string;
  status: string;
  trigger: string;
  reason: string | null;
  replicas: Array<{ name: string; slot: number; attempt: number; exitCode: number | null; signal: string | null; timedOut: boolean; stdout: string; stderr: string }>;
}
const adminExecutions = (job: string) => admin<AdminExecution[]>(sb, "GET", `/container-apps/executions?job=${job}`);

/** Polls the execution over ARM until it is no longer Running. */
async function finished(job: string, ex: string, timeoutMs = 60_000): Promise<{ arm: any; admin: AdminExecution }> {
  const t0 = Date.now();
  for (;;) {
    const r = await execution(job, ex);
    assert.is(r.status, 200, r.text);
    if (r.json.properties.status !== "Running") return { arm: r.json, admin: (await adminExecutions(job)).find((e) => e.name === ex)! };
    if (Date.now() - t0 > timeoutMs) throw new Error(`execution ${ex} still running after ${timeoutMs} ms`);
    await sleep(100);
  }
}

const A = suite("Microsoft.App over ARM");

A("a managed environment: 201, then GET and the resource group's list show it", async () => {
  const r = await arm(sb, "PUT", `${ENV_ID}?${API}`, { location: "West Europe", properties: { zoneRedundant: false } });
  assert.is(r.status, 201, r.text);
  assert.is(r.json.type, "Microsoft.App/managedEnvironments");
  assert.is(r.json.location, "westeurope");
  assert.is(r.json.properties.provisioningState, "Succeeded");
  assert.match(r.json.properties.defaultDomain, /\.westeurope\.azurecontainerapps\.io$/);
  const g = await arm(sb, "GET", `${ENV_ID}?${API}`);
  assert.is(g.status, 200);
  assert.is(g.json.id, r.json.id);
  const list = await arm(sb, "GET", `${RG}/providers/Microsoft.App/managedEnvironments?${API}`);
  assert.equal(list.json.value.map((e: { name: string }) => e.name), ["jobs-env"]);
});

A("a job: the real property shapes, identities with principalId and clientId, secrets shown by name only", async () => {
  const job = await createJob("shape-job", {
    identities: [ID_A.id], trigger: "Schedule", cron: "7 * * * *", parallelism: 2, completions: 2, retry: 1,
    secrets: [{ name: "api-key", value: "s3cret" }], env: [{ name: "KEY", secretRef: "api-key" }, { name: "PLAIN", value: "x" }],
  });
  assert.is(job.type, "Microsoft.App/jobs");
  assert.is(job.properties.provisioningState, "Succeeded");
  assert.is(job.properties.environmentId, ENV_ID);
  assert.equal(job.properties.configuration.scheduleTriggerConfig, { parallelism: 2, replicaCompletionCount: 2, cronExpression: "7 * * * *" });
  assert.is(job.properties.configuration.replicaRetryLimit, 1);
  assert.equal(job.properties.configuration.secrets, [{ name: "api-key" }], "no secret value on the wire");
  assert.is(job.identity.type, "UserAssigned");
  assert.equal(job.identity.userAssignedIdentities[ID_A.id], { principalId: ID_A.properties.principalId, clientId: ID_A.properties.clientId });
  const list = await arm(sb, "GET", `${RG}/providers/Microsoft.App/jobs?${API}`);
  assert.ok(list.json.value.some((j: { name: string }) => j.name === "shape-job"));
  const subList = await arm(sb, "GET", `/subscriptions/${SUB}/providers/Microsoft.App/jobs?${API}`);
  assert.ok(subList.json.value.some((j: { name: string }) => j.name === "shape-job"));
  assert.is((await arm(sb, "DELETE", `${RG}/providers/Microsoft.App/jobs/shape-job?${API}`)).status, 200);
  assert.is((await arm(sb, "GET", `${RG}/providers/Microsoft.App/jobs/shape-job?${API}`)).status, 404);
});

A("validation errors in ARM's shape: unknown environment, missing UAMI, bad cron, bad secret name, unknown secretRef", async () => {
  const expect = async (r: Awaited<ReturnType<typeof putJob>>, status: number, code: string, text: RegExp) => {
    assert.is(r.status, status, r.text);
    assert.is(r.json.error.code, code);
    assert.match(r.json.error.message, text);
  };
  const noEnv = jobBody();
  (noEnv.properties as Record<string, unknown>).environmentId = `${RG}/providers/Microsoft.App/managedEnvironments/nope`;
  await expect(await arm(sb, "PUT", `${RG}/providers/Microsoft.App/jobs/bad-job?${API}`, noEnv), 404, "ManagedEnvironmentNotFound", /nope/);
  const missing = `${RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ghost`;
  await expect(await putJob("bad-job", { identities: [missing] }), 400, "FailedIdentityOperation", /ghost' does not exist/);
  await expect(await putJob("bad-job", { trigger: "Schedule", cron: "61 * * * *" }), 400, "JobInvalidCronExpression", /61 is outside 0-59 in the minute field/);
  await expect(await putJob("bad-job", { trigger: "Schedule", cron: "* * *" }), 400, "JobInvalidCronExpression", /expected 5 fields/);
  await expect(await putJob("bad-job", { secrets: [{ name: "Api_Key", value: "v" }] }), 400, "ContainerAppSecretInvalid", /'Api_Key'/);
  await expect(await putJob("bad-job", { env: [{ name: "K", secretRef: "absent" }] }), 400, "ContainerAppSecretRefNotFound", /'absent'/);
  await expect(await putJob("Bad_Job"), 400, "InvalidResourceName", /Bad_Job/);
  const v = await arm(sb, "PUT", `${RG}/providers/Microsoft.App/jobs/bad-job?api-version=2022-03-01`, jobBody());
  assert.is(v.status, 400);
  assert.is(v.json.error.code, "NoRegisteredProviderFound");
  assert.is((await arm(sb, "GET", `${RG}/providers/Microsoft.App/jobs/bad-job?${API}`)).status, 404, "nothing was stored");
});

A.run();

const E = suite("executions");

E("start → 202 with the execution's name, Location and id; Running, then Succeeded with the container's env", async () => {
  const probe = "console.log(JSON.stringify({job: process.env.CONTAINER_APP_JOB_NAME, ex: process.env.CONTAINER_APP_JOB_EXECUTION_NAME, " +
    "replica: process.env.CONTAINER_APP_REPLICA_NAME, key: process.env.KEY, plain: process.env.PLAIN, ie: process.env.IDENTITY_ENDPOINT, " +
    "ih: process.env.IDENTITY_HEADER, cwd: process.cwd()})); setTimeout(() => {}, 300)";
  await createJob("env-job", {
    script: probe, parallelism: 2, completions: 2,
    secrets: [{ name: "api-key", value: "s3cret" }], env: [{ name: "KEY", secretRef: "api-key" }, { name: "PLAIN", value: "x" }],
  });
  const s = await start("env-job");
  assert.is(s.status, 202, s.text);
  assert.match(s.json.name, /^env-job-[a-z0-9]{7}$/);
  assert.is(s.json.id, `${RG}/providers/Microsoft.App/jobs/env-job/executions/${s.json.name}`);
  assert.match(s.headers.get("location") ?? "", new RegExp(`/jobs/env-job/executions/${s.json.name}\\?api-version=`));
  const running = await execution("env-job", s.json.name);
  assert.is(running.json.properties.status, "Running");
  assert.ok(running.json.properties.startTime);
  const { arm: done, admin: rec } = await finished("env-job", s.json.name);
  assert.is(done.properties.status, "Succeeded");
  assert.ok(Date.parse(done.properties.endTime) >= Date.parse(done.properties.startTime));
  assert.is(rec.replicas.length, 2);
  const outs = rec.replicas.map((r) => JSON.parse(r.stdout));
  for (const [i, o] of outs.entries()) {
    assert.is(rec.replicas[i].exitCode, 0);
    assert.equal({ job: o.job, ex: o.ex, key: o.key, plain: o.plain, cwd: o.cwd }, { job: "env-job", ex: s.json.name, key: "s3cret", plain: "x", cwd: work });
    assert.is(o.replica, rec.replicas[i].name);
    assert.is(o.ie, `${sb.endpoints.managedIdentity}/msi/token`);
    assert.match(o.ih, /^[0-9a-f]{32}$/);
    assert.is.not(o.ih, sb.env.IDENTITY_HEADER, "not the ISV compute's header");
  }
  assert.is.not(outs[0].replica, outs[1].replica);
  const list = await arm(sb, "GET", `${RG}/providers/Microsoft.App/jobs/env-job/executions?${API}`);
  assert.equal(list.json.value.map((e: { name: string }) => e.name), [s.json.name]);
  assert.is(list.json.value[0].properties.status, "Succeeded");
});

E("a start override replaces the container's args; an unknown execution is 404", async () => {
  await createJob("override-job", { command: ["node", "-e", "console.log(process.argv.slice(-2).join(' '))"] });
  // The override names the container and what changes; the image stays the job's.
  const s = await start("override-job", { template: { containers: [{ name: "main", args: ["hello", "there"] }] } });
  const { admin: rec } = await finished("override-job", s.json.name);
  assert.is(rec.replicas[0].stdout.trim(), "hello there");
  assert.is((await execution("override-job", "override-job-nothere")).status, 404);
});

E("a failing replica is retried up to replicaRetryLimit, then the execution is Failed", async () => {
  await createJob("fail-job", { script: "console.error('boom'); process.exit(3)", retry: 2 });
  const s = await start("fail-job");
  const { arm: done, admin: rec } = await finished("fail-job", s.json.name);
  assert.is(done.properties.status, "Failed");
  assert.equal(rec.replicas.map((r) => [r.slot, r.attempt, r.exitCode]), [[0, 0, 3], [0, 1, 3], [0, 2, 3]]);
  assert.match(rec.replicas[0].stderr, /boom/);
});

E("a replica that fails once and then exits 0 makes the execution Succeeded", async () => {
  const counter = join(work, "tries");
  const script = `const fs = require('fs'); const n = fs.existsSync('tries') ? Number(fs.readFileSync('tries', 'utf8')) : 0; fs.writeFileSync('tries', String(n + 1)); process.exit(n === 0 ? 1 : 0)`;
  await createJob("flaky-job", { script, retry: 1 });
  const s = await start("flaky-job");
  const { arm: done, admin: rec } = await finished("flaky-job", s.json.name);
  assert.is(done.properties.status, "Succeeded");
  assert.equal(rec.replicas.map((r) => r.exitCode), [1, 0]);
  assert.is(await readFile(counter, "utf8"), "2");
  await rm(counter);
});

E("a replica past replicaTimeout is SIGKILLed and counts as failed", async () => {
  await createJob("slow-job", { script: "setTimeout(() => {}, 60000)", timeoutS: 1 });
  const t0 = Date.now();
  const s = await start("slow-job");
  const { arm: done, admin: rec } = await finished("slow-job", s.json.name);
  assert.is(done.properties.status, "Failed");
  assert.ok(Date.now() - t0 < 20_000);
  assert.is(rec.replicas[0].timedOut, true);
  assert.is(rec.replicas[0].signal, "SIGKILL");
  assert.is(rec.replicas[0].exitCode, null);
});

E("stop: the running replicas are killed and the execution is Stopped", async () => {
  await createJob("stop-job", { script: "setTimeout(() => {}, 60000)" });
  const s = await start("stop-job");
  await sleep(300);
  const r = await arm(sb, "POST", `${RG}/providers/Microsoft.App/jobs/stop-job/executions/${s.json.name}/stop?${API}`);
  assert.is(r.status, 200, r.text);
  const { arm: done, admin: rec } = await finished("stop-job", s.json.name);
  assert.is(done.properties.status, "Stopped");
  assert.is(rec.replicas[0].signal, "SIGKILL");
});

E("an image no one registered fails the execution as a pull failure would", async () => {
  await createJob("nopull-job", { image: "sandboxacr.azurecr.io/unknown:1" });
  const s = await start("nopull-job");
  const { arm: done, admin: rec } = await finished("nopull-job", s.json.name);
  assert.is(done.properties.status, "Failed");
  assert.match(rec.reason ?? "", /Failed to pull image 'sandboxacr\.azurecr\.io\/unknown:1'/);
  assert.is(rec.replicas.length, 0);
});

E.run();

const I = suite("the managed identity endpoint of a job replica");

I("tokens for the job's identities only; no selector with only UAMIs is refused", async () => {
  // The replica asks the endpoint four times and prints each answer.
  const script = `
    const ask = async (q) => {
      const r = await fetch(process.env.IDENTITY_ENDPOINT + '?api-version=2019-08-01&resource=https://vault.azure.net' + q, { headers: { 'X-IDENTITY-HEADER': process.env.IDENTITY_HEADER } });
      return { status: r.status, body: await r.json() };
    };
    (async () => console.log(JSON.stringify([
      await ask('&client_id=${ID_A.properties.clientId}'),
      await ask('&principal_id=${ID_B.properties.principalId}'),
      await ask('&client_id=${OTHER.properties.clientId}'),
      await ask(''),
    ])))();`;
  await createJob("id-job", { script, identities: [ID_A.id, ID_B.id] });
  const s = await start("id-job");
  const { arm: done, admin: rec } = await finished("id-job", s.json.name);
  assert.is(done.properties.status, "Succeeded", rec.replicas[0]?.stderr);
  const [a, b, other, none] = JSON.parse(rec.replicas[0].stdout);
  assert.is(a.status, 200);
  assert.is(a.body.client_id, ID_A.properties.clientId);
  assert.is(b.status, 200);
  assert.is(b.body.client_id, ID_B.properties.clientId);
  assert.is(other.status, 400);
  assert.is(other.body.message, "Unable to load the proper Managed Identity.");
  assert.is(none.status, 400);
  assert.match(none.body.message, /No system-assigned managed identity.*client_id/);
  const issued = await admin<Array<{ oid: string; grant: string; xms_mirid?: string }>>(sb, "GET", "/tokens");
  const jobTokens = issued.filter((t) => t.grant === "container-apps-job");
  assert.equal(jobTokens.map((t) => t.oid), [ID_A.properties.principalId, ID_B.properties.principalId]);
  assert.is(jobTokens[0].xms_mirid, ID_A.id);
});

I("the header stops working when the execution has ended", async () => {
  await createJob("hdr-job", { script: "console.log(process.env.IDENTITY_HEADER)" });
  const s = await start("hdr-job");
  const { admin: rec } = await finished("hdr-job", s.json.name);
  const header = rec.replicas[0].stdout.trim();
  const r = await fetch(`${sb.endpoints.managedIdentity}/msi/token?api-version=2019-08-01&resource=https://vault.azure.net`, { headers: { "X-IDENTITY-HEADER": header } });
  assert.is(r.status, 401);
});

I.run();

const C = suite("the schedule trigger on the sandbox clock");

C("parseCron / latestCronInstant: lists, ranges, steps, names, weekday OR day-of-month", () => {
  const s = parseCron("*/15 9-17 * JAN,MAR MON-FRI");
  assert.equal([...s.minutes], [0, 15, 30, 45]);
  assert.equal([...s.hours], [9, 10, 11, 12, 13, 14, 15, 16, 17]);
  assert.equal([...s.months], [1, 3]);
  assert.equal([...s.weekdays], [1, 2, 3, 4, 5]);
  const at = (iso: string) => Date.parse(iso);
  // Wednesday 2026-03-04 18:00 → the latest instant is 17:45 the same day.
  assert.is(latestCronInstant(s, at("2026-03-01T00:00:00Z"), at("2026-03-04T18:00:00Z")), at("2026-03-04T17:45:00Z"));
  // Saturday → back to Friday.
  assert.is(latestCronInstant(s, at("2026-03-01T00:00:00Z"), at("2026-03-07T12:00:00Z")), at("2026-03-06T17:45:00Z"));
  // February has none: back to January.
  assert.is(latestCronInstant(s, at("2025-12-01T00:00:00Z"), at("2026-02-20T12:00:00Z")), at("2026-01-30T17:45:00Z"));
  assert.is(latestCronInstant(parseCron("0 0 1 * *"), at("2026-03-02T00:00:00Z"), at("2026-03-31T00:00:00Z")), undefined);
  const either = parseCron("0 12 13 * FRI");
  assert.is(latestCronInstant(either, at("2026-03-01T00:00:00Z"), at("2026-03-13T23:00:00Z")), at("2026-03-13T12:00:00Z"));
  assert.is(latestCronInstant(either, at("2026-03-01T00:00:00Z"), at("2026-03-11T23:00:00Z")), at("2026-03-06T12:00:00Z"));
  assert.equal([...parseCron("0 0 * * 7").weekdays], [0]);
  assert.throws(() => parseCron("5-1 * * * *"), /runs backwards/);
  assert.throws(() => parseCron("*/0 * * * *"), /positive number/);
});

C("passing one instant starts one execution, named after it; a jump over several starts only the latest", async () => {
  await createJob("cron-job", { trigger: "Schedule", cron: "7 * * * *", script: "process.exit(0)" });
  await createJob("manual-job", { script: "process.exit(0)" });
  const HOUR = 3600_000;
  const now = Date.now() + sb.state.clockOffsetMs;
  // The first minute 7 of an hour after now.
  const sameHour = Math.floor(now / HOUR) * HOUR + 7 * 60_000;
  const firstInstant = sameHour > now ? sameHour : sameHour + HOUR;
  const moveTo = async (t: number) => await admin(sb, "POST", "/clock", { offsetMs: t - Date.now() });
  const names = async () => (await arm(sb, "GET", `${RG}/providers/Microsoft.App/jobs/cron-job/executions?${API}`)).json.value.map((e: { name: string }) => e.name);
  const waitFor = async (n: number) => {
    const t0 = Date.now();
    while ((await names()).length < n && Date.now() - t0 < 10_000) await sleep(100);
    await sleep(800); // a second tick must not add another
    return await names();
  };
  try {
    assert.equal(await names(), [], "nothing before the first instant");
    await moveTo(firstInstant + 5_000);
    assert.equal(await waitFor(1), [`cron-job-${firstInstant / 60_000}`]);
    // Four instants pass at once: one execution, for the last of them.
    await moveTo(firstInstant + 4 * HOUR + 5_000);
    assert.equal(await waitFor(2), [`cron-job-${(firstInstant + 4 * HOUR) / 60_000}`, `cron-job-${firstInstant / 60_000}`]);
    const all = await adminExecutions("cron-job");
    assert.ok(all.every((e) => e.trigger === "Schedule"));
    assert.equal((await arm(sb, "GET", `${RG}/providers/Microsoft.App/jobs/manual-job/executions?${API}`)).json.value, [], "a manual job never fires");
  } finally {
    await admin(sb, "POST", "/clock", { offsetMs: 0 });
  }
});

C.after(async () => {
  await sb.stop();
});
C.run();

const S = suite("stopping the sandbox");

S("kills the replicas still running; a command that does not exist fails its replica with 127", async () => {
  const sb2 = await startTestSandbox({ azurite: false });
  const rg = `/subscriptions/${sb2.world.isv.subscriptionId}/resourceGroups/stop-rg`;
  await armPut(sb2, `${rg}?api-version=2021-04-01`, { location: "westeurope" });
  await admin(sb2, "POST", "/container-images", { image: IMAGE, workdir: work, node: [process.execPath] });
  await armPut(sb2, `${rg}/providers/Microsoft.App/managedEnvironments/stop-env?${API}`, { location: "westeurope" });
  const body = (command: string[]) => {
    const b = jobBody({ command });
    (b.properties as { environmentId: string }).environmentId = `${rg}/providers/Microsoft.App/managedEnvironments/stop-env`;
    return b;
  };
  await armPut(sb2, `${rg}/providers/Microsoft.App/jobs/missing-cmd?${API}`, body(["/nonexistent/binary"]));
  const m = await arm(sb2, "POST", `${rg}/providers/Microsoft.App/jobs/missing-cmd/start?${API}`, {});
  await armPut(sb2, `${rg}/providers/Microsoft.App/jobs/long-job?${API}`, body(["node", "-e", "console.log(process.pid); setTimeout(() => {}, 120000)"]));
  const s = await arm(sb2, "POST", `${rg}/providers/Microsoft.App/jobs/long-job/start?${API}`, {});
  let pid = 0;
  for (let i = 0; i < 100 && !pid; i++) {
    await sleep(100);
    const ex = (await admin<AdminExecution[]>(sb2, "GET", "/container-apps/executions?job=long-job")).find((e) => e.name === s.json.name);
    pid = Number(ex?.replicas[0]?.stdout.trim() || 0);
  }
  assert.ok(pid > 0, "the replica started");
  const missing = (await admin<AdminExecution[]>(sb2, "GET", "/container-apps/executions?job=missing-cmd")).find((e) => e.name === m.json.name)!;
  assert.is(missing.status, "Failed");
  assert.equal(missing.replicas.map((r) => r.exitCode), [127]);
  assert.match(missing.replicas[0].stderr, /nonexistent/);
  await sb2.stop();
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  assert.is(alive(), false, `replica ${pid} outlived the sandbox`);
});

S.after(async () => {
  await rm(work, { recursive: true, force: true });
});
S.run();
