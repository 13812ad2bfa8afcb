// In-memory state of one sandbox instance: the seeded world, every ARM resource, RBAC,
// the clock and the behaviour switches. Services keep their own data in `stores`.
import { randomUUID } from "node:crypto";

// ---------------------------------------------------------------- the seeded world

export interface WorldSeed {
  isv: {
    tenantId: string;
    tenantName: string;
    /** Verified custom domains of the tenant besides `<tenantName>.onmicrosoft.com` (Entra serves its metadata under each). */
    domains?: string[];
    subscriptionId: string;
    subscriptionName: string;
    location: string;
    /** The ISV's operator; `password` is what the sandbox's username/password sign-in (ROPC) accepts. */
    user: { objectId: string; upn: string; displayName: string; password?: string };
    /**
     * The managed identity of the ISV's own compute (a timer job): what the sandbox's managed
     * identity endpoint (IMDS and App Service style) hands out tokens for.
     */
    managedIdentity?: { principalId: string; clientId: string; resourceId: string };
  };
  /** Marketplace offers: each plan declares its custom meter dimensions (Partner Center dimension ids). */
  offers: Array<{
    publisher: string;
    product: string;
    plans: Array<{ name: string; dimensions: string[] }>;
    /**
     * The offer's technical configuration in Partner Center: the publisher's Entra app (its
     * tenant and app id). That app may call the metering API for every customer of the offer,
     * and is the only caller of GET /api/usageEvents (docs/azure-behaviour.md §1.7).
     */
    technicalConfiguration?: { tenantId: string; appId: string; displayName?: string };
  }>;
  customers: Array<{
    name: string;
    tenantId: string;
    tenantName: string;
    subscriptionId: string;
    subscriptionName: string;
    location: string;
    resourceGroup: string;
    managedResourceGroup: string;
    app: {
      name: string;
      resourceUsageId: string;
      plan: { name: string; publisher: string; product: string; version: string };
      provisioningState?: string;
    };
    /** Resources the managed application's own template put into the MRG (created at start through ARM). */
    mrgResources?: {
      keyVaults?: Array<{ name: string }>;
      serviceBusNamespaces?: Array<{ name: string; queues?: string[] }>;
    };
  }>;
  options?: DeepPartial<SandboxOptions>;
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

/** The `world` block of sandbox.json: what tests and the demo need to address the seeded customers. */
export interface WorldSummary {
  isv: {
    tenantId: string;
    subscriptionId: string;
    userObjectId: string;
    userPrincipalName: string;
    location: string;
    managedIdentity?: { principalId: string; clientId: string; resourceId: string };
  };
  /** Each offer's technical configuration (the publisher app), when it has one. */
  offers: Array<{ product: string; technicalConfiguration?: { tenantId: string; appId: string } }>;
  customers: Array<{
    name: string;
    tenantId: string;
    subscriptionId: string;
    resourceGroup: string;
    managedResourceGroup: string;
    managedAppId: string;
    resourceUsageId: string;
    planId: string;
    dimensions: string[];
    /** Names of the seeded Key Vaults and Service Bus namespaces (with queues) in the MRG. */
    keyVaults: string[];
    serviceBusNamespaces: Array<{ name: string; queues: string[] }>;
  }>;
}

// ---------------------------------------------------------------- behaviour switches
// Where docs/azure-behaviour.md marks a behaviour unconfirmed, the default here is the one it names.

export interface SandboxOptions {
  entra: {
    /** Clock skew allowed on assertion exp/nbf (unconfirmed; docs/azure-behaviour.md §2.3 → 300 s). */
    clockSkewS: number;
    /** How long a fetched issuer JWKS is reused (unconfirmed; docs/azure-behaviour.md §2.4 → fetch per exchange = 0). */
    jwksCacheTtlS: number;
    /** A new FIC fails with AADSTS70021 for this long after creation (docs/azure-behaviour.md §2.1 → 0). */
    ficPropagationDelayMs: number;
    /** Answer subject mismatches with the legacy 70021 instead of 700213. */
    legacyMismatchError: boolean;
    /** Accept http:// issuers (unconfirmed → https required). */
    allowHttpIssuer: boolean;
    /** Accept JWKS keys without use/alg, padded or standard-base64 n/e (as the 2023 bash tool published). */
    lenientJwks: boolean;
    /** Reject a second use of the same assertion jti (unconfirmed → reuse allowed). */
    singleUseJti: boolean;
    /** Lifetime of managed identity access tokens (docs/azure-behaviour.md §2.5: expires_in 86399). */
    managedIdentityTokenLifetimeS: number;
    /** Lifetime of user tokens handed out by the az stand-in and the user sign-ins. */
    userTokenLifetimeS: number;
    /** Lifetime of an app registration's client-credentials tokens (Entra: 60–90 min, unconfirmed → 3599 s). */
    appTokenLifetimeS: number;
    /** Device code flow: the `interval` a client must wait between polls (Entra: 5 s). */
    deviceCodeIntervalS: number;
    /** Device code flow: how long a code lives (Entra: `expires_in` 900 s). */
    deviceCodeLifetimeS: number;
    /** Refresh tokens stay valid this long without use (Entra's inactivity limit: 90 days). */
    refreshTokenLifetimeS: number;
  };
  metering: {
    /** Accepted `aud` values of metering tokens (unconfirmed form → configurable). */
    audiences: string[];
    /** Whether planId is part of the duplicate key (unconfirmed → no). */
    dedupeIncludesPlan: boolean;
    /** Future skew tolerated on effectiveStartTime (unconfirmed → 0 s). */
    futureSkewS: number;
    /** Name of the generic batch item failure status (spec: Error; metered-billing-accelerator: UsageEventError). */
    errorStatusName: string;
  };
  serviceBus: {
    /** Accepted `aud` values of Service Bus tokens (docs/azure-behaviour.md §6.2: https://servicebus.azure.net). */
    audiences: string[];
    /** Longest long poll (`timeout=` of receive) the emulator honours, in seconds (unconfirmed → 60). */
    maxReceiveTimeoutS: number;
  };
  arm: {
    /**
     * Reading or deleting role assignments in another tenant's subscription needs `&tenantId=<that
     * tenant>` (docs/azure-behaviour.md §5.4: sent on every cross-tenant call; that it is required is unconfirmed → yes).
     */
    crossTenantRoleAssignmentsNeedTenantId: boolean;
    /**
     * A publisher creating a role assignment for a managed identity of the customer's tenant (a
     * UAMI in the managed resource group, a managed application's system-assigned identity) must
     * name that identity's resource in `delegatedManagedIdentityResourceId`
     * (docs/azure-behaviour.md §5.4). Without it ARM looks the principal up in the caller's tenant and fails; the error
     * (400 PrincipalNotFound) is unconfirmed → the likeliest one.
     */
    crossTenantManagedIdentityNeedsDelegatedId: boolean;
  };
  containerApps: {
    /**
     * Status of `POST …/jobs/{name}/start`: the spec lists 200 (body {name, id}) and 202 (Location);
     * which Azure sends is unconfirmed → 202, with the same body.
     */
    startStatus: 200 | 202;
  };
}

export const DEFAULT_OPTIONS: SandboxOptions = {
  entra: {
    clockSkewS: 300,
    jwksCacheTtlS: 0,
    ficPropagationDelayMs: 0,
    legacyMismatchError: false,
    allowHttpIssuer: false,
    lenientJwks: false,
    singleUseJti: false,
    managedIdentityTokenLifetimeS: 86399,
    userTokenLifetimeS: 3599,
    appTokenLifetimeS: 3599,
    deviceCodeIntervalS: 5,
    deviceCodeLifetimeS: 900,
    refreshTokenLifetimeS: 90 * 86400,
  },
  metering: {
    audiences: ["20e940b3-4c77-4b0b-9a53-9e16a1b010a7"],
    dedupeIncludesPlan: false,
    futureSkewS: 0,
    errorStatusName: "Error",
  },
  serviceBus: {
    audiences: ["https://servicebus.azure.net"],
    maxReceiveTimeoutS: 60,
  },
  arm: {
    crossTenantRoleAssignmentsNeedTenantId: true,
    crossTenantManagedIdentityNeedsDelegatedId: true,
  },
  containerApps: {
    startStatus: 202,
  },
};

/** A resource id as index key: lower case, no trailing slash. */
export const idKey = (id: string): string => id.replace(/\/+$/, "").toLowerCase();

/** `key` and every id above it at a segment boundary ("/subscriptions/x/resourcegroups/y" → ".../y", ".../resourcegroups", "/subscriptions/x", "/subscriptions"). */
function ancestorsOf(key: string): string[] {
  const out = [key];
  for (let i = key.lastIndexOf("/"); i > 0; i = key.lastIndexOf("/", i - 1)) out.push(key.slice(0, i));
  return out;
}

const lc = (v: unknown): string => String(v ?? "").toLowerCase();
const UAMI = "microsoft.managedidentity/userassignedidentities";
const APP = "microsoft.solutions/applications";
const RA = "microsoft.authorization/roleassignments";

/** Adds to / removes from a multi-map of insertion-ordered entries. */
function addTo<V>(index: Map<string, Map<string, V>>, k: string, key: string, v: V): void {
  let m = index.get(k);
  if (!m) index.set(k, m = new Map());
  m.set(key, v);
}
function removeFrom<V>(index: Map<string, Map<string, V>>, k: string, key: string): void {
  const m = index.get(k);
  if (m?.delete(key) && m.size === 0) index.delete(k);
}

/**
 * The indexes over `SandboxState.resources`, maintained on every write (so the sandbox never
 * scans every resource per request): per type, per id prefix (descendants), role assignments
 * per principal, managed apps per managed resource group and per resourceUsageId, and
 * user-assigned identities per clientId and per principalId. The indexed values are fixed
 * when a resource is written (ids, types, principals); what may change in place (an app's
 * authorizations, provisioning state) is read from the resource itself at lookup time.
 */
export class ResourceIndex {
  /** type (lower case) → resources of that type, in the order of the resource map. */
  byType = new Map<string, Map<string, ArmResource>>();
  /** id prefix at a segment boundary → keys of the resources strictly beneath it. */
  descendants = new Map<string, Set<string>>();
  /** role assignments per principalId (lower case). */
  rasByPrincipal = new Map<string, Map<string, ArmResource>>();
  /** managed apps per managed resource group id (idKey; "" for none, or one that covers everything). */
  appsByMrg = new Map<string, Map<string, ArmResource>>();
  /** managed apps per id prefix of their managed resource group (the MRG id and every id above it). */
  appsByMrgPrefix = new Map<string, Map<string, ArmResource>>();
  appsByUsageId = new Map<string, Map<string, ArmResource>>();
  /** managed apps per principalId (lower case) of their own identities, system- and user-assigned. */
  appsByIdentityPrincipal = new Map<string, Map<string, ArmResource>>();
  uamisByClientId = new Map<string, Map<string, ArmResource>>();
  uamisByPrincipalId = new Map<string, Map<string, ArmResource>>();

