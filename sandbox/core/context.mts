// What every emulated service receives from the sandbox process (sandbox/main.mts builds it):
// state, tokens, observability, TLS, the endpoints, a way to open another HTTPS port, and the
// hooks ARM calls on the data planes (Key Vault vaults, Service Bus namespaces).
import type { TlsMaterial } from "./ca.mts";
import type { Observability, ServiceDef } from "./http.mts";
import type { SandboxState } from "./state.mts";
import type { TokenService } from "./tokens.mts";

export interface Endpoints {
  entra: string;
  arm: string;
  metering: string;
  blob: string;
  admin: string;
  /** Plain-HTTP managed identity endpoint of the ISV's compute: IMDS paths and App Service's /msi/token. */
  managedIdentity: string;
  /** Microsoft Graph (`/v1.0/me`). */
  graph: string;
  /** The storage account's static website (`$web`, served anonymously), which Azurite lacks; "" without Azurite. */
  web: string;
}

export interface ListeningServer {
  port: number;
  url: string;
  close(): Promise<void>;
}

/** What every service module receives. */
export interface SandboxContext {
  state: SandboxState;
  tokens: TokenService;
  obs: Observability;
  tls: TlsMaterial;
  /** Filled before the first request can arrive. */
  endpoints: Endpoints;
  azurite: { blobEndpoint: string; accountName: string; accountKey: string } | undefined;
  /** Opens another HTTPS port for a service (Key Vault: one per vault). */
  listenHttps(def: ServiceDef): Promise<ListeningServer>;
  /** Set once the Key Vault service exists; ARM calls it when a vault is created. */
  keyVault: KeyVaultHooks;
  /** Set once the Service Bus service exists; ARM calls it when a namespace is created. */
  serviceBus: ServiceBusHooks;
  log(msg: string): void;
}

export interface KeyVaultHooks {
  /** Called by ARM when a vault resource is created: opens its port, returns its vaultUri ("https://127.0.0.1:<port>/"). */
  openVault(vault: { id: string; name: string; tenantId: string }): Promise<string>;
  /** Called by ARM when a vault resource (or its resource group) is deleted; ignores ids that are no vault. */
  closeVault?(resourceId: string): Promise<void>;
}

export interface ServiceBusHooks {
  /** Called by ARM when a namespace is created: opens its port, returns its serviceBusEndpoint. */
  openNamespace(ns: { id: string; name: string; tenantId: string }): Promise<string>;
  /** Called by ARM when a namespace (or its resource group) is deleted; ignores other ids. */
  closeNamespace(resourceId: string): Promise<void>;
}
