// Tests for the az stand-in (sandbox/az/commands.mts and az.mjs) against a small fake ARM on
// 127.0.0.1 (plain HTTP): argument parsing, output shapes, errors, deployments of the real
// templates, Resource Graph paging, and @azure/identity's AzureCliCredential reading our output.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { execFile } from "node:child_process";
import { realpathSync } from "node:fs";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { AzureCliCredential } from "@azure/identity";
import { runAz, type AzContext } from "../../sandbox/az/commands.mts";
import { uniqueString } from "../../sandbox/services/arm/template/functions.mts";
import { ProviderError, TemplateDeploymentError, TemplateValidationError, deployTemplate, validateTemplate } from "../../sandbox/services/arm/template/engine.mts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const AZ_MJS = join(ROOT, "sandbox/az/az.mjs");
const ISV = { subscriptionId: "aaaaaaaa-0000-0000-0000-000000000001", name: "ISV Subscription", tenantId: "11111111-0000-0000-0000-00000000000a" };
const CUSTOMER = { subscriptionId: "bbbbbbbb-0000-0000-0000-000000000002", name: "Contoso Production", tenantId: "22222222-0000-0000-0000-00000000000b" };
const USER = { name: "isv.admin@fabrikam.example", objectId: "33333333-0000-0000-0000-00000000000c" };

// ---------------------------------------------------------------------------------------------
// A fake ARM: resource groups, generic resources (storage accounts answer 202 + Location, like
// the real provider), deployments (run by the sandbox's template engine, which puts resources
// back through this fake with the header x-engine: 1), Resource Graph with $skipToken paging.
// It records requests.

interface Recorded {
  method: string;
  path: string;
  query: Record<string, string>;
  auth?: string;
  contentType?: string;
  headers: IncomingMessage["headers"];
  body?: unknown;
}

const GRAPH_ROWS = Array.from({ length: 5 }, (_, i) => ({ id: `/subscriptions/${CUSTOMER.subscriptionId}/resourceGroups/c${i}/providers/Microsoft.Solutions/applications/app${i}`, name: `app${i}` }));

function startFakeArm(): Promise<{ server: Server; url: string; requests: Recorded[]; resources: Map<string, Record<string, unknown>> }> {
  const requests: Recorded[] = [];
  const resources = new Map<string, Record<string, unknown>>();
  const pending = new Map<string, Record<string, unknown>>();
  const deploymentOps = new Map<string, { status: string; error?: unknown }>();
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const url = new URL(req.url!, "http://x");
    const body = text ? JSON.parse(text) : undefined;
    requests.push({
      method: req.method!,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      auth: req.headers.authorization,
      contentType: req.headers["content-type"],
      headers: req.headers,
      body,
    });
    const send = (status: number, json?: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { ...(json === undefined ? {} : { "content-type": "application/json; charset=utf-8" }), ...headers });
      res.end(json === undefined ? undefined : JSON.stringify(json));
    };
    if (!req.headers.authorization?.startsWith("Bearer ")) {
      return send(401, { error: { code: "AuthenticationFailed", message: "Authentication failed. The 'Authorization' header is missing." } });
    }
    const path = url.pathname;
    const key = path.toLowerCase();
    const rg = /^\/subscriptions\/([^/]+)\/resourcegroups\/([^/]+)$/i.exec(path);
    if (path === "/providers/Microsoft.ResourceGraph/resources" && req.method === "POST") {
      const top = body.options?.$top ?? 100;
      const start = Number(body.options?.$skipToken ?? 0);
      const data = GRAPH_ROWS.slice(start, start + top);
      const next = start + top < GRAPH_ROWS.length ? String(start + top) : undefined;
      return send(200, { totalRecords: GRAPH_ROWS.length, count: data.length, resultTruncated: "false", data, ...(next ? { $skipToken: next } : {}) });
    }
    if (path.startsWith("/operations/")) {
      const done = pending.get(path);
      if (!done) return send(404, { error: { code: "NotFound", message: "No such operation." } });
      pending.delete(path);
      resources.set(String(done.id).toLowerCase(), done);
      return send(200);
    }
    const deployment = /^(\/subscriptions\/([^/]+)\/resourcegroups\/([^/]+))\/providers\/Microsoft\.Resources\/deployments\/([^/]+)(\/validate)?$/i.exec(path);
    if (path.startsWith("/deploymentops/")) {
      const status = deploymentOps.get(path);
      if (!status) return send(404, { error: { code: "NotFound", message: "No such operation." } });
      return send(200, status, status.status === "Running" ? { "Retry-After": "0" } : {});
    }
    if (deployment && (req.method === "PUT" || (req.method === "POST" && deployment[5]))) {
      const [, , sub, rgName, name] = deployment;
      const group = resources.get(`/subscriptions/${sub}/resourcegroups/${rgName}`.toLowerCase());
      if (!group) return send(404, { error: { code: "ResourceGroupNotFound", message: `Resource group '${rgName}' could not be found.` } });
      const rgIdOf = String(group.id);
      const tenantId = sub === CUSTOMER.subscriptionId ? CUSTOMER.tenantId : ISV.tenantId;
      const scope = {
        subscriptionId: sub, tenantId, resourceGroup: { id: rgIdOf, name: String(group.name), location: String(group.location) },
        deploymentName: name, deployer: { objectId: USER.objectId, tenantId }, environment: { name: "AzureCloud" },
      };
      let validated;
      try {
        validated = await validateTemplate(body.properties.template, body.properties.parameters, scope);
      } catch (e) {
        if (e instanceof TemplateValidationError) return send(400, { error: e.error });
        throw e;
      }
      const id = `${rgIdOf}/providers/Microsoft.Resources/deployments/${name}`;
      if (req.method === "POST") return send(200, { id, name, properties: { provisioningState: "Succeeded", validatedResources: validated.resources.map((r) => ({ id: r.id })) } });
      const record: Record<string, unknown> = { id, name, type: "Microsoft.Resources/deployments", properties: { mode: body.properties.mode, parameters: validated.parameters, provisioningState: "Accepted", templateHash: "1", correlationId: "c" } };
      resources.set(id.toLowerCase(), record);
      const op = `/deploymentops/${requests.length}`;
      deploymentOps.set(op, { status: "Running" });
      const self = `http://${req.headers.host}`;
      const call = async (method: string, rid: string, apiVersion: string, b?: unknown) => {
        const r = await fetch(`${self}${rid}?api-version=${apiVersion}`, {
          method, headers: { authorization: req.headers.authorization!, "content-type": "application/json", "x-engine": "1" }, body: b === undefined ? undefined : JSON.stringify(b),
        });
        const t = await r.text();
        const j = t ? JSON.parse(t) : {};
        if (r.status >= 400) throw new ProviderError(r.status, j.error);
        if (r.status === 202) {
          await fetch(r.headers.get("location")!, { headers: { authorization: req.headers.authorization!, "x-engine": "1" } });
          return call("GET", rid, apiVersion);
        }
        return j;
      };
      setTimeout(async () => {
        const props = record.properties as Record<string, unknown>;
        try {
          const result = await deployTemplate(validated, { put: (rid, v, b) => call("PUT", rid, v, b), get: (rid, v) => call("GET", rid, v) }, id);
          Object.assign(props, { provisioningState: "Succeeded", outputs: result.outputs, outputResources: result.outputResources });
          deploymentOps.set(op, { status: "Succeeded" });
        } catch (e) {
          if (!(e instanceof TemplateDeploymentError)) throw e;
          Object.assign(props, { provisioningState: "Failed", error: e.error });
          deploymentOps.set(op, { status: "Failed", error: e.error });
        }
      }, 0);
      return send(201, record, { "Azure-AsyncOperation": `${self}${op}`, "Retry-After": "0" });
    }
    if (rg) {
      const [, sub, name] = rg;
      const id = `/subscriptions/${sub}/resourceGroups/${decodeURIComponent(name)}`;
      if (req.method === "PUT") {
        const group = { id, name: decodeURIComponent(name), type: "Microsoft.Resources/resourceGroups", location: body.location, ...(body.tags ? { tags: body.tags } : {}), properties: { provisioningState: "Succeeded" } };
        resources.set(id.toLowerCase(), group);
        return send(201, group);
      }
      const group = resources.get(id.toLowerCase());
      if (!group) return send(404, { error: { code: "ResourceGroupNotFound", message: `Resource group '${decodeURIComponent(name)}' could not be found.` } });
      return send(200, group);
    }
    const inGroup = /^\/subscriptions\/([^/]+)\/resourcegroups\/([^/]+)\/providers\//i.exec(path);
    if (inGroup && !resources.has(`/subscriptions/${inGroup[1]}/resourcegroups/${inGroup[2]}`.toLowerCase())) {
      return send(404, { error: { code: "ResourceGroupNotFound", message: `Resource group '${inGroup[2]}' could not be found.` } });
    }
    if (req.method === "GET") {
      const found = resources.get(key);
      if (found) return send(200, found);
      if (/\/deployments\//i.test(path)) return send(404, { error: { code: "DeploymentNotFound", message: `Deployment '${path.split("/").pop()}' could not be found.` } });
      return send(404, { error: { code: "ResourceNotFound", message: `The Resource '${path}' under resource group was not found.` } });
    }
    if (req.method === "PUT") {
      const name = decodeURIComponent(path.split("/").pop()!);
      if (name === "taken") return send(409, { error: { code: "StorageAccountAlreadyTaken", message: "The storage account named taken is already taken." } });
      const props: Record<string, unknown> = { ...(body.properties ?? {}) };
      const out: Record<string, unknown> = { id: path, name, ...body, properties: props };
      if (/\/storageAccounts\/[^/]+$/i.test(path)) {
        props.primaryEndpoints = { blob: `https://${name}.blob.core.windows.net/`, web: `https://${name}.z6.web.core.windows.net/` };
        props.provisioningState = "Succeeded";
        const op = `/operations/${requests.length}`;
        pending.set(op, out);
        return send(202, undefined, { Location: `http://${req.headers.host}${op}`, "Retry-After": "0" });
      }
      if (/\/vaults\/[^/]+$/i.test(path)) props.vaultUri = `https://${name}.vault.azure.net/`;
      if (/\/keys\/[^/]+$/i.test(path)) {
        const vault = path.split("/")[8];
        props.keyUri = `https://${vault}.vault.azure.net/keys/${name}`;
        props.keyUriWithVersion = `https://${vault}.vault.azure.net/keys/${name}/00112233445566778899aabbccddeeff`;
      }
      if (/\/userAssignedIdentities\/[^/]+$/i.test(path)) Object.assign(props, { clientId: "client-1", principalId: "principal-1", tenantId: CUSTOMER.tenantId });
      if (/\/deployments\//i.test(path)) out.type = "Microsoft.Resources/deployments";
      props.provisioningState ??= "Succeeded";
      resources.set(key, out);
      return send(200, out);
    }
    send(405, { error: { code: "MethodNotAllowed", message: `${req.method} is not allowed.` } });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => {
    const port = (server.address() as { port: number }).port;
    resolve({ server, url: `http://127.0.0.1:${port}`, requests, resources });
  }));
}

