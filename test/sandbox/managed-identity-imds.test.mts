// IMDS through Microsoft's ManagedIdentityCredential: AZURE_POD_IDENTITY_AUTHORITY_HOST points the
// SDK's IMDS source (and its availability probe) at the sandbox; a user-assigned selector works.
import { DefaultAzureCredential, ManagedIdentityCredential } from "@azure/identity";
import * as jose from "jose";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { startTestSandbox } from "../helpers/sandbox.mts";

const sb = await startTestSandbox({ azurite: false });
const mi = sb.world.isv.managedIdentity!;
delete process.env.IDENTITY_ENDPOINT;
delete process.env.IDENTITY_HEADER;
delete process.env.MSI_ENDPOINT;
process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = sb.endpoints.managedIdentity;

const T = suite("IMDS via AZURE_POD_IDENTITY_AUTHORITY_HOST");

T("ManagedIdentityCredential gets the ISV identity's token from the sandbox's IMDS", async () => {
  const token = await new ManagedIdentityCredential().getToken("https://vault.azure.net/.default");
  const claims = jose.decodeJwt(token.token);
  assert.is(claims.oid, mi.principalId);
  assert.is(claims.tid, sb.world.isv.tenantId);
  assert.is(claims.aud, "https://vault.azure.net");
});

T("DefaultAzureCredential narrowed to ManagedIdentityCredential, with a client id selector", async () => {
  process.env.AZURE_TOKEN_CREDENTIALS = "ManagedIdentityCredential";
  try {
    const token = await new DefaultAzureCredential({ managedIdentityClientId: mi.clientId }).getToken("https://management.azure.com/.default");
    assert.is(jose.decodeJwt(token.token).appid, mi.clientId);
  } finally {
    delete process.env.AZURE_TOKEN_CREDENTIALS;
  }
});

T.after(() => sb.stop());
T.run();
