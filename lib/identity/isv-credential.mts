// The ISV's own identity: whoever runs the scripts (az login in Cloud Shell, a managed
// identity on Azure compute). DefaultAzureCredential honours AZURE_TOKEN_CREDENTIALS; when that
// narrows the chain to a developer credential (the sandbox and Cloud Shell set AzureCliCredential)
// and the environment names a managed identity endpoint, the managed identity is the fallback, so a
// timer job with no az and no person present still signs in.
import { decodeJwt } from "jose";
import { MeteringError } from "../core/errors.mts";
import type { Settings } from "../core/settings.mts";
import type { AccessToken, GetTokenOptions, TokenCredential } from "@azure/identity";

export const ARM_SCOPE = "https://management.azure.com/.default";

/** AZURE_TOKEN_CREDENTIALS values under which DefaultAzureCredential itself already tries a managed identity. */
const SELECTIONS_WITH_MANAGED_IDENTITY = ["", "prod", "managedidentitycredential"];

/** Whether a credential error means "not available here" (so the next one may be tried). */
function _unavailable(error: unknown): boolean {
  const e = error as { name?: string; errors?: unknown[] };
  if (e?.name === "CredentialUnavailableError") return true;
  return e?.name === "AggregateAuthenticationError" && Array.isArray(e.errors) && e.errors.length > 0 &&
    e.errors.every((x) => (x as { name?: string })?.name === "CredentialUnavailableError");
}

/**
 * Tries `primary`; when it is unavailable (az not installed or not signed in), `fallback`.
 * A real failure of the primary (a refused token) is not hidden by the fallback.
 */
export function withFallback(primary: TokenCredential, fallback: TokenCredential): TokenCredential {
  return {
    async getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken | null> {
      try {
        return await primary.getToken(scopes, options);
      } catch (error) {
        if (!_unavailable(error)) throw error;
        try {
          return await fallback.getToken(scopes, options);
        } catch (fallbackError) {
          throw new MeteringError(
            `Cannot sign in as the ISV: ${String((error as Error)?.message ?? error).split("\n")[0]}; the managed identity fallback failed too: ${String((fallbackError as Error)?.message ?? fallbackError).split("\n")[0]}`,
            { cause: fallbackError },
          );
        }
      }
    },
  };
}

/**
 * DefaultAzureCredential, imported lazily, with the managed identity as fallback where
 * AZURE_TOKEN_CREDENTIALS left it out and the environment names an endpoint. A user-assigned
 * identity is chosen with AZURE_CLIENT_ID (as DefaultAzureCredential does).
 * `METERING_DISABLE_INSTANCE_DISCOVERY=true` disables MSAL instance discovery (private clouds, the sandbox).
 */
export async function createIsvCredential(options: {
  settings: Pick<Settings, "disableInstanceDiscovery" | "tokenCredentials" | "managedIdentitySource" | "managedIdentityClientId">;
}): Promise<TokenCredential> {
  const { settings } = options;
  const { DefaultAzureCredential, ManagedIdentityCredential } = await import("@azure/identity");
  const primary = new DefaultAzureCredential({ disableInstanceDiscovery: settings.disableInstanceDiscovery });
  if (SELECTIONS_WITH_MANAGED_IDENTITY.includes(settings.tokenCredentials) || !settings.managedIdentitySource) return primary;
  const managedIdentity = settings.managedIdentityClientId ? new ManagedIdentityCredential({ clientId: settings.managedIdentityClientId }) : new ManagedIdentityCredential();
  return withFallback(primary, managedIdentity);
}

/** How a role assignment names the kind of its principal (ARM refuses one that does not match the directory: UnmatchedPrincipalType). */
export type PrincipalType = "User" | "ServicePrincipal";

/**
 * The signed-in ISV principal, read from its ARM token's claims: its object id (`oid`; there
 * is no ARM call that returns it, and az's Graph call needs Graph permissions), and whether it
 * is a person or a service principal (automation signed in with `az login --service-principal`,
 * a managed identity): `idtyp` says `user` or `app`; a token without it is delegated (a user)
 * when it has `scp`, app-only otherwise.
 */
export async function getSignedInPrincipal(options: { credential: TokenCredential; scope?: string }): Promise<{ objectId: string; principalType: PrincipalType }> {
  let token;
  try {
    token = await options.credential.getToken(options.scope ?? ARM_SCOPE);
  } catch (cause) {
    throw new MeteringError(`Cannot sign in as the ISV: ${String((cause as Error)?.message ?? cause).split("\n")[0]} (run az login)`, { cause });
  }
  if (!token?.token) throw new MeteringError("Cannot sign in as the ISV: no token (run az login)");
  const claims = decodeJwt(token.token) as { oid?: unknown; idtyp?: unknown; scp?: unknown };
  if (typeof claims.oid !== "string" || claims.oid === "") {
    throw new MeteringError("Cannot find the signed-in principal's object id: the ARM token has no oid claim");
  }
  const app = claims.idtyp === "app" || (claims.idtyp !== "user" && typeof claims.scp !== "string");
  return { objectId: claims.oid, principalType: app ? "ServicePrincipal" : "User" };
}

/** The object id of the signed-in ISV principal (getSignedInPrincipal). */
export async function getSignedInObjectId(options: { credential: TokenCredential; scope?: string }): Promise<string> {
  return (await getSignedInPrincipal(options)).objectId;
}