// ---------------------------------------------------------------------------------------------
// The context the sandbox core would provide.

function fakeJwt(claims: Record<string, unknown>): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${b64({ typ: "JWT", alg: "RS256" })}.${b64(claims)}.c2lnbmF0dXJl`;
}

function makeContext(armEndpoint: string) {
  const tokenCalls: Array<{ resource: string; tenantId?: string }> = [];
  let selected = ISV.subscriptionId;
  const subscriptions = [ISV, CUSTOMER];
  const ctx: AzContext = {
    armEndpoint,
    fetch: globalThis.fetch.bind(globalThis),
    async getUserToken(o) {
      tokenCalls.push(o);
      const tenantId = o.tenantId ?? ISV.tenantId;
      if (!subscriptions.some((s) => s.tenantId === tenantId)) throw new Error(`AADSTS90002: Tenant '${tenantId}' not found.`);
      const exp = 1_900_000_000;
      return { accessToken: fakeJwt({ aud: o.resource, tid: tenantId, oid: USER.objectId, exp }), expiresOnEpochS: exp, tenantId };
    },
    account: {
      get() {
        const s = subscriptions.find((x) => x.subscriptionId === selected)!;
        return { subscriptionId: s.subscriptionId, subscriptionName: s.name, tenantId: s.tenantId, user: { name: USER.name, type: "user" } };
      },
      set(idOrName) {
        const s = subscriptions.find((x) => x.subscriptionId === idOrName || x.name === idOrName);
        if (!s) throw new Error(`The subscription of '${idOrName}' doesn't exist in cloud 'AzureCloud'.`);
        selected = s.subscriptionId;
      },
    },
    listSubscriptions: () => subscriptions.map((s) => ({ ...s })),
    findSubscription: (idOrName) => {
      const want = idOrName.toLowerCase();
      const s = subscriptions.find((x) => x.subscriptionId.toLowerCase() === want) ?? subscriptions.find((x) => x.name.toLowerCase() === want);
      return s && { ...s };
    },
  };
  return { ctx, tokenCalls, select: (id: string) => (selected = id) };
}

