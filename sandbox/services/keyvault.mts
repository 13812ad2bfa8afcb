// Emulated Key Vault data plane (azure-facts.md §4): one HTTPS port per vault.
import type { ServiceDef } from "../core/http.mts";
import type { SandboxContext } from "../main.mts";

export interface KeyVaultHooks {
  /** Called by ARM when a vault resource is created: opens its port, returns its vaultUri ("https://127.0.0.1:<port>/"). */
  openVault(vault: { id: string; name: string; tenantId: string }): Promise<string>;
}

export function createKeyVaultService(ctx: SandboxContext): { service: ServiceDef; hooks: KeyVaultHooks } {
  const service: ServiceDef = {
    name: "keyvault",
    routes: [],
    notFound: () => ({ status: 404, body: { error: { code: "NotFound", message: "Unknown route." } } }),
  };
  return {
    service,
    hooks: {
      openVault: async () => (await ctx.listenHttps(service)).url + "/",
    },
  };
}