  add(key: string, r: ArmResource): void {
    addTo(this.byType, lc(r.type), key, r);
    const anc = ancestorsOf(key);
    for (let i = 1; i < anc.length; i++) {
      let set = this.descendants.get(anc[i]);
      if (!set) this.descendants.set(anc[i], set = new Set());
      set.add(key);
    }
    for (const [index, k] of this.derived(r)) {
      if (index === this.appsByMrgPrefix) for (const a of k === "" ? [""] : ancestorsOf(k)) addTo(index, a, key, r);
      else addTo(index, k, key, r);
    }
  }

  remove(key: string, r: ArmResource): void {
    removeFrom(this.byType, lc(r.type), key);
    const anc = ancestorsOf(key);
    for (let i = 1; i < anc.length; i++) {
      const set = this.descendants.get(anc[i]);
      if (set?.delete(key) && set.size === 0) this.descendants.delete(anc[i]);
    }
    for (const [index, k] of this.derived(r)) {
      if (index === this.appsByMrgPrefix) for (const a of k === "" ? [""] : ancestorsOf(k)) removeFrom(index, a, key);
      else removeFrom(index, k, key);
    }
  }

  /** The keyed indexes a resource belongs to, with its key in each. */
  private derived(r: ArmResource): Array<[Map<string, Map<string, ArmResource>>, string]> {
    const type = lc(r.type);
    const props = (r.properties ?? {}) as Record<string, unknown>;
    if (type === RA) return [[this.rasByPrincipal, lc(props.principalId)]];
    if (type === UAMI) return [[this.uamisByClientId, lc(props.clientId)], [this.uamisByPrincipalId, lc(props.principalId)]];
    if (type === APP) {
      const out: Array<[Map<string, Map<string, ArmResource>>, string]> = [];
      const mrg = String(props.managedResourceGroupId ?? "");
      // An app without an MRG id is filed under "": scopeContains("", anything) holds.
      out.push([this.appsByMrg, idKey(mrg)]);
      if (mrg) out.push([this.appsByMrgPrefix, idKey(mrg)]);
      const usage = (props.billingDetails as { resourceUsageId?: unknown } | null | undefined)?.resourceUsageId;
      if (usage !== undefined && usage !== null) out.push([this.appsByUsageId, lc(usage)]);
      const identity = (r.identity ?? {}) as { principalId?: unknown; userAssignedIdentities?: Record<string, { principalId?: unknown } | null> };
      const principals = new Set([identity.principalId, ...Object.values(identity.userAssignedIdentities ?? {}).map((u) => u?.principalId)]
        .filter((x) => typeof x === "string" && x !== "").map(lc));
      for (const principal of principals) out.push([this.appsByIdentityPrincipal, principal]);
      return out;
    }
    return [];
  }
}

/** The resource map: a VersionedMap whose writes keep a ResourceIndex up to date. */
export class ResourceMap extends Map<string, ArmResource> {
  version = 0;
  readonly index = new ResourceIndex();
  override set(key: string, value: ArmResource): this {
    this.version++;
    // Before super() has run its own initialisers, Map's constructor calls set(): no entries then.
    const old = super.get(key);
    if (old !== undefined) this.index.remove(key, old);
    super.set(key, value);
    this.index.add(key, value);
    return this;
  }
  override delete(key: string): boolean {
    this.version++;
    const old = super.get(key);
    if (old === undefined && !super.has(key)) return false;
    if (old !== undefined) this.index.remove(key, old);
    return super.delete(key);
  }
  override clear(): void {
    this.version++;
    for (const [k, v] of this) this.index.remove(k, v);
    super.clear();
  }
}

/**
 * The tenants by id, with an index by lower-cased id and verified domains, so that a token
 * request names its tenant (`/{tenant}/oauth2/…`, id or domain, any case) in one lookup.
 */
export class TenantMap extends Map<string, Tenant> {
  private byName = new Map<string, Tenant>();
  override set(key: string, value: Tenant): this {
    const old = super.get(key);
    if (old) this.unindex(old);
    super.set(key, value);
    for (const k of this.namesOf(value)) this.byName.set(k, value);
    return this;
  }
  override delete(key: string): boolean {
    const old = super.get(key);
    if (old) this.unindex(old);
    return super.delete(key);
  }
  override clear(): void {
    this.byName.clear();
    super.clear();
  }
  /** The tenant a path segment names: its id or one of its verified domains, any case. */
  find(idOrDomain: string): Tenant | undefined {
    return this.byName.get(idOrDomain.toLowerCase());
  }
  private namesOf(t: Tenant): string[] {
    return [t.tenantId, t.defaultDomain, ...(t.domains ?? [])].map((x) => x.toLowerCase());
  }
  private unindex(t: Tenant): void {
    for (const k of this.namesOf(t)) if (this.byName.get(k) === t) this.byName.delete(k);
  }
}

/** A Map that counts its changes, so indexes built from it know when they are stale. */
export class VersionedMap<K, V> extends Map<K, V> {
  version = 0;
  override set(key: K, value: V): this {
    this.version++;
    return super.set(key, value);
  }
  override delete(key: K): boolean {
    this.version++;
    return super.delete(key);
  }
  override clear(): void {
    this.version++;
    super.clear();
  }
}

export function mergeOptions<T>(base: T, patch: unknown): T {
  if (patch === undefined || patch === null || typeof patch !== "object" || Array.isArray(patch)) return base;
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (!(k in out)) throw new RangeError(`Cannot set option: unknown key '${k}'`);
    const cur = out[k];
    if (cur !== null && typeof cur === "object" && !Array.isArray(cur)) {
      if (v === null || typeof v !== "object" || Array.isArray(v)) throw new TypeError(`Cannot set option '${k}': expected an object of options`);
      out[k] = mergeOptions(cur, v);
    } else {
      if (typeof v !== typeof cur || Array.isArray(v) !== Array.isArray(cur)) {
        throw new TypeError(`Cannot set option '${k}': expected ${Array.isArray(cur) ? "array" : typeof cur}`);
      }
      out[k] = v;
    }
  }
  return out as T;
}

