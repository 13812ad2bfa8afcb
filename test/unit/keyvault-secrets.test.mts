import { suite } from "uvu";
import * as assert from "uvu/assert";
import { getSecret, listSecrets, parseSecretName, setSecret } from "../../lib/azure/keyvault-secrets.mts";
import { AccessDeniedError, DataPlaneError, ResourceNotFoundError, UsageError } from "../../lib/core/errors.mts";
import type { RestRequest, RestResponse } from "../../lib/azure/rest.mts";

function response(status: number, body: unknown): RestResponse {
  const text = JSON.stringify(body);
  return { status, headers: {}, body: new TextEncoder().encode(text), text: () => text, json: () => JSON.parse(text) };
}
function fakeClient(replies: RestResponse[]) {
  const requests: RestRequest[] = [];
  return { requests, send: async (r: RestRequest) => { requests.push(r); return replies.shift()!; } };
}
const VAULT = "https://127.0.0.1:8443/";

const T = suite("Key Vault secrets over REST");
T("set: PUT with value and contentType at api-version 7.4; returns the version, not the value", async () => {
  const client = fakeClient([response(200, { value: "v", id: `${VAULT}secrets/db/0123456789abcdef0123456789abcdef`, attributes: { enabled: true, updated: 1767225600 } })]);
  const { info } = await setSecret({ client, vaultUrl: VAULT, name: "db", value: "v", contentType: "text/plain", who: "w" });
  assert.equal(info, { name: "db", id: `${VAULT}secrets/db/0123456789abcdef0123456789abcdef`, version: "0123456789abcdef0123456789abcdef", enabled: true, updated: "2026-01-01T00:00:00.000Z" });
  assert.is(client.requests[0].method, "PUT");
  assert.is(client.requests[0].url, `${VAULT}secrets/db?api-version=7.4`);
  assert.equal(JSON.parse(String(client.requests[0].body)), { value: "v", contentType: "text/plain" });
});
T("get and list; list follows nextLink", async () => {
  const client = fakeClient([
    response(200, { value: "s3", id: `${VAULT}secrets/a/1` }),
    response(200, { value: [{ id: `${VAULT}secrets/a` }], nextLink: `${VAULT}secrets?api-version=7.4&$skiptoken=x` }),
    response(200, { value: [{ id: `${VAULT}secrets/b`, contentType: "json" }], nextLink: null }),
  ]);
  assert.is((await getSecret({ client, vaultUrl: VAULT, name: "a", who: "w" })).value, "s3");
  const { secrets } = await listSecrets({ client, vaultUrl: VAULT, who: "w" });
  assert.equal(secrets.map((s) => s.name), ["a", "b"]);
  assert.is(client.requests[2].url, `${VAULT}secrets?api-version=7.4&$skiptoken=x`);
});
T("403 names the role to grant for the operation; 404 SecretNotFound is ResourceNotFoundError; 401 a DataPlaneError", async () => {
  const forbidden = response(403, { error: { code: "Forbidden", message: "Caller is not authorized.\r\nAction: x", innererror: { code: "ForbiddenByRbac" } } });
  for (const [fn, role] of [
    [() => setSecret({ client: fakeClient([forbidden]), vaultUrl: VAULT, name: "a", value: "v", who: "The UAMI" }), "Key Vault Secrets Officer"],
    [() => getSecret({ client: fakeClient([forbidden]), vaultUrl: VAULT, name: "a", who: "The UAMI" }), "Key Vault Secrets User"],
  ] as const) {
    try {
      await fn();
      assert.unreachable();
    } catch (e) {
      assert.instance(e, AccessDeniedError);
      assert.is((e as AccessDeniedError).role, role);
      assert.match((e as Error).message, new RegExp(`The UAMI needs the '${role}' role`));
    }
  }
  try {
    await getSecret({ client: fakeClient([response(404, { error: { code: "SecretNotFound", message: "A secret with (name/id) a was not found" } })]), vaultUrl: VAULT, name: "a", who: "w" });
    assert.unreachable();
  } catch (e) {
    assert.instance(e, ResourceNotFoundError);
  }
  try {
    await listSecrets({ client: fakeClient([response(401, { error: { code: "Unauthorized", message: "AKV10032: Invalid issuer." } })]), vaultUrl: VAULT, who: "w" });
    assert.unreachable();
  } catch (e) {
    assert.instance(e, DataPlaneError);
    assert.match((e as Error).message, /AKV10032/);
  }
});
T("secret names and sizes are checked before anything is sent", async () => {
  assert.is(parseSecretName("db-password-2"), "db-password-2");
  for (const bad of ["", "under_score", "x".repeat(128)]) {
    try {
      parseSecretName(bad);
      assert.unreachable();
    } catch (e) {
      assert.instance(e, UsageError);
    }
  }
  const client = fakeClient([]);
  try {
    await setSecret({ client, vaultUrl: VAULT, name: "big", value: "x".repeat(25 * 1024 + 1), who: "w" });
    assert.unreachable();
  } catch (e) {
    assert.instance(e, UsageError);
  }
  assert.is(client.requests.length, 0);
});
T.run();
