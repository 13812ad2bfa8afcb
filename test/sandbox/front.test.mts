// The front: Azure's public host names, locally. Clients that know only Azure's own URLs reach
// the sandbox through HTTPS_PROXY / HTTP_PROXY with the sandbox CA: curl (as a bash tool would,
// with DIR/env and DIR/env-front sourced), a raw CONNECT client, and Microsoft's Key Vault SDK
// at https://<vault>.vault.azure.net. Any other host gets 403 and no connection is made for it.
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { createServer, request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { connect as tlsConnect } from "node:tls";
import type { Socket } from "node:net";
import { KeyClient } from "@azure/keyvault-keys";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import * as jose from "jose";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ROLE } from "../../sandbox/core/state.mts";
import { AZURITE_ACCOUNT } from "../../sandbox/main.mts";
import { arm, tokenFor } from "../helpers/arm.mts";
import { findOnPath } from "../helpers/path.mts";
import { startTestSandbox } from "../helpers/sandbox.mts";

const sb = await startTestSandbox();
const front = sb.front!;
const isv = sb.world.isv;
const tls = { ca: await readFile(sb.caCertPath, "utf8") };
const OPENID = `https://login.microsoftonline.com/${isv.tenantId}/v2.0/.well-known/openid-configuration`;
const METERING_AUDIENCE = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7";

// ---------------------------------------------------------------- a raw client: CONNECT, TLS, HTTP/1.1

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** Opens a tunnel through the front; resolves with the CONNECT answer's status and, on 200, the socket. */
function tunnel(authority: string): Promise<{ status: number; socket?: Socket; text: string }> {
  return new Promise((res, rej) => {
    const req = httpRequest({ host: "127.0.0.1", port: front.port, method: "CONNECT", path: authority, headers: { host: authority } });
    req.on("connect", (r, socket) => {
      if (r.statusCode === 200) return res({ status: 200, socket, text: "" });
      let text = "";
      socket.on("data", (d: Buffer) => (text += d.toString()));
      socket.on("close", () => res({ status: r.statusCode ?? 0, text }));
      socket.on("error", () => res({ status: r.statusCode ?? 0, text }));
    });
    req.on("error", rej);
    req.end();
  });
}