// ---------------------------------------------------------------- ARM resources and RBAC

export interface ArmResource {
  id: string;
  name: string;
  type: string;
  location?: string;
  kind?: string;
  managedBy?: string;
  sku?: Record<string, unknown>;
  plan?: Record<string, unknown>;
  identity?: Record<string, unknown>;
  tags?: Record<string, string>;
  properties: Record<string, unknown>;
  /** Tenant that owns the subscription the resource lives in. */
  tenantId: string;
  subscriptionId: string;
  resourceGroup?: string;
  createdAtMs: number;
  [extra: string]: unknown;
}

export const ROLE = {
  Owner: "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
  Contributor: "b24988ac-6180-42a0-ab88-20f7382dd24c",
  Reader: "acdd72a7-3c48-4ae5-b1e1-b0e1aa6e1b44",
  ManagedIdentityContributor: "e40ec5ca-96e0-45a2-b4ff-59039f2c2b59",
  KeyVaultAdministrator: "00482a5a-887f-4fb3-b363-3b7fe8e74483",
  KeyVaultCryptoOfficer: "14b46e9e-c2b7-41b4-b07b-48a6ebf60603",
  KeyVaultCryptoUser: "12338af0-0e69-4776-bea7-57ae8d297424",
  KeyVaultSecretsOfficer: "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
  KeyVaultSecretsUser: "4633458b-17de-408a-b874-0445c86b69e6",
  StorageBlobDataContributor: "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
  StorageBlobDataReader: "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
  ServiceBusDataOwner: "090c5cfd-751d-490a-894a-3ce6f1109419",
  ServiceBusDataSender: "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39",
  ServiceBusDataReceiver: "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0",
} as const;