const arm = await startFakeArm();
const env = makeContext(arm.url);
const az = (...argv: string[]) => runAz({ argv, cwd: ROOT }, env.ctx);
const json = (r: { stdout: string }) => JSON.parse(r.stdout);
const reset = () => {
  arm.requests.length = 0;
  env.tokenCalls.length = 0;
  env.select(ISV.subscriptionId);
};

// ---------------------------------------------------------------------------------------------
const usage = suite("runAz() argument parsing");
usage.before.each(reset);

usage("unknown commands are misspelled or not recognized, exit 2", async () => {
  assert.equal(await az("foo", "bar"), { exitCode: 2, stdout: "", stderr: "ERROR: 'foo' is misspelled or not recognized by the system.\n" });
  assert.equal((await az("group", "frobnicate")).stderr, "ERROR: 'frobnicate' is misspelled or not recognized by the system.\n");
  assert.equal((await az("deployment", "group", "nope", "-g", "x")).stderr, "ERROR: 'nope' is misspelled or not recognized by the system.\n");
});

usage("missing required arguments are listed like argparse, exit 2, nothing sent", async () => {
  assert.equal(await az("group", "create"), {
    exitCode: 2,
    stdout: "",
    stderr: "ERROR: the following arguments are required: --name/--resource-group/-n/-g, --location/-l\n",
  });
  assert.equal((await az("rest", "--method", "get")).stderr, "ERROR: the following arguments are required: --url/--uri/-u\n");
  assert.equal((await az("deployment", "group", "create", "-f", "x.bicep")).stderr, "ERROR: the following arguments are required: --resource-group/-g\n");
  assert.equal(arm.requests, []);
});

usage("unrecognized arguments, bad values and unsupported options are usage errors", async () => {
  assert.equal(await az("account", "show", "--colour", "blue"), { exitCode: 2, stdout: "", stderr: "ERROR: unrecognized arguments: --colour blue\n" });
  assert.equal((await az("group", "show", "-n")).stderr, "ERROR: argument --name/--resource-group/-n/-g: expected one argument\n");
  assert.match((await az("account", "show", "-o", "xml")).stderr, /^ERROR: argument --output\/-o: invalid choice: 'xml' \(choose from 'json', /);
  assert.equal((await az("rest", "--method", "fetch", "--url", "/x")).stderr,
    "ERROR: argument --method/-m: 'fetch' is not a valid value for '--method'. Allowed values: delete, get, head, options, patch, post, put.\n");
  const whatIf = await az("deployment", "group", "create", "-g", "rg", "-f", "t.bicep", "--what-if");
  assert.equal([whatIf.exitCode, whatIf.stderr], [2, "ERROR: argument --what-if is not supported by the sandbox's az stand-in\n"]);
  const query = await az("group", "create", "-n", "never", "-l", "x", "--query", "[?");
  assert.is(query.exitCode, 2);
  assert.match(query.stderr, /^ERROR: argument --query: invalid jmespath_type value: '\[\?'/);
  assert.is((await az("group", "create", "-n", "never", "-l", "x", "-o", "yaml")).exitCode, 2);
  assert.equal(arm.requests, [], "a usage error changes nothing");
});

usage("help, version and config set", async () => {
  const bare = await az();
  assert.is(bare.exitCode, 0);
  assert.match(bare.stdout, /deployment group create/);
  assert.equal((await az("group")).exitCode, 0);
  assert.match((await az("group", "create", "--help")).stdout, /--location\/-l\s+\[Required\]/);
  assert.match((await az("--version")).stdout, /^azure-cli {25}2\.\d+\.\d+\n/);
  assert.equal(Object.keys(json(await az("version"))), ["azure-cli", "azure-cli-core", "azure-cli-telemetry", "extensions"]);
  assert.equal(await az("config", "set", "extension.use_dynamic_install=yes_without_prompt"), { exitCode: 0, stdout: "", stderr: "" });
  assert.is((await az("config", "set")).exitCode, 2);
});

usage.run();

// ---------------------------------------------------------------------------------------------
const account = suite("runAz() account");
account.before.each(reset);

account("account show prints the selected subscription as az does", async () => {
  const r = await az("account", "show");
  assert.is(r.exitCode, 0);
  assert.is(r.stdout, `${JSON.stringify({
    environmentName: "AzureCloud",
    homeTenantId: ISV.tenantId,
    id: ISV.subscriptionId,
    isDefault: true,
    managedByTenants: [],
    name: ISV.name,
    state: "Enabled",
    tenantId: ISV.tenantId,
    user: { name: USER.name, type: "user" },
  }, null, 2)}\n`);
  const other = json(await az("account", "show", "--subscription", CUSTOMER.name));
  assert.equal([other.id, other.isDefault, other.tenantId], [CUSTOMER.subscriptionId, false, CUSTOMER.tenantId]);
  assert.equal(await az("account", "show", "-s", "nope"), { exitCode: 1, stdout: "", stderr: "ERROR: Subscription 'nope' not found. Check the spelling and casing and try again.\n" });
});

account("account set selects a subscription; list shows all with isDefault", async () => {
  assert.equal(await az("account", "set", "--subscription", CUSTOMER.subscriptionId), { exitCode: 0, stdout: "", stderr: "" });
  assert.is(json(await az("account", "show")).id, CUSTOMER.subscriptionId);
  assert.equal(json(await az("account", "list")).map((s: { id: string; isDefault: boolean }) => [s.id, s.isDefault]), [[ISV.subscriptionId, false], [CUSTOMER.subscriptionId, true]]);
  assert.equal(await az("account", "set", "-s", "Nope"), { exitCode: 1, stdout: "", stderr: "ERROR: The subscription of 'Nope' doesn't exist in cloud 'AzureCloud'.\n" });
});

account("get-access-token has the shape AzureCliCredential parses", async () => {
  const r = json(await az("account", "get-access-token"));
  assert.equal(Object.keys(r), ["accessToken", "expiresOn", "expires_on", "subscription", "tenant", "tokenType"]);
  assert.is(r.expires_on, 1_900_000_000);
  assert.match(r.expiresOn, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.000000$/);
  assert.is(new Date(r.expiresOn.replace(" ", "T").slice(0, 19)).getTime(), 1_900_000_000_000, "expiresOn is local time");
  assert.equal([r.subscription, r.tenant, r.tokenType], [ISV.subscriptionId, ISV.tenantId, "Bearer"]);
  assert.equal(env.tokenCalls, [{ resource: "https://management.core.windows.net/", tenantId: ISV.tenantId }]);

  await az("account", "get-access-token", "--resource", "https://vault.azure.net");
  await az("account", "get-access-token", "--scope", "20e940b3-4c77-4b0b-9a53-9e16a1b010a7/.default", "--subscription", CUSTOMER.subscriptionId);
  const byTenant = json(await az("account", "get-access-token", "--tenant", CUSTOMER.tenantId));
  assert.not.ok("subscription" in byTenant);
  assert.is(byTenant.tenant, CUSTOMER.tenantId);
  assert.equal(env.tokenCalls.slice(1), [
    { resource: "https://vault.azure.net", tenantId: ISV.tenantId },
    { resource: "20e940b3-4c77-4b0b-9a53-9e16a1b010a7", tenantId: CUSTOMER.tenantId },
    { resource: "https://management.core.windows.net/", tenantId: CUSTOMER.tenantId },
  ]);
  const tsv = await az("account", "get-access-token", "--query", "accessToken", "-o", "tsv");
  assert.is(tsv.stdout, `${r.accessToken}\n`);
  const unknownTenant = await az("account", "get-access-token", "--tenant", "44444444-0000-0000-0000-000000000000");
  assert.equal([unknownTenant.exitCode, unknownTenant.stderr], [1, "ERROR: AADSTS90002: Tenant '44444444-0000-0000-0000-000000000000' not found.\n"]);
  assert.is((await az("account", "get-access-token", "--resource", "a", "--scope", "b")).exitCode, 1);
});

account("AzureCliCredential gets its token through az.mjs and the admin endpoint", async () => {
  const seen: Array<{ argv: string[]; cwd: string }> = [];
  const adminServer = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    seen.push(body);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(await runAz(body, env.ctx)));
  });
  await new Promise<void>((r) => adminServer.listen(0, "127.0.0.1", () => r()));
  const bin = await mkdtemp(join(tmpdir(), "az-bin-"));
  const saved = { path: process.env.PATH, admin: process.env.METERING_SANDBOX_ADMIN };
  try {
    // Like the sandbox's own bin/az: the stand-in runs under node, whatever runs the tests.
    await writeFile(join(bin, "az"), `#!/bin/sh\nexec node "${AZ_MJS}" "$@"\n`);
    await chmod(join(bin, "az"), 0o755);
    process.env.PATH = `${bin}:${process.env.PATH}`;
    process.env.METERING_SANDBOX_ADMIN = `http://127.0.0.1:${(adminServer.address() as { port: number }).port}`;
    const token = await new AzureCliCredential().getToken("https://vault.azure.net/.default");
    assert.is(token.expiresOnTimestamp, 1_900_000_000_000);
    assert.is(JSON.parse(Buffer.from(token.token.split(".")[1], "base64url").toString()).aud, "https://vault.azure.net");
    assert.equal(seen[0], { argv: ["account", "get-access-token", "--output", "json", "--resource", "https://vault.azure.net"], cwd: realpathSync("/bin") });
  } finally {
    process.env.PATH = saved.path;
    if (saved.admin === undefined) delete process.env.METERING_SANDBOX_ADMIN;
    else process.env.METERING_SANDBOX_ADMIN = saved.admin;
    adminServer.close();
    await rm(bin, { recursive: true, force: true });
  }
});