function parseResponse(raw: Buffer): Answer {
  const split = raw.indexOf("\r\n\r\n");
  const [statusLine, ...lines] = raw.subarray(0, split).toString("latin1").split("\r\n");
  const headers: IncomingHttpHeaders = {};
  for (const l of lines) {
    const i = l.indexOf(":");
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let body = raw.subarray(split + 4);
  if (headers["transfer-encoding"] === "chunked") {
    const parts: Buffer[] = [];
    let at = 0;
    for (;;) {
      const eol = body.indexOf("\r\n", at);
      const size = parseInt(body.subarray(at, eol).toString(), 16);
      if (!size) break;
      parts.push(body.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  }
  return { status: Number(statusLine.split(" ")[1]), headers, body: body.toString("utf8") };
}

/** One request to an https URL of Azure's, through the front, trusting only the sandbox CA. */
async function viaFront(url: string, o: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  const u = new URL(url);
  const t = await tunnel(`${u.hostname}:443`);
  if (!t.socket) throw new Error(`CONNECT ${u.hostname}: ${t.status} ${t.text}`);
  const socket = tlsConnect({ socket: t.socket, servername: u.hostname, ca: tls.ca });
  await new Promise<void>((res, rej) => socket.once("secureConnect", () => res()).once("error", rej));
  const body = o.body ?? "";
  const head = [`${o.method ?? "GET"} ${u.pathname}${u.search} HTTP/1.1`, `Host: ${u.host}`, "Connection: close",
    ...Object.entries(o.headers ?? {}).map(([k, v]) => `${k}: ${v}`), ...(body ? [`Content-Length: ${Buffer.byteLength(body)}`] : [])];
  socket.write(head.join("\r\n") + "\r\n\r\n" + body);
  const chunks: Buffer[] = [];
  await new Promise<void>((res, rej) => socket.on("data", (d: Buffer) => chunks.push(d)).once("end", () => res()).once("error", rej));
  socket.destroy();
  return parseResponse(Buffer.concat(chunks));
}

/** The same request straight to the service's own port. */
async function direct(url: string, o: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  const res = await fetch(url, { method: o.method ?? "GET", headers: o.headers, body: o.body });
  return { status: res.status, headers: Object.fromEntries(res.headers), body: await res.text() };
}

/** A plain-HTTP proxy request (absolute URL on the request line), as HTTP_PROXY clients send. */
function plainViaFront(url: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((res, rej) => {
    const u = new URL(url);
    const req = httpRequest({ host: "127.0.0.1", port: front.port, path: url, headers: { host: u.host, ...headers } }, (r) => {
      let body = "";
      r.on("data", (d: Buffer) => (body += d.toString()));
      r.on("end", () => res({ status: r.statusCode ?? 0, headers: r.headers, body }));
    });
    req.on("error", rej);
    req.end();
  });
}

/** A local server that counts connections: the front must never open one for a host it does not play. */
async function countingServer() {
  let connections = 0;
  const server = createServer((_req, res) => res.end("reached"));
  server.on("connection", () => connections++);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { port: (server.address() as { port: number }).port, connections: () => connections, close: () => new Promise<void>((r) => server.close(() => r())) };
}

// ---------------------------------------------------------------- the world: a vault made through ARM, a public blob

const rgId = `/subscriptions/${isv.subscriptionId}/resourceGroups/front-rg`;
assert.is((await arm(sb, "PUT", `${rgId}?api-version=2021-04-01`, { location: "westeurope" })).status, 201);
const VAULT = "frontvault1";
const vaultRes = await arm(sb, "PUT", `${rgId}/providers/Microsoft.KeyVault/vaults/${VAULT}?api-version=2025-05-01`, {
  location: "westeurope",
  properties: { tenantId: isv.tenantId, sku: { family: "A", name: "standard" }, enableRbacAuthorization: true },
});
assert.is(vaultRes.status, 201, JSON.stringify(vaultRes.json));
const grant = await arm(sb, "PUT", `${vaultRes.json.id}/providers/Microsoft.Authorization/roleAssignments/${crypto.randomUUID()}?api-version=2022-04-01`, {
  properties: {
    roleDefinitionId: `/subscriptions/${isv.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${ROLE.KeyVaultCryptoOfficer}`,
    principalId: isv.userObjectId, principalType: "User",
  },
});
assert.is(grant.status, 201, JSON.stringify(grant.json));

const blobs = new BlobServiceClient(sb.endpoints.blob, new StorageSharedKeyCredential(AZURITE_ACCOUNT.name, AZURITE_ACCOUNT.key));
const container = blobs.getContainerClient("front-public");
await container.createIfNotExists({ access: "blob" });
await container.getBlockBlobClient(".well-known/openid-configuration").upload('{"issuer":"front"}', 18);

// ---------------------------------------------------------------- files

const Files = suite("DIR/env, DIR/env-front and sandbox.json");

Files("DIR/env keeps loopback off any proxy; DIR/env-front opts in to the front with the CA bundles", async () => {
  const env = await readFile(`${sb.dir}/env`, "utf8");
  assert.match(env, /^export NO_PROXY='127\.0\.0\.1,localhost,::1'"\$\{NO_PROXY:\+,\$NO_PROXY\}"$/m);
  assert.match(env, /^export no_proxy='127\.0\.0\.1,localhost,::1'/m);
  assert.not.match(env, /HTTPS_PROXY/);
  const frontEnv = await readFile(`${sb.dir}/env-front`, "utf8");
  for (const k of ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"]) assert.ok(frontEnv.includes(`export ${k}='${front.url}'`), k);
  for (const k of ["CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "DENO_CERT"]) {
    assert.ok(frontEnv.includes(`export ${k}='${sb.caCertPath}'`), k);
  }
  assert.match(frontEnv, /^export NO_PROXY='127\.0\.0\.1,localhost,::1'/m);
  const info = JSON.parse(await readFile(`${sb.dir}/sandbox.json`, "utf8"));
  assert.equal(info.front, { proxy: front.url, port: front.port, envFile: `${sb.dir}/env-front` });
  assert.match(sb.env.NO_PROXY, /^127\.0\.0\.1,localhost,::1/);
});

// ---------------------------------------------------------------- a raw client

const Raw = suite("a client that knows only Azure's URLs, through the front");

Raw("login.microsoftonline.com: the tenant's OpenID configuration, with a certificate for that name from the sandbox CA", async () => {
  const t = await tunnel("login.microsoftonline.com:443");
  const socket = tlsConnect({ socket: t.socket!, servername: "login.microsoftonline.com", ca: tls.ca });
  await new Promise<void>((res, rej) => socket.once("secureConnect", () => res()).once("error", rej));
  const cert = socket.getPeerCertificate();
  assert.is(cert.subjectaltname, "DNS:login.microsoftonline.com");
  assert.match(String(cert.issuer.CN), /Metering Sandbox CA/);
  socket.destroy();
  const a = await viaFront(OPENID);
  assert.is(a.status, 200, a.body);
  const doc = JSON.parse(a.body);
  assert.ok(doc.token_endpoint.includes(`/${isv.tenantId}/oauth2/v2.0/token`), doc.token_endpoint);
  assert.equal(doc, JSON.parse((await direct(`${sb.endpoints.entra}/${isv.tenantId}/v2.0/.well-known/openid-configuration`)).body));
});

Raw("marketplaceapi.microsoft.com/api/...: the sandbox's metering API answers as it does on its own port", async () => {
  const token = await tokenFor(sb, { tenantId: isv.tenantId, objectId: isv.userObjectId }, METERING_AUDIENCE);
  for (const o of [
    { method: "GET", path: "/api/usageEvents?api-version=2018-08-31&usageStartDate=2026-01-01" },
    { method: "POST", path: "/api/usageEvent?api-version=2018-08-31", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: "{}" },
  ]) {
    const via = await viaFront(`https://marketplaceapi.microsoft.com${o.path}`, o);
    const own = await direct(`${sb.endpoints.metering}${o.path}`, o);
    assert.is(via.status, own.status, `${o.method} ${o.path}: ${via.body}`);
    assert.is(via.body.replace(/[0-9a-f-]{36}|\d{4}-\d\d-\d\dT[\d:.]+Z/g, "*"), own.body.replace(/[0-9a-f-]{36}|\d{4}-\d\d-\d\dT[\d:.]+Z/g, "*"));
    assert.ok(via.headers["x-ms-requestid"], JSON.stringify(via.headers));
  }
});

Raw("management.azure.com is ARM: the ISV's subscription", async () => {
  const token = await tokenFor(sb, { tenantId: isv.tenantId, objectId: isv.userObjectId }, "https://management.azure.com/");
  const a = await viaFront(`https://management.azure.com/subscriptions/${isv.subscriptionId}?api-version=2022-12-01`, { headers: { authorization: `Bearer ${token}` } });
  assert.is(a.status, 200, a.body);
  assert.is(JSON.parse(a.body).subscriptionId, isv.subscriptionId);
});

Raw("<vault>.vault.azure.net routes to that vault's port (its 401 challenge); an unknown vault's tunnel fails like an unknown name", async () => {
  const a = await viaFront(`https://${VAULT}.vault.azure.net/keys?api-version=7.4`);
  assert.is(a.status, 401, a.body);
  assert.match(String(a.headers["www-authenticate"]), /resource="https:\/\/vault\.azure\.net"/);
  assert.is((await tunnel("novault.vault.azure.net:443")).status, 502);
});

Raw("<account>.blob.core.windows.net is Azurite, with the account path: an issuer document readable anonymously", async () => {
  const a = await viaFront("https://anyaccount.blob.core.windows.net/front-public/.well-known/openid-configuration");
  assert.is(a.status, 200, a.body);
  assert.equal(JSON.parse(a.body), { issuer: "front" });
});

Raw("graph.microsoft.com: 404 until a service serves Graph (or Graph's own answer once one does)", async () => {
  const a = await viaFront("https://graph.microsoft.com/v1.0/me");
  const graph = (sb.endpoints as unknown as Record<string, string | undefined>).graph;
  if (graph) assert.is.not(a.status, 502, a.body);
  else assert.is(a.status, 404, a.body);
});

Raw("IMDS at http://169.254.169.254 through HTTP_PROXY: the ISV compute's managed identity token", async () => {
  const a = await plainViaFront("http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F", { Metadata: "true" });
  assert.is(a.status, 200, a.body);
  const claims = jose.decodeJwt(JSON.parse(a.body).access_token);
  assert.is(claims.oid, isv.managedIdentity!.principalId);
});

const Refuse = suite("the front reaches nothing else");

Refuse("CONNECT to any other host: 403, and no connection is opened for it", async () => {
  const target = await countingServer();
  try {
    const before = front.stats.tunnels;
    for (const authority of ["example.com:443", `127.0.0.1:${target.port}`, "login.microsoftonline.com:8443", `localhost:${target.port}`]) {
      const t = await tunnel(authority);
      assert.is(t.status, 403, authority);
      assert.ok(front.stats.refused[authority] >= 1, authority);
    }
    const plainly = await plainViaFront(`http://127.0.0.1:${target.port}/`);
    assert.is(plainly.status, 403);
    assert.is((await plainViaFront("http://example.com/")).status, 403);
    assert.is(target.connections(), 0);
    assert.is(front.stats.tunnels, before);
  } finally {
    await target.close();
  }
});

// ---------------------------------------------------------------- Microsoft's SDK at the vault's public URL

const Sdk = suite("@azure/keyvault-keys at https://<vault>.vault.azure.net through the front");

Sdk("createKey and getKey with the SDK's proxy option; challenge verification on (the host is Azure's)", async () => {
  const credential = {
    getToken: async (_scopes: string | string[], options?: { tenantId?: string }) => {
      const { token, claims } = await sb.tokens.issue({
        tenantId: options?.tenantId ?? isv.tenantId, audience: "https://vault.azure.net", objectId: isv.userObjectId, idtyp: "user", lifetimeS: 3600, grant: "test",
      });
      return { token, expiresOnTimestamp: Number(claims.exp) * 1000 };
    },
  };
  const client = new KeyClient(`https://${VAULT}.vault.azure.net`, credential, { proxyOptions: { host: "http://127.0.0.1", port: front.port } });
  const created = await client.createRsaKey("frontkey", { keySize: 2048 });
  // The key's kid is the vault's own URI (the Key Vault service writes it), whichever name the request used.
  assert.match(String(created.id), /\/keys\/frontkey\/[0-9a-f]{32}$/);
  const got = await client.getKey("frontkey");
  assert.is(got.properties.version, created.properties.version);
});

// ---------------------------------------------------------------- curl, as a bash tool runs it

const curl = findOnPath("curl");
const Curl = suite("curl with DIR/env and DIR/env-front sourced");

function sh(script: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile("sh", ["-c", `. '${sb.dir}/env' && . '${sb.dir}/env-front' && ${script}`], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: sb.dir } },
      (err, stdout, stderr) => res({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

if (!curl) {
  Curl("(skipped: curl is not on PATH)", () => console.log("front.test: curl is not on PATH; the curl tests are skipped"));
} else {
  Curl("curl https://login.microsoftonline.com/<tenant>/v2.0/.well-known/openid-configuration", async () => {
    const r = await sh(`curl -sS --fail '${OPENID}'`);
    assert.is(r.code, 0, r.stderr);
    assert.ok(JSON.parse(r.stdout).issuer.includes(isv.tenantId), r.stdout);
  });

  Curl("curl https://marketplaceapi.microsoft.com/api/usageEvents: the metering API's own answer", async () => {
    const path = "/api/usageEvents?api-version=2018-08-31&usageStartDate=2026-01-01";
    const r = await sh(`curl -sS -o /dev/null -w '%{http_code}' 'https://marketplaceapi.microsoft.com${path}'`);
    assert.is(r.code, 0, r.stderr);
    assert.is(Number(r.stdout), (await direct(`${sb.endpoints.metering}${path}`)).status);
  });

  Curl("curl to the sandbox's own 127.0.0.1 ports goes around the proxy (NO_PROXY)", async () => {
    const r = await sh(`curl -sS -o /dev/null -w '%{http_code}' "$METERING_SANDBOX_ADMIN/"`);
    assert.is(r.code, 0, r.stderr);
    assert.is.not(Number(r.stdout), 403);
  });

  Curl("curl https://example.com: the tunnel is refused with 403", async () => {
    const r = await sh("curl -sS https://example.com/");
    assert.is.not(r.code, 0);
    assert.match(r.stderr, /403/);
  });

  Curl("curl http://169.254.169.254 (IMDS) through HTTP_PROXY", async () => {
    const r = await sh(`curl -sS --fail -H Metadata:true 'http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net'`);
    assert.is(r.code, 0, r.stderr);
    assert.is(jose.decodeJwt(JSON.parse(r.stdout).access_token).aud, "https://vault.azure.net");
  });
}

Files.run();
Raw.run();
Refuse.run();
Sdk.run();
Curl.after(() => sb.stop());
Curl.run();