/** Built-in role definitions, reduced to the actions the sandbox checks. Patterns use `*` like Azure's. */
export const ROLE_DEFINITIONS: Record<string, { roleName: string; actions: string[]; notActions: string[]; dataActions: string[] }> = {
  [ROLE.Owner]: { roleName: "Owner", actions: ["*"], notActions: [], dataActions: [] },
  [ROLE.Contributor]: {
    roleName: "Contributor",
    actions: ["*"],
    notActions: ["Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write"],
    dataActions: [],
  },
  [ROLE.Reader]: { roleName: "Reader", actions: ["*/read"], notActions: [], dataActions: [] },
  [ROLE.ManagedIdentityContributor]: {
    roleName: "Managed Identity Contributor",
    actions: ["Microsoft.ManagedIdentity/userAssignedIdentities/*", "Microsoft.Resources/subscriptions/resourceGroups/read"],
    notActions: [],
    dataActions: [],
  },
  [ROLE.KeyVaultAdministrator]: {
    roleName: "Key Vault Administrator",
    actions: ["Microsoft.KeyVault/*/read"],
    notActions: [],
    dataActions: ["Microsoft.KeyVault/vaults/*"],
  },
  [ROLE.KeyVaultCryptoOfficer]: {
    roleName: "Key Vault Crypto Officer",
    actions: ["Microsoft.KeyVault/*/read"],
    notActions: [],
    dataActions: ["Microsoft.KeyVault/vaults/keys/*", "Microsoft.KeyVault/vaults/keyrotationpolicies/*"],
  },
  [ROLE.KeyVaultCryptoUser]: {
    roleName: "Key Vault Crypto User",
    actions: [],
    notActions: [],
    dataActions: [
      "Microsoft.KeyVault/vaults/keys/read",
      "Microsoft.KeyVault/vaults/keys/update/action",
      "Microsoft.KeyVault/vaults/keys/backup/action",
      "Microsoft.KeyVault/vaults/keys/encrypt/action",
      "Microsoft.KeyVault/vaults/keys/decrypt/action",
      "Microsoft.KeyVault/vaults/keys/wrap/action",
      "Microsoft.KeyVault/vaults/keys/unwrap/action",
      "Microsoft.KeyVault/vaults/keys/sign/action",
      "Microsoft.KeyVault/vaults/keys/verify/action",
    ],
  },
  [ROLE.KeyVaultSecretsOfficer]: {
    roleName: "Key Vault Secrets Officer",
    actions: ["Microsoft.KeyVault/*/read"],
    notActions: [],
    dataActions: ["Microsoft.KeyVault/vaults/secrets/*"],
  },
  [ROLE.KeyVaultSecretsUser]: {
    roleName: "Key Vault Secrets User",
    actions: [],
    notActions: [],
    dataActions: ["Microsoft.KeyVault/vaults/secrets/getSecret/action", "Microsoft.KeyVault/vaults/secrets/readMetadata/action"],
  },
  [ROLE.StorageBlobDataContributor]: {
    roleName: "Storage Blob Data Contributor",
    actions: ["Microsoft.Storage/storageAccounts/blobServices/containers/*"],
    notActions: [],
    dataActions: ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*"],
  },
  [ROLE.StorageBlobDataReader]: {
    roleName: "Storage Blob Data Reader",
    actions: ["Microsoft.Storage/storageAccounts/blobServices/containers/read"],
    notActions: [],
    dataActions: ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"],
  },
  [ROLE.ServiceBusDataOwner]: {
    roleName: "Azure Service Bus Data Owner",
    actions: ["Microsoft.ServiceBus/*"],
    notActions: [],
    dataActions: ["Microsoft.ServiceBus/*"],
  },
  [ROLE.ServiceBusDataSender]: {
    roleName: "Azure Service Bus Data Sender",
    actions: ["Microsoft.ServiceBus/*/queues/read"],
    notActions: [],
    dataActions: ["Microsoft.ServiceBus/*/send/action"],
  },
  [ROLE.ServiceBusDataReceiver]: {
    roleName: "Azure Service Bus Data Receiver",
    actions: ["Microsoft.ServiceBus/*/queues/read"],
    notActions: [],
    dataActions: ["Microsoft.ServiceBus/*/receive/action"],
  },
};