account("az.mjs forwards stdin for @- and reports a sandbox that is not running", async () => {
  const adminServer = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(await runAz(JSON.parse(Buffer.concat(chunks).toString("utf8")), env.ctx)));
  });
  await new Promise<void>((r) => adminServer.listen(0, "127.0.0.1", () => r()));
  const run = (argv: string[], admin: string, stdin?: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(process.execPath, [AZ_MJS, ...argv], { env: { ...process.env, METERING_SANDBOX_ADMIN: admin } }, (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
      child.stdin!.end(stdin ?? "");
    });
  try {
    const admin = `http://127.0.0.1:${(adminServer.address() as { port: number }).port}`;
    const url = `/subscriptions/${ISV.subscriptionId}/resourcegroups/from-stdin?api-version=2022-09-01`;
    const put = await run(["rest", "--method", "put", "--url", url, "--body", "@-"], admin, '{"location": "northeurope"}\n');
    assert.is(put.code, 0, put.stderr);
    assert.is(json(put).location, "northeurope");
    const missing = await run(["group", "show", "-n", "does-not-exist"], admin);
    assert.equal([missing.code, missing.stdout], [3, ""]);
    assert.match(missing.stderr, /^ERROR: \(ResourceGroupNotFound\)/);
    const down = await run(["account", "show"], "http://127.0.0.1:9");
    assert.equal(down, { code: 1, stdout: "", stderr: "ERROR: the sandbox is not running (METERING_SANDBOX_ADMIN=http://127.0.0.1:9)\n" });
  } finally {
    adminServer.close();
  }
});

account.run();

// ---------------------------------------------------------------------------------------------
const group = suite("runAz() group");
group.before.each(reset);

group("group create puts the group and prints it with az's null attributes", async () => {
  const r = await az("group", "create", "-n", "isv-rg", "-l", "westeurope", "--tags", "env=test", "--only-show-errors", "--output", "json");
  assert.is(r.exitCode, 0, r.stderr);
  assert.equal(json(r), {
    id: `/subscriptions/${ISV.subscriptionId}/resourceGroups/isv-rg`,
    location: "westeurope",
    managedBy: null,
    name: "isv-rg",
    properties: { provisioningState: "Succeeded" },
    tags: { env: "test" },
    type: "Microsoft.Resources/resourceGroups",
  });
  assert.equal(arm.requests.map((q) => [q.method, q.path, q.query["api-version"]]), [["PUT", `/subscriptions/${ISV.subscriptionId}/resourcegroups/isv-rg`, "2022-09-01"]]);
  assert.equal(arm.requests[0].body, { location: "westeurope", tags: { env: "test" } });
  assert.match(arm.requests[0].auth!, /^Bearer ey/);
  assert.equal(env.tokenCalls, [{ resource: "https://management.azure.com/", tenantId: ISV.tenantId }]);
});

group("group create in another subscription uses that subscription's tenant", async () => {
  const r = await az("group", "create", "--subscription", CUSTOMER.subscriptionId, "--name", "mrg-contoso", "--location", "eastus");
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(arm.requests[0].path, `/subscriptions/${CUSTOMER.subscriptionId}/resourcegroups/mrg-contoso`);
  assert.equal(env.tokenCalls, [{ resource: "https://management.azure.com/", tenantId: CUSTOMER.tenantId }]);
});

group("group show and exists; a missing group is exit 3 for show", async () => {
  assert.is(json(await az("group", "show", "-g", "isv-rg")).location, "westeurope");
  assert.equal(await az("group", "show", "-g", "nope"), {
    exitCode: 3,
    stdout: "",
    stderr: "ERROR: (ResourceGroupNotFound) Resource group 'nope' could not be found.\nCode: ResourceGroupNotFound\nMessage: Resource group 'nope' could not be found.\n",
  });
  assert.equal(await az("group", "exists", "-n", "isv-rg"), { exitCode: 0, stdout: "true\n", stderr: "" });
  assert.equal(await az("group", "exists", "-n", "nope"), { exitCode: 0, stdout: "false\n", stderr: "" });
});

