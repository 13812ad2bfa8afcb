// Microsoft's Python SDK (Debian's python3-azure, in /usr/bin/python3) at Azure's own URLs,
// through the front: ClientAssertionCredential with the ISV-signed assertion, CryptographyClient
// sign with the ISV's key, SecretClient, ManagedIdentityCredential (IMDS over HTTP_PROXY) and
// ResourceManagementClient. The sandbox's records are the proof.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import * as jose from "jose";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ROLE } from "../../sandbox/core/state.mts";
import { armPut, tokenFor, isvUser, ARM_AUDIENCE } from "../helpers/arm.mts";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { sandboxEnv } from "../helpers/scripts.mts";
import { connectCustomer } from "../helpers/workflow.mts";
import { federatedToken, frontShellEnv, METERING_RESOURCE, pythonMissing, run, show, SYSTEM_PYTHON, testOrSkip } from "../helpers/realclients.mts";

const FILE = import.meta.filename ?? "python.test.mts";
const missing = await pythonMissing(["azure.identity", "azure.keyvault.keys", "azure.keyvault.secrets", "azure.mgmt.resource"]);
const sb = await startTestSandbox();
const customer = sb.world.customers[0];
const isv = sb.world.isv;
let cc: Record<string, any> = {};
let cfg: Record<string, any> = {};
let env: Record<string, string> = {};
if (!missing) {
  const scriptEnv = await sandboxEnv(sb);
  cc = await connectCustomer(scriptEnv, customer);
  cfg = JSON.parse(await readFile(join(scriptEnv.METERING_DATA_DIR, "config.json"), "utf8")).publisher;
  env = await frontShellEnv(sb);
}

/** A Python snippet's last stdout line, as JSON. A class StaticCredential (token from STATIC_TOKEN) is predefined. */
async function python(code: string, extra: Record<string, string> = {}) {
  const prelude = `
import json, os, time
from azure.core.credentials import AccessToken
class StaticCredential:
    def get_token(self, *scopes, **kw):
        return AccessToken(os.environ["STATIC_TOKEN"], int(time.time()) + 3600)
`;
  const r = await run(SYSTEM_PYTHON, ["-c", prelude + code], { ...env, ...extra });
  assert.is(r.code, 0, show(r));
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
}

const vaultHost = () => `https://${cfg.optional.keyVaultName}.vault.azure.net`;
interface Issued { aud: string; appid?: string; oid?: string; grant: string; assertion?: { iss: string; sub: string; kid: string } }

const T = suite("python3-azure through the front");

testOrSkip(T, FILE, missing, "ClientAssertionCredential: a metering token of the customer's UAMI, at login.microsoftonline.com", async () => {
  const jwt = await federatedToken(sb, { issuer: cfg.idp.issuer, keyId: cfg.idp.keyId, kid: cfg.idp.keyJson.kid }, cc.subject);
  const out = await python(`
from azure.identity import ClientAssertionCredential
c = ClientAssertionCredential(${JSON.stringify(customer.tenantId)}, ${JSON.stringify(cc.uamiClientId)}, lambda: os.environ["ASSERTION"])
print(json.dumps({"token": c.get_token("${METERING_RESOURCE}/.default").token}))
`, { ASSERTION: jwt });
  const claims = jose.decodeJwt(out.token);
  assert.is(claims.appid, cc.uamiClientId);
  assert.is(claims.tid, customer.tenantId);
  const issued = await admin<Issued[]>(sb, "GET", "/tokens");
  assert.ok(issued.some((x) => x.appid === cc.uamiClientId && x.aud === METERING_RESOURCE && x.assertion?.kid === cfg.idp.keyJson.kid));
});