export function actionMatches(pattern: string, action: string): boolean {
  const re = new RegExp("^" + pattern.split("*").map((s) => s.replace(/[.+?^${}()|[\]\\/]/g, "\\$&")).join(".*") + "$", "i");
  return re.test(action);
}

/** True when `scope` equals `ancestor` or lies beneath it (ARM ids, case-insensitive, whole segments). */
export function scopeContains(ancestor: string, scope: string): boolean {
  const a = ancestor.replace(/\/+$/, "").toLowerCase();
  const s = scope.replace(/\/+$/, "").toLowerCase();
  return a === "" || s === a || s.startsWith(a + "/");
}

// ---------------------------------------------------------------- the state

export interface Tenant {
  tenantId: string;
  displayName: string;
  defaultDomain: string;
  /** Every verified domain, defaultDomain first. */
  domains: string[];
}
export interface Subscription { subscriptionId: string; displayName: string; tenantId: string; state: string }
export interface User { objectId: string; tenantId: string; userPrincipalName: string; displayName: string }

export class SandboxState {
  seed: WorldSeed;
  options: SandboxOptions;
  clockOffsetMs = 0;
  tenants: TenantMap = new TenantMap();
  subscriptions = new Map<string, Subscription>();
  users = new Map<string, User>();
  /** Every ARM resource, keyed by lower-cased id. */
  resources: ResourceMap = new ResourceMap();
  /** Per-service data (keys, secrets, usage events, …), created on first use. */
  stores = new Map<string, unknown>();
  /** The az stand-in's selected subscription. */
  azSubscriptionId: string;

