// The ISV's own identity: whoever runs the scripts (az login in Cloud Shell, a managed
// identity on Azure compute). DefaultAzureCredential honours AZURE_TOKEN_CREDENTIALS.
import { decodeJwt } from "jose";
import { MeteringError } from "./errors.mts";
import type { TokenCredential } from "@azure/identity";

export const ARM_SCOPE = "https://management.azure.com/.default";

/**
 * DefaultAzureCredential, imported lazily. `METERING_DISABLE_INSTANCE_DISCOVERY=true`
 * disables MSAL instance discovery (private clouds, the sandbox).
 */
export async function createIsvCredential(options: { env?: Record<string, string | undefined> } = {}): Promise<TokenCredential> {
  const env = options.env ?? process.env;
  const { DefaultAzureCredential } = await import("@azure/identity");
  return new DefaultAzureCredential({ disableInstanceDiscovery: env.METERING_DISABLE_INSTANCE_DISCOVERY === "true" });
}

/**
 * The object id (`oid`) of the signed-in ISV principal, read from its ARM token's claims:
 * there is no ARM call that returns it, and az's Graph call needs Graph permissions.
 */
export async function getSignedInObjectId(options: { credential: TokenCredential; scope?: string }): Promise<string> {
  let token;
  try {
    token = await options.credential.getToken(options.scope ?? ARM_SCOPE);
  } catch (cause) {
    throw new MeteringError(`Cannot sign in as the ISV: ${String((cause as Error)?.message ?? cause).split("\n")[0]} (run az login)`, { cause });
  }
  if (!token?.token) throw new MeteringError("Cannot sign in as the ISV: no token (run az login)");
  const oid = (decodeJwt(token.token) as { oid?: unknown }).oid;
  if (typeof oid !== "string" || oid === "") {
    throw new MeteringError("Cannot find the signed-in principal's object id: the ARM token has no oid claim");
  }
  return oid;
}