group.run();

// ---------------------------------------------------------------------------------------------
const rest = suite("runAz() rest");
rest.before.each(reset);

rest("ARM-relative URLs get the ARM endpoint, {subscriptionId} and a bearer token; JSON is sorted and indented", async () => {
  const r = await az("rest", "--url", "/subscriptions/{subscriptionId}/resourcegroups/isv-rg?api-version=2021-04-01");
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(r.stdout, `${JSON.stringify({
    id: `/subscriptions/${ISV.subscriptionId}/resourceGroups/isv-rg`,
    location: "westeurope",
    name: "isv-rg",
    properties: { provisioningState: "Succeeded" },
    tags: { env: "test" },
    type: "Microsoft.Resources/resourceGroups",
  }, null, 2)}\n`);
  assert.is(arm.requests[0].path, `/subscriptions/${ISV.subscriptionId}/resourcegroups/isv-rg`);
  assert.match(arm.requests[0].auth!, /^Bearer /);
});

rest("HTTP errors print the reason and body, exit 1", async () => {
  const r = await az("rest", "--method", "get", "--url", "/subscriptions/{subscriptionId}/resourcegroups/nope?api-version=2021-04-01");
  assert.equal(r, {
    exitCode: 1,
    stdout: "",
    stderr: `ERROR: Not Found({"error":{"code":"ResourceGroupNotFound","message":"Resource group 'nope' could not be found."}})\n`,
  });
});

rest("body, headers, uri parameters, --query with tsv, and management.azure.com mapped to the emulator", async () => {
  const r = await az(
    "rest", "-m", "POST", "-u", "https://management.azure.com/providers/Microsoft.ResourceGraph/resources",
    "--uri-parameters", "api-version=2021-03-01",
    "--headers", "x-ms-test=1", "x-other=two",
    "--body", JSON.stringify({ query: "resources", options: { $top: 2 } }),
    "--query", "data[].name", "-o", "tsv",
  );
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(r.stdout, "app0\napp1\n");
  const q = arm.requests[0];
  assert.equal([q.method, q.path, q.query["api-version"], q.contentType, q.headers["x-ms-test"], q.headers["x-other"]], ["POST", "/providers/Microsoft.ResourceGraph/resources", "2021-03-01", "application/json", "1", "two"]);
  assert.equal(q.body, { query: "resources", options: { $top: 2 } });
});

rest("a URL outside ARM gets no token unless --resource names one", async () => {
  const other = arm.url.replace("127.0.0.1", "localhost");
  const r = await az("rest", "--url", `${other}/subscriptions/${ISV.subscriptionId}/resourcegroups/isv-rg`);
  assert.equal([r.exitCode, r.stderr], [1, `WARNING: Can't derive appropriate Azure AD resource from --url to acquire an access token. If access token is required, use --resource to specify the resource\nERROR: Unauthorized({"error":{"code":"AuthenticationFailed","message":"Authentication failed. The 'Authorization' header is missing."}})\n`]);
  const withResource = await az("rest", "--url", `${other}/subscriptions/${ISV.subscriptionId}/resourcegroups/isv-rg`, "--resource", "https://example.test", "--only-show-errors");
  assert.is(withResource.exitCode, 0, withResource.stderr);
  assert.equal(env.tokenCalls, [{ resource: "https://example.test", tenantId: ISV.tenantId }]);
});

rest.run();

// ---------------------------------------------------------------------------------------------
const deploy = suite("runAz() deployment group");
deploy.before.each(reset);

const ISV_RG = `/subscriptions/${ISV.subscriptionId}/resourceGroups/isv-rg`;

deploy("deploys the ISV setup template and prints the deployment as az does", async () => {
  const r = await az("deployment", "group", "create", "-g", "isv-rg", "-f", "templates/0-isv-setup.bicep", "-p", `userObjectId=${USER.objectId}`, "keySize=2048");
  assert.is(r.exitCode, 0, r.stderr);
  const d = json(r);
  const account = `idp${uniqueString(ISV_RG)}`;
  assert.is(d.id, `${ISV_RG}/providers/Microsoft.Resources/deployments/0-isv-setup`);
  assert.equal([d.name, d.resourceGroup, d.type], ["0-isv-setup", "isv-rg", "Microsoft.Resources/deployments"]);
  assert.is(d.properties.provisioningState, "Succeeded");
  assert.is(d.properties.mode, "Incremental");
  assert.equal(d.properties.outputs.blobEndpoint, { type: "String", value: `https://${account}.blob.core.windows.net/` });
  assert.equal(d.properties.outputs.keyUriWithVersion.value, `https://${account}.vault.azure.net/keys/idpkey/00112233445566778899aabbccddeeff`);
  assert.equal(d.properties.parameters.keySize, { type: "Int", value: 2048 });
  assert.is(d.properties.outputResources.length, 7); // storage, blob service, container, vault, key, two role assignments
  assert.is(d.properties.outputResources[0].resourceGroup, "isv-rg");
  assert.ok("templateHash" in d.properties && "correlationId" in d.properties);

  // az: validate, PUT, poll the Azure-AsyncOperation URL, GET the deployment. ARM's engine: the resources.
  const fromAz = arm.requests.filter((q) => !q.headers["x-engine"]).map((q) => `${q.method} ${q.path.replace(/resourcegroups\/isv-rg/i, "resourceGroups/isv-rg").replace(ISV_RG, "~")}`);
  assert.equal(fromAz[0], "POST ~/providers/Microsoft.Resources/deployments/0-isv-setup/validate");
  assert.equal(fromAz[1], "PUT ~/providers/Microsoft.Resources/deployments/0-isv-setup");
  assert.match(fromAz[2], /^GET \/deploymentops\/\d+$/);
  assert.equal(fromAz.at(-1), "GET ~/providers/Microsoft.Resources/deployments/0-isv-setup");
  const engine = arm.requests.filter((q) => q.headers["x-engine"]);
  const calls = engine.map((q) => `${q.method} ${q.path.replace(ISV_RG, "~")}`);
  assert.equal(calls, [
    `PUT ~/providers/Microsoft.Storage/storageAccounts/${account}`,
    calls[1],
    `GET ~/providers/Microsoft.Storage/storageAccounts/${account}`,
    `PUT ~/providers/Microsoft.Storage/storageAccounts/${account}/blobServices/default`,
    `PUT ~/providers/Microsoft.Storage/storageAccounts/${account}/blobServices/default/containers/public`,
    `PUT ~/providers/Microsoft.KeyVault/vaults/${account}`,
    `PUT ~/providers/Microsoft.KeyVault/vaults/${account}/keys/idpkey`,
    calls[7],
    calls[8],
  ]);
  assert.match(calls[1], /^GET \/operations\/\d+$/);
  assert.match(calls[8], new RegExp(`^PUT ~/providers/Microsoft.Storage/storageAccounts/${account}/blobServices/default/containers/public/providers/Microsoft.Authorization/roleAssignments/[0-9a-f-]{36}$`));
  assert.match(calls[7], new RegExp(`^PUT ~/providers/Microsoft.KeyVault/vaults/${account}/providers/Microsoft.Authorization/roleAssignments/[0-9a-f-]{36}$`));
  const key = engine[6];
  assert.equal([key.query["api-version"], key.body], ["2025-05-01", { properties: { kty: "RSA", keySize: 2048, keyOps: ["sign", "verify"] } }]);
  assert.is((engine[7].body as { properties: { principalId: string } }).properties.principalId, USER.objectId);
  assert.is((engine[8].body as { properties: { principalId: string } }).properties.principalId, USER.objectId);
  const put = arm.requests.find((q) => q.method === "PUT" && q.path.endsWith("/deployments/0-isv-setup"))!;
  assert.is(put.query["api-version"], "2022-09-01");
  const sent = (put.body as { properties: { template: { resources: unknown[] }; parameters: unknown; mode: string } }).properties;
  assert.equal(Object.keys(sent), ["template", "parameters", "mode"]);
  // 10 resources in the JSON: the 7 deployed, the account-wide data role of the static-website issuer host, and the
  // ledger container with its data role (no ledgerContainerName), whose conditions are false here.
  assert.equal([sent.template.resources.length, sent.parameters, sent.mode], [10, { userObjectId: { value: USER.objectId }, keySize: { value: 2048 } }, "Incremental"]);

  const shown = await az("deployment", "group", "show", "-g", "isv-rg", "-n", "0-isv-setup", "--query", "properties.outputs.keyVaultUri.value", "-o", "tsv");
  assert.equal(shown, { exitCode: 0, stdout: `https://${account}.vault.azure.net/\n`, stderr: "" });
  const missing = await az("deployment", "group", "show", "-g", "isv-rg", "-n", "nope");
  assert.equal([missing.exitCode, missing.stderr], [3, "ERROR: (DeploymentNotFound) Deployment 'nope' could not be found.\nCode: DeploymentNotFound\nMessage: Deployment 'nope' could not be found.\n"]);
});