  constructor(seed: WorldSeed) {
    this.seed = seed;
    this.options = mergeOptions(DEFAULT_OPTIONS, seed.options ?? {});
    this.azSubscriptionId = seed.isv.subscriptionId;
    this.loadSeed(seed);
  }

  now(): number {
    return Date.now() + this.clockOffsetMs;
  }

  store<T>(name: string, init: () => T): T {
    let s = this.stores.get(name) as T | undefined;
    if (s === undefined) {
      s = init();
      this.stores.set(name, s);
    }
    return s;
  }

  // ---- resources
  getResource(id: string): ArmResource | undefined {
    return this.resources.get(id.replace(/\/+$/, "").toLowerCase());
  }

  putResource(r: ArmResource): ArmResource {
    this.resources.set(r.id.toLowerCase(), r);
    return r;
  }

  deleteResource(id: string): boolean {
    const key = id.toLowerCase();
    let found = this.resources.delete(key);
    for (const k of [...(this.resources.index.descendants.get(key) ?? [])]) found = this.resources.delete(k) || found;
    return found;
  }

  listResources(filter: (r: ArmResource) => boolean = () => true): ArmResource[] {
    return [...this.resources.values()].filter(filter);
  }

  /** Resources strictly beneath `id` (ARM ids, any case), in the order of the resource map's index. */
  resourcesUnder(id: string): ArmResource[] {
    const out: ArmResource[] = [];
    for (const k of this.resources.index.descendants.get(idKey(id)) ?? []) {
      const r = this.resources.get(k);
      if (r) out.push(r);
    }
    return out;
  }

  /** Resources of one type (any case), in the resource map's order. Indexed per type; a copy. */
  ofType(type: string): ArmResource[] {
    return [...(this.resources.index.byType.get(type.toLowerCase())?.values() ?? [])];
  }

  /**
   * Resources of one type strictly beneath `scope` (any case), in the resource map's order:
   * from the type index or the descendants index, whichever holds fewer entries.
   */
  ofTypeUnder(type: string, scope: string): ArmResource[] {
    const { byType, descendants } = this.resources.index;
    const ofType = byType.get(type.toLowerCase());
    const key = idKey(scope);
    const under = descendants.get(key);
    if (!ofType || !under) return [];
    if (ofType.size <= under.size) {
      const prefix = `${key}/`;
      return [...ofType.entries()].filter(([k]) => k.startsWith(prefix)).map(([, r]) => r);
    }
    const out: ArmResource[] = [];
    for (const k of under) {
      const r = ofType.get(k);
      if (r) out.push(r);
    }
    return out;
  }

  managedApps(): ArmResource[] {
    return this.ofType("Microsoft.Solutions/applications");
  }

  /** The managed application with this id (any case, trailing slashes ignored). */
  managedApp(id: string): ArmResource | undefined {
    return this.resources.index.byType.get(APP)?.get(idKey(id)) ?? this.resources.index.byType.get(APP)?.get(id.toLowerCase());
  }

  /** Managed applications whose billingDetails.resourceUsageId is `resourceUsageId` (any case). */
  appsByResourceUsageId(resourceUsageId: string): ArmResource[] {
    // Every write goes through the resource map (putResource), which indexes billingDetails: an
    // unknown id is answered from the index too, without visiting every app.
    const want = resourceUsageId.toLowerCase();
    return [...(this.resources.index.appsByUsageId.get(want)?.values() ?? [])]
      .filter((a) => lc((a.properties.billingDetails as { resourceUsageId?: string } | null)?.resourceUsageId) === want);
  }

  /** Managed applications whose managed resource group contains `scope`. */
  appsCovering(scope: string): ArmResource[] {
    const out: ArmResource[] = [];
    const { appsByMrg } = this.resources.index;
    for (const a of new Set([...ancestorsOf(idKey(scope)), ""])) for (const app of appsByMrg.get(a)?.values() ?? []) out.push(app);
    return out;
  }

