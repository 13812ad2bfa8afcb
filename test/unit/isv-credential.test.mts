import { suite } from "uvu";
import * as assert from "uvu/assert";
import { generateKeyPair, SignJWT } from "jose";
import { ARM_SCOPE, createIsvCredential, getSignedInObjectId } from "../../lib/isv-credential.mts";
import { MeteringError } from "../../lib/errors.mts";

const key = (await generateKeyPair("RS256")).privateKey;
const token = (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: "RS256" }).sign(key);

const oid = suite("getSignedInObjectId()");
oid("returns the oid claim of the ARM token, asked for the ARM scope", async () => {
  const scopes: unknown[] = [];
  const t = await token({ oid: "8a7e726f-af43-4b4a-a882-b5477900bbb2", aud: "https://management.azure.com/" });
  const credential = { getToken: async (s: string | string[]) => { scopes.push(s); return { token: t, expiresOnTimestamp: Date.now() + 3_600_000 }; } };
  assert.is(await getSignedInObjectId({ credential }), "8a7e726f-af43-4b4a-a882-b5477900bbb2");
  assert.equal(scopes, [ARM_SCOPE]);
});
oid("a token without oid is an error that says so", async () => {
  const t = await token({ aud: "x" });
  try {
    await getSignedInObjectId({ credential: { getToken: async () => ({ token: t, expiresOnTimestamp: 0 }) } });
    assert.unreachable("should have thrown");
  } catch (err) {
    assert.instance(err, MeteringError);
    assert.match((err as Error).message, /no oid claim/);
  }
});
oid("a failing credential becomes one line that suggests az login, with the cause kept", async () => {
  const cause = new Error("AzureCliCredential: Please run 'az login'\nmore detail");
  try {
    await getSignedInObjectId({ credential: { getToken: async () => { throw cause; } } });
    assert.unreachable("should have thrown");
  } catch (err) {
    assert.instance(err, MeteringError);
    assert.not.match((err as Error).message, /more detail/);
    assert.match((err as Error).message, /az login/);
    assert.is((err as Error).cause, cause);
  }
});
oid.run();

const create = suite("createIsvCredential()");
create("returns a TokenCredential without touching the network", async () => {
  const credential = await createIsvCredential({ env: { METERING_DISABLE_INSTANCE_DISCOVERY: "true" } });
  assert.type(credential.getToken, "function");
});
create.run();