deploy("deploys connect-customer into a customer's group with a JSON parameters object", async () => {
  await az("group", "create", "--subscription", CUSTOMER.subscriptionId, "-n", "mrg-contoso", "-l", "eastus");
  reset();
  const parameters = JSON.stringify({ issuer: { value: "https://idp.example/public" }, subject: { value: "metering from isv" } });
  const r = await az("deployment", "group", "create", "--subscription", CUSTOMER.subscriptionId, "--resource-group", "mrg-contoso",
    "--name", "connect", "--template-file", "templates/1-connect-customer.bicep", "--parameters", parameters, "--no-prompt", "true", "--query", "properties.outputs");
  assert.is(r.exitCode, 0, r.stderr);
  const mrg = `/subscriptions/${CUSTOMER.subscriptionId}/resourceGroups/mrg-contoso`;
  assert.equal(json(r), {
    tenantId: { type: "String", value: CUSTOMER.tenantId },
    uamiClientId: { type: "String", value: "client-1" },
    uamiId: { type: "String", value: `${mrg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/metering-submission-uami` },
    uamiName: { type: "String", value: "metering-submission-uami" },
    uamiPrincipalId: { type: "String", value: "principal-1" },
  });
  const fic = arm.requests.find((q) => q.path.endsWith("/federatedIdentityCredentials/fed"))!;
  assert.equal(fic.body, { properties: { issuer: "https://idp.example/public", subject: "metering from isv", audiences: ["api://AzureADTokenExchange"] } });
  assert.ok(env.tokenCalls.every((t) => t.tenantId === CUSTOMER.tenantId));
});