  /** Managed applications whose managed resource group is `scope` or lies beneath it. */
  appsWithMrgUnder(scope: string): ArmResource[] {
    return [...(this.resources.index.appsByMrgPrefix.get(idKey(scope))?.values() ?? [])];
  }

  /** Managed applications one of whose own identities (system- or user-assigned) has this principalId (any case). */
  appsWithIdentity(principalId: string): ArmResource[] {
    return [...(this.resources.index.appsByIdentityPrincipal.get(principalId.toLowerCase())?.values() ?? [])];
  }

  /** Role assignments of one principal (any case). */
  roleAssignmentsOf(principalId: string): ArmResource[] {
    return [...(this.resources.index.rasByPrincipal.get(principalId.toLowerCase())?.values() ?? [])];
  }

  /** The managed application whose managed resource group contains `scope`. */
  appForScope(scope: string): ArmResource | undefined {
    return this.appsCovering(scope).find((a) => scopeContains(String(a.properties.managedResourceGroupId ?? ""), scope));
  }

  findIdentityByClientId(clientId: string): ArmResource | undefined {
    const m = this.resources.index.uamisByClientId.get(clientId.toLowerCase());
    return m?.values().next().value;
  }

  findIdentityByPrincipalId(principalId: string): ArmResource | undefined {
    const m = this.resources.index.uamisByPrincipalId.get(principalId.toLowerCase());
    return m?.values().next().value;
  }

  federatedCredentialsOf(identityId: string): ArmResource[] {
    const prefix = identityId.toLowerCase() + "/federatedidentitycredentials/";
    const under = this.resources.index.descendants.get(prefix.slice(0, -1)) ?? [];
    return [...under].filter((k) => !k.slice(prefix.length).includes("/")).map((k) => this.resources.get(k)!);
  }

  // ---- RBAC
  /** Role definition ids that `principalId` holds at `scope`: role assignments at or above it, and managed app authorizations on the MRG. */
  rolesAt(principalId: string, scope: string): string[] {
    const p = principalId.toLowerCase();
    const roles: string[] = [];
    for (const ra of this.roleAssignmentsOf(p)) {
      const props = ra.properties as { principalId?: string; roleDefinitionId?: string; scope?: string };
      if (String(props.principalId ?? "").toLowerCase() !== p) continue;
      if (!scopeContains(String(props.scope ?? ""), scope)) continue;
      roles.push(String(props.roleDefinitionId ?? "").split("/").pop()!.toLowerCase());
    }
    for (const app of this.appsCovering(scope)) {
      const mrg = String(app.properties.managedResourceGroupId ?? "");
      if (!mrg || !scopeContains(mrg, scope)) continue;
      const auths = (app.properties.authorizations ?? []) as Array<{ principalId: string; roleDefinitionId: string }>;
      for (const a of auths) if (a.principalId.toLowerCase() === p) roles.push(a.roleDefinitionId.toLowerCase());
    }
    return roles;
  }

  /** Whether `principalId` may perform `action` (control plane) or `dataAction` at `scope`. */
  isAllowed(principalId: string, scope: string, action: { action?: string; dataAction?: string }): boolean {
    for (const roleId of this.rolesAt(principalId, scope)) {
      const def = ROLE_DEFINITIONS[roleId];
      if (!def) continue;
      if (action.action) {
        const ok = def.actions.some((p) => actionMatches(p, action.action!)) &&
          !def.notActions.some((p) => actionMatches(p, action.action!));
        if (ok) return true;
      }
      if (action.dataAction && def.dataActions.some((p) => actionMatches(p, action.dataAction!))) return true;
    }
    return false;
  }