testOrSkip(T, FILE, missing, "CryptographyClient.sign RS256 with the ISV's key at <vault>.vault.azure.net: verifies with the published JWK", async () => {
  const version = String(cfg.idp.keyId).split("/").pop();
  const data = "header.payload";
  const out = await python(`
import hashlib, base64
from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm
c = CryptographyClient("${vaultHost()}/keys/idpkey/${version}", StaticCredential())
r = c.sign(SignatureAlgorithm.rs256, hashlib.sha256(${JSON.stringify(data)}.encode()).digest())
print(json.dumps({"sig": base64.urlsafe_b64encode(r.signature).decode().rstrip("="), "kid": r.key_id}))
`, { STATIC_TOKEN: await tokenFor(sb, isvUser(sb), "https://vault.azure.net") });
  const key = await jose.importJWK(cfg.idp.keyJson, "RS256");
  const ok = await crypto.subtle.verify("RSASSA-PKCS1-v1_5", key as CryptoKey, jose.base64url.decode(out.sig) as BufferSource, new TextEncoder().encode(data));
  assert.ok(ok, "the signature verifies with the ISV's published key");
  assert.ok(String(out.kid).endsWith(`/keys/idpkey/${version}`), out.kid);
});

testOrSkip(T, FILE, missing, "SecretClient set and get: the sandbox's vault holds the value", async () => {
  const vaultId = `/subscriptions/${isv.subscriptionId}/resourceGroups/${cfg.resourceGroup}/providers/Microsoft.KeyVault/vaults/${cfg.optional.keyVaultName}`;
  await armPut(sb, `${vaultId}/providers/Microsoft.Authorization/roleAssignments/${crypto.randomUUID()}?api-version=2022-04-01`, {
    properties: { roleDefinitionId: `/providers/Microsoft.Authorization/roleDefinitions/${ROLE.KeyVaultSecretsOfficer}`, principalId: isv.userObjectId, principalType: "User" },
  });
  const out = await python(`
from azure.keyvault.secrets import SecretClient
c = SecretClient("${vaultHost()}", StaticCredential())
c.set_secret("py-secret", "from-python")
print(json.dumps({"value": c.get_secret("py-secret").value}))
`, { STATIC_TOKEN: await tokenFor(sb, isvUser(sb), "https://vault.azure.net") });
  assert.is(out.value, "from-python");
  const held = await admin<Array<{ vault: string; name: string; value: string }>>(sb, "GET", `/keyvault/secrets?vault=${cfg.optional.keyVaultName}`);
  assert.ok(JSON.stringify(held).includes("from-python"), JSON.stringify(held));
});

testOrSkip(T, FILE, missing, "ManagedIdentityCredential on IMDS (http://169.254.169.254 through HTTP_PROXY): the ISV's managed identity", async () => {
  const out = await python(`
from azure.identity import ManagedIdentityCredential
print(json.dumps({"token": ManagedIdentityCredential().get_token("https://management.azure.com/.default").token}))
`);
  assert.is(jose.decodeJwt(out.token).oid, isv.managedIdentity!.principalId);
});

testOrSkip(T, FILE, missing, "ResourceManagementClient: resource groups at management.azure.com; a template deployment", async () => {
  const template = {
    $schema: "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#", contentVersion: "1.0.0.0",
    resources: [{ type: "Microsoft.ManagedIdentity/userAssignedIdentities", apiVersion: "2023-01-31", name: "py-uami", location: "westeurope" }],
  };
  const out = await python(`
from azure.mgmt.resource import ResourceManagementClient
c = ResourceManagementClient(StaticCredential(), "${isv.subscriptionId}")
c.resource_groups.create_or_update("py-rg", {"location": "westeurope"})
names = [g.name for g in c.resource_groups.list()]
state, err = None, None
try:
    d = c.deployments.begin_create_or_update("py-rg", "py-deploy", {"properties": {"mode": "Incremental", "template": json.loads(os.environ["TEMPLATE"])}}).result()
    state = d.properties.provisioning_state
except Exception as e:
    err = str(e).splitlines()[0]
print(json.dumps({"names": names, "state": state, "err": err}))
`, { STATIC_TOKEN: await tokenFor(sb, isvUser(sb), ARM_AUDIENCE), TEMPLATE: JSON.stringify(template) });
  assert.ok(out.names.includes("py-rg"), JSON.stringify(out));
  const uami = sb.state.getResource(`/subscriptions/${isv.subscriptionId}/resourceGroups/py-rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/py-uami`);
  // The SDK polls the deployment's Azure-AsyncOperation to the end: the template's resource exists.
  assert.is(out.state, "Succeeded", JSON.stringify(out));
  assert.ok(uami, "the template's UAMI exists in ARM");
});

T.after(async () => {
  await sb.stop();
});
T.run();