deploy("reads parameters files (deploymentParameters shape) through @file, relative to cwd", async () => {
  const dir = await mkdtemp(join(tmpdir(), "az-params-"));
  try {
    await writeFile(join(dir, "params.json"), JSON.stringify({
      $schema: "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
      contentVersion: "1.0.0.0",
      parameters: { issuer: { value: "https://i" }, subject: { value: "s" }, uamiName: { value: "from-file" } },
    }));
    const r = await runAz({ argv: ["deployment", "group", "create", "-g", "isv-rg", "-f", join(ROOT, "templates/1-connect-customer.bicep"), "-p", "@params.json", "--query", "properties.outputs.uamiName.value"], cwd: dir }, env.ctx);
    assert.equal(r, { exitCode: 0, stdout: '"from-file"\n', stderr: "" });
    const missing = await runAz({ argv: ["deployment", "group", "create", "-g", "isv-rg", "-f", "x.bicep", "-p", "@nope.json"], cwd: dir }, env.ctx);
    assert.equal(missing, { exitCode: 1, stdout: "", stderr: "ERROR: [Errno 2] No such file or directory: 'nope.json'\n" });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

deploy("template validation errors print ARM's InvalidTemplate and put nothing", async () => {
  const r = await az("deployment", "group", "create", "-g", "isv-rg", "-f", "templates/0-isv-setup.bicep");
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, /^ERROR: \{"code": "InvalidTemplate", "message": "Deployment template validation failed: 'The value for the template parameter 'userObjectId' is not provided\. Please see https:\/\/aka\.ms\/arm-create-parameter-file for usage details\.'\.", "additionalInfo": \[\{"type": "TemplateViolation", /);
  assert.equal(arm.requests.map((q) => q.method), ["POST"], "only the validation request");
  const typed = await az("deployment", "group", "create", "-g", "isv-rg", "-f", "templates/0-isv-setup.bicep", "-p", JSON.stringify({ userObjectId: { value: "u" }, keySize: { value: "4096" } }));
  assert.match(typed.stderr, /Expected a value of type 'Int', but received a value of type 'String'/);
  const kv = await az("deployment", "group", "create", "-g", "isv-rg", "-f", "templates/0-isv-setup.bicep", "-p", "colour=blue");
  assert.equal([kv.exitCode, kv.stderr], [1, "ERROR: unrecognized template parameter 'colour'. Allowed parameters: containerName, cryptoOfficerAssignmentName, issuerHost, keyName, keySize, keyVaultName, ledgerAssignmentName, ledgerContainerName, location, storageAccountName, userObjectId, userPrincipalType\n"]);
  const badInt = await az("deployment", "group", "create", "-g", "isv-rg", "-f", "templates/0-isv-setup.bicep", "-p", "keySize=big");
  assert.equal(badInt.stderr, "ERROR: invalid literal for int() with base 10: 'big'\n");
});

deploy("a failing resource fails the deployment: DeploymentFailed, recorded as Failed", async () => {
  const r = await az("deployment", "group", "create", "-g", "isv-rg", "-n", "broken", "-f", "templates/0-isv-setup.bicep", "-p", "userObjectId=u", "storageAccountName=taken");
  assert.is(r.exitCode, 1);
  assert.ok(r.stderr.startsWith(`ERROR: {"code": "DeploymentFailed", "target": "${ISV_RG}/providers/Microsoft.Resources/deployments/broken", "message": "At least one resource deployment operation failed.`), r.stderr);
  assert.match(r.stderr, /"details": \[\{"code": "StorageAccountAlreadyTaken", "message": "The storage account named taken is already taken\."\}\]\}\n$/);
  const recorded = json(await az("deployment", "group", "show", "-g", "isv-rg", "-n", "broken"));
  assert.is(recorded.properties.provisioningState, "Failed");
  assert.is(recorded.properties.error.code, "DeploymentFailed");
});

deploy("other failures: missing group, missing file, Bicep outside the subset, JSON templates", async () => {
  const noGroup = await az("deployment", "group", "create", "-g", "nope", "-f", "templates/0-isv-setup.bicep", "-p", "userObjectId=u");
  assert.equal([noGroup.exitCode, noGroup.stderr.split("\n")[0]], [1, "ERROR: (ResourceGroupNotFound) Resource group 'nope' could not be found."]);
  const noFile = await az("deployment", "group", "create", "-g", "isv-rg", "-f", "templates/missing.bicep");
  assert.equal(noFile, { exitCode: 1, stdout: "", stderr: "ERROR: [Errno 2] No such file or directory: 'templates/missing.bicep'\n" });
  const dir = await mkdtemp(join(tmpdir(), "az-bicep-"));
  try {
    await writeFile(join(dir, "mod.bicep"), "param x string\n\nmodule m 'other.bicep' = [for i in range(0, 2): {\n  name: 'm'\n}]\n");
    const mod = await runAz({ argv: ["deployment", "group", "create", "-g", "isv-rg", "-f", "mod.bicep"], cwd: dir }, env.ctx);
    assert.equal(mod, { exitCode: 1, stdout: "", stderr: `ERROR: ${join(dir, "mod.bicep")}:3:26: Module loops are not supported by the sandbox's Bicep compiler\n` });
    await writeFile(join(dir, "missing.bicep"), "module m 'other.bicep' = {\n  name: 'm'\n}\n");
    const missing = await runAz({ argv: ["deployment", "group", "create", "-g", "isv-rg", "-f", "missing.bicep"], cwd: dir }, env.ctx);
    assert.equal(missing, { exitCode: 1, stdout: "", stderr: `ERROR: ${join(dir, "missing.bicep")}:1:10: An error occurred reading file. Could not find file '${join(dir, "other.bicep")}'.\n` });
    await writeFile(join(dir, "t.json"), JSON.stringify({ contentVersion: "1.0.0.0", functions: [], resources: [] }));
    const armJson = await runAz({ argv: ["deployment", "group", "create", "-g", "isv-rg", "-f", "t.json"], cwd: dir }, env.ctx);
    assert.equal([armJson.exitCode, armJson.stderr], [1, `ERROR: {"code": "InvalidTemplate", "message": "Deployment template validation failed: 'The template property 'functions' is not valid: User-defined functions are not supported by the sandbox's template engine. Please see https://aka.ms/arm-syntax for usage details.'.", "additionalInfo": [{"type": "TemplateViolation", "info": {"lineNumber": 0, "linePosition": 0, "path": "properties.template.functions"}}]}\n`]);
    await writeFile(join(dir, "ok.json"), JSON.stringify({ contentVersion: "1.0.0.0", parameters: { n: { type: "int" } }, resources: [], outputs: { twice: { type: "int", value: "[mul(parameters('n'), 2)]" } } }));
    const ok = await runAz({ argv: ["deployment", "group", "create", "-g", "isv-rg", "-f", "ok.json", "-p", "n=21", "--query", "properties.outputs.twice"], cwd: dir }, env.ctx);
    assert.equal(ok, { exitCode: 0, stdout: '{\n  "type": "Int",\n  "value": 42\n}\n', stderr: "" });
    await writeFile(join(dir, "bad.json"), "{ nope");
    assert.match((await runAz({ argv: ["deployment", "group", "create", "-g", "isv-rg", "-f", "bad.json"], cwd: dir }, env.ctx)).stderr, /^ERROR: Failed to parse 'bad.json', please check whether it is a valid JSON format/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

deploy.run();

// ---------------------------------------------------------------------------------------------
const graph = suite("runAz() graph query");
graph.before.each(reset);

graph("pages with --first and --skip-token; output as the resource-graph extension prints it", async () => {
  const first = json(await az("graph", "query", "-q", "resources | project id, name", "--first", "2"));
  assert.equal(first, { count: 2, data: GRAPH_ROWS.slice(0, 2), skip_token: "2", total_records: 5 });
  const second = json(await az("graph", "query", "-q", "resources | project id, name", "--first", "2", "--skip-token", first.skip_token));
  assert.equal(second.data, GRAPH_ROWS.slice(2, 4));
  const last = json(await az("graph", "query", "-q", "resources | project id, name", "--first", "2", "--skip-token", second.skip_token));
  assert.equal([last.count, last.skip_token], [1, null]);
  assert.equal(arm.requests.map((q) => q.body), [
    { query: "resources | project id, name", options: { $top: 2, resultFormat: "objectArray" } },
    { query: "resources | project id, name", options: { $top: 2, resultFormat: "objectArray", $skipToken: "2" } },
    { query: "resources | project id, name", options: { $top: 2, resultFormat: "objectArray", $skipToken: "4" } },
  ]);
  assert.equal(arm.requests[0].query["api-version"], "2021-03-01");
});

graph("--subscriptions scopes the query; --query works on the result; --first is bounded", async () => {
  const r = await az("graph", "query", "-q", "resources", "--subscriptions", ISV.subscriptionId, CUSTOMER.subscriptionId, "--query", "data[0].name", "-o", "tsv");
  assert.equal(r, { exitCode: 0, stdout: "app0\n", stderr: "" });
  assert.equal((arm.requests[0].body as { subscriptions: string[] }).subscriptions, [ISV.subscriptionId, CUSTOMER.subscriptionId]);
  assert.is((await az("graph", "query", "-q", "resources", "--first", "5000")).exitCode, 2);
});

graph.run();

// ---------------------------------------------------------------------------------------------
const query = suite("runAz() --query");
query.before.each(reset);

const QUERY_DOCS = "To learn more about --query, please visit: 'https://learn.microsoft.com/cli/azure/query-azure-cli'\n";
const names = GRAPH_ROWS.map((r) => r.name);

query("slices take ranges, steps and reversals of arrays", async () => {
  const graph = (q: string) => az("graph", "query", "-q", "resources", "--query", q);
  assert.equal(json(await graph("data[0:2].name")), names.slice(0, 2));
  assert.equal(json(await graph("data[::-1].name")), [...names].reverse());
  assert.equal(json(await graph("data[-2:].name")), names.slice(-2));
  assert.equal((await az("graph", "query", "-q", "resources", "--query", "data[1::2].name", "-o", "tsv")).stdout, "app1\napp3\n");
  assert.equal(json(await graph("data[3:1:-1].name")), ["app3", "app2"]);
});

query("sort_by, max_by, min_by and length take &expressions and arrays", async () => {
  const subscriptions = (q: string) => az("account", "list", "--query", q);
  assert.equal(json(await subscriptions("sort_by(@, &name)[].name")), [CUSTOMER.name, ISV.name]);
  assert.equal(json(await subscriptions("max_by(@, &length(name)).id")), CUSTOMER.subscriptionId);
  assert.equal(json(await subscriptions("min_by(@, &length(name)).name")), ISV.name);
  assert.equal(json(await subscriptions("length(@)")), 2);
  assert.equal(json(await subscriptions("length([?isDefault])")), 1);
  const newest = await az("graph", "query", "-q", "resources", "--query", "sort_by(data, &name)[-1].name", "-o", "tsv");
  assert.equal(newest, { exitCode: 0, stdout: "app4\n", stderr: "" });
});

query("multi-select hashes, pipes, contains and filters with &&", async () => {
  const r = await az("account", "list", "--query", "[?contains(name, 'Production') && !isDefault] | [0].{tenant: tenantId, id: id}", "-o", "tsv");
  assert.equal(r, { exitCode: 0, stdout: `${CUSTOMER.tenantId}\t${CUSTOMER.subscriptionId}\n`, stderr: "" });
  assert.equal(json(await az("account", "list", "--query", "[?isDefault && contains(tenantId, '000a')].name")), [ISV.name]);
  assert.equal(json(await az("account", "show", "--query", "{sub: id, user: user.name} | {both: [sub, user]}")), { both: [ISV.subscriptionId, USER.name] });
  assert.equal(json(await az("graph", "query", "-q", "resources", "--query", "data[?contains(id, '/c3/') || name == 'app1'].name | sort(@)")), ["app1", "app3"]);
});

query("fields named like Object.prototype's members are missing fields", async () => {
  assert.equal(await az("account", "show", "--query", "constructor"), { exitCode: 0, stdout: "", stderr: "" });
  assert.equal(json(await az("account", "show", "--query", "[user.toString, id]")), [null, ISV.subscriptionId]);
});

query("an invalid expression is argparse's error: exit 2, the value as Python repr()s it, nothing sent", async () => {
  assert.equal(await az("group", "create", "-n", "never", "-l", "x", "--query", "[?"),
    { exitCode: 2, stdout: "", stderr: `ERROR: argument --query: invalid jmespath_type value: '[?'\n${QUERY_DOCS}` });
  assert.equal((await az("group", "create", "-n", "never", "-l", "x", "--query", "[?name == 'x'")).stderr,
    `ERROR: argument --query: invalid jmespath_type value: "[?name == 'x'"\n${QUERY_DOCS}`);
  // What jmespath.py refuses and jmespath.js alone would evaluate.
  for (const bad of ["properties.", "properties..name", "data[-]", "data[1-2]", "[?name == 'x]", "`[1]"]) {
    const r = await az("group", "create", "-n", "never", "-l", "x", "--query", bad);
    assert.equal([r.exitCode, r.stderr.split("\n")[0]], [2, `ERROR: argument --query: invalid jmespath_type value: ${bad.includes("'") ? `"${bad}"` : `'${bad}'`}`], bad);
  }
  assert.equal(arm.requests, [], "a usage error changes nothing");
});

query("an expression that fails on the result is az's invalid jmespath query: exit 1", async () => {
  const prefix = "ERROR: Invalid jmespath query supplied for `--query`: ";
  assert.equal(await az("account", "show", "--query", "length(@, @)"),
    { exitCode: 1, stdout: "", stderr: `${prefix}Expected 1 argument for function length(), received 2\n${QUERY_DOCS}` });
  assert.equal((await az("account", "show", "--query", "merge()")).stderr, `${prefix}Expected at least 1 argument for function merge(), received 0\n${QUERY_DOCS}`);
  assert.equal((await az("account", "show", "--query", "nope(@)")).stderr, `${prefix}Unknown function: nope()\n${QUERY_DOCS}`);
  const typed = await az("account", "show", "--query", "length(isDefault)");
  assert.equal([typed.exitCode, typed.stdout], [1, ""]);
  assert.ok(typed.stderr.startsWith(`${prefix}TypeError: length() `) && typed.stderr.endsWith(`\n${QUERY_DOCS}`), typed.stderr);
});

query.run();

// ---------------------------------------------------------------------------------------------
const output = suite("runAz() output formats");
output.before.each(reset);

output("tsv and table follow knack; multi-select keeps its order", async () => {
  const tsv = await az("account", "list", "--query", "[].{name: name, id: id, default: isDefault}", "-o", "tsv");
  assert.is(tsv.stdout, `${ISV.name}\t${ISV.subscriptionId}\tTrue\n${CUSTOMER.name}\t${CUSTOMER.subscriptionId}\tFalse\n`);
  const table = await az("account", "list", "-o", "table");
  const lines = table.stdout.split("\n");
  assert.match(lines[0], /^EnvironmentName\s+HomeTenantId\s+IsDefault\s+Name\s+State\s+TenantId$/);
  assert.match(lines[1], /^-+ {2}-+/);
  assert.is(lines.length, 5);
  assert.is((await az("account", "list", "--query", "[?isDefault].id", "-o", "tsv")).stdout, `${ISV.subscriptionId}\n`);
  assert.is((await az("account", "list", "--query", "[?name == 'Contoso Production'] | [0].tenantId", "-o", "tsv")).stdout, `${CUSTOMER.tenantId}\n`);
  assert.is((await az("account", "list", "--query", "length([-1].user.*)")).stdout, "2\n");
  assert.equal(await az("account", "show", "-o", "none"), { exitCode: 0, stdout: "", stderr: "" });
  assert.is((await az("account", "show", "--query", "nothing.here")).stdout, "");
});

output.after(() => {
  arm.server.closeAllConnections?.();
  arm.server.close();
});
output.run();