  // ---- seed
  private loadSeed(seed: WorldSeed): void {
    const t0 = this.now();
    const isv = seed.isv;
    const isvDomain = `${isv.tenantName}.onmicrosoft.com`;
    this.tenants.set(isv.tenantId, { tenantId: isv.tenantId, displayName: isv.tenantName, defaultDomain: isvDomain, domains: [isvDomain, ...(isv.domains ?? [])] });
    this.subscriptions.set(isv.subscriptionId, { subscriptionId: isv.subscriptionId, displayName: isv.subscriptionName, tenantId: isv.tenantId, state: "Enabled" });
    this.users.set(isv.user.objectId, { objectId: isv.user.objectId, tenantId: isv.tenantId, userPrincipalName: isv.user.upn, displayName: isv.user.displayName });
    this.putResource({
      id: `/subscriptions/${isv.subscriptionId}/providers/Microsoft.Authorization/roleAssignments/${randomUUID()}`,
      name: "", type: "Microsoft.Authorization/roleAssignments", tenantId: isv.tenantId, subscriptionId: isv.subscriptionId,
      properties: { principalId: isv.user.objectId, principalType: "User", scope: `/subscriptions/${isv.subscriptionId}`, roleDefinitionId: `/subscriptions/${isv.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${ROLE.Owner}` },
      createdAtMs: t0,
    });
    for (const c of seed.customers) {
      this.tenants.set(c.tenantId, { tenantId: c.tenantId, displayName: c.tenantName, defaultDomain: `${c.tenantName}.onmicrosoft.com`, domains: [`${c.tenantName}.onmicrosoft.com`] });
      this.subscriptions.set(c.subscriptionId, { subscriptionId: c.subscriptionId, displayName: c.subscriptionName, tenantId: c.tenantId, state: "Enabled" });
      const sub = `/subscriptions/${c.subscriptionId}`;
      const rgId = `${sub}/resourceGroups/${c.resourceGroup}`;
      const mrgId = `${sub}/resourceGroups/${c.managedResourceGroup}`;
      const appId = `${rgId}/providers/Microsoft.Solutions/applications/${c.app.name}`;
      const base = { tenantId: c.tenantId, subscriptionId: c.subscriptionId, location: c.location, createdAtMs: t0 };
      this.putResource({ ...base, id: rgId, name: c.resourceGroup, type: "Microsoft.Resources/resourceGroups", resourceGroup: c.resourceGroup, properties: { provisioningState: "Succeeded" } });
      this.putResource({ ...base, id: mrgId, name: c.managedResourceGroup, type: "Microsoft.Resources/resourceGroups", resourceGroup: c.managedResourceGroup, managedBy: appId, properties: { provisioningState: "Succeeded" } });
      const provisioningState = c.app.provisioningState ?? "Succeeded";
      this.putResource({
        ...base,
        id: appId,
        name: c.app.name,
        type: "Microsoft.Solutions/applications",
        resourceGroup: c.resourceGroup,
        kind: "MarketPlace",
        managedBy: undefined,
        plan: { ...c.app.plan, promotionCode: "" },
        identity: { type: "SystemAssigned", principalId: randomUUID(), tenantId: c.tenantId },
        properties: {
          managedResourceGroupId: mrgId,
          provisioningState,
          // billingDetails only exist once provisioning succeeded (docs/azure-behaviour.md §5.1).
          billingDetails: provisioningState === "Succeeded" ? { resourceUsageId: c.app.resourceUsageId } : null,
          publisherTenantId: isv.tenantId,
          customerSupport: { contactName: "", email: "", phone: "" },
          authorizations: [{ principalId: isv.user.objectId, roleDefinitionId: ROLE.Owner }],
          createdBy: { oid: randomUUID(), puid: "", applicationId: "" },
          jitAccessPolicy: { jitAccessEnabled: false },
        },
      });
    }
  }

  /** The world block of sandbox.json. */
  summary(): WorldSummary {
    const seed = this.seed;
    return {
      isv: {
        tenantId: seed.isv.tenantId,
        subscriptionId: seed.isv.subscriptionId,
        userObjectId: seed.isv.user.objectId,
        userPrincipalName: seed.isv.user.upn,
        location: seed.isv.location,
        ...(seed.isv.managedIdentity ? { managedIdentity: { ...seed.isv.managedIdentity } } : {}),
      },
      offers: seed.offers.map((o) => ({
        product: o.product,
        ...(o.technicalConfiguration ? { technicalConfiguration: { tenantId: o.technicalConfiguration.tenantId, appId: o.technicalConfiguration.appId } } : {}),
      })),
      customers: seed.customers.map((c) => ({
        name: c.name,
        tenantId: c.tenantId,
        subscriptionId: c.subscriptionId,
        resourceGroup: c.resourceGroup,
        managedResourceGroup: c.managedResourceGroup,
        managedAppId: `/subscriptions/${c.subscriptionId}/resourceGroups/${c.resourceGroup}/providers/Microsoft.Solutions/applications/${c.app.name}`,
        resourceUsageId: c.app.resourceUsageId,
        planId: c.app.plan.name,
        dimensions: this.dimensionsOf(c.app.plan.product, c.app.plan.name) ?? [],
        keyVaults: (c.mrgResources?.keyVaults ?? []).map((v) => v.name),
        serviceBusNamespaces: (c.mrgResources?.serviceBusNamespaces ?? []).map((n) => ({ name: n.name, queues: n.queues ?? [] })),
      })),
    };
  }

  /** Dimensions the offer's plan declares, or undefined when the plan is unknown. */
  dimensionsOf(product: string, planName: string): string[] | undefined {
    const offer = this.seed.offers.find((o) => o.product === product);
    return offer?.plans.find((p) => p.name === planName)?.dimensions;
  }
}
