// Emulated Key Vault data plane (docs/azure-behaviour.md §4.1, §4.2): one HTTPS port per vault, the vault told
// apart by the local port. Order per request: the 401 challenge before anything is parsed (the
// SDK's first request has no token and no body), bearer and tenant, api-version, then RBAC (or
// access policies when the vault does not use RBAC), then the operation.
import * as jose from "jose";
import { HttpReplyError, type Reply, type RouteContext, type ServiceDef } from "../../core/http.mts";
import { BearerError } from "../../core/tokens.mts";
import type { KeyVaultHooks, SandboxContext } from "../../core/context.mts";
import {
  KvError, checkUsable, createKeyVersion, decodeBase64Any, deleteKey, deleteSecret, deletedKeyBundle, deletedSecretBundle, findDeletedKey, findKey, findSecret, keyBundle, keyItem, recoveryOf, secretBundle,
  secretItem, setSecretVersion, signDigest, updateKeyVersion, vaultStore, verifyDigest, type Recovery, type VaultData,
} from "./store.mts";

const VAULT_AUDIENCE = "https://vault.azure.net";
/** Data-plane api-versions the sandbox answers (docs/azure-behaviour.md §4.1: same shapes for all). */
const KEYVAULT_DATA_API_VERSIONS = [
  "7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01", "2026-04-01",
  // The previews of the data-plane spec tree (and of the SDKs built from it, such as az's), same shapes.
  "7.0-preview", "7.1-preview", "7.2-preview", "7.3-preview", "7.4-preview.1", "7.5-preview.1", "7.6-preview.1", "7.6-preview.2", "7.7-preview.1",
];
/** A Host header worth echoing in object ids: a DNS name or an IP literal, with an optional port. */
const HOST_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;
const LATEST_API_VERSION = "2026-04-01";

/** The vault's base URI on the host of the request's Host header (https, as Key Vault is), or the listening one. */
function vaultUriAsCalled(c: RouteContext, vault: VaultData): string {
  const host = c.header("host")?.trim();
  if (!host || !HOST_RE.test(host)) return vault.uri;
  return `https://${host.replace(/:443$/, "").toLowerCase()}/`;
}

function kvError(status: number, code: string, message: string, inner?: string, headers?: Record<string, string>): Reply {
  return { status, headers, body: { error: { code, message, ...(inner ? { innererror: { code: inner } } : {}) } } };
}

function kvFail(status: number, code: string, message: string, inner?: string, headers?: Record<string, string>): never {
  throw new HttpReplyError(kvError(status, code, message, inner, headers));
}

interface Permission {
  /** RBAC data action. */
  data: string;
  /** Access-policy permission: [object kind, permission]. */
  policy: ["keys" | "secrets", string];
}

const P = {
  keyCreate: { data: "Microsoft.KeyVault/vaults/keys/create/action", policy: ["keys", "create"] },
  keyGet: { data: "Microsoft.KeyVault/vaults/keys/read", policy: ["keys", "get"] },
  keyList: { data: "Microsoft.KeyVault/vaults/keys/read", policy: ["keys", "list"] },
  keyUpdate: { data: "Microsoft.KeyVault/vaults/keys/update/action", policy: ["keys", "update"] },
  keyDelete: { data: "Microsoft.KeyVault/vaults/keys/delete", policy: ["keys", "delete"] },
  // Which data action guards reading deleted keys is unconfirmed; the sandbox asks for keys/read.
  deletedKeyGet: { data: "Microsoft.KeyVault/vaults/keys/read", policy: ["keys", "get"] },
  keySign: { data: "Microsoft.KeyVault/vaults/keys/sign/action", policy: ["keys", "sign"] },
  keyVerify: { data: "Microsoft.KeyVault/vaults/keys/verify/action", policy: ["keys", "verify"] },
  secretSet: { data: "Microsoft.KeyVault/vaults/secrets/setSecret/action", policy: ["secrets", "set"] },
  secretGet: { data: "Microsoft.KeyVault/vaults/secrets/getSecret/action", policy: ["secrets", "get"] },
  secretList: { data: "Microsoft.KeyVault/vaults/secrets/readMetadata/action", policy: ["secrets", "list"] },
  secretDelete: { data: "Microsoft.KeyVault/vaults/secrets/delete", policy: ["secrets", "delete"] },
} satisfies Record<string, Permission>;

interface KvCall {
  c: RouteContext;
  vault: VaultData;
  claims: jose.JWTPayload;
  recovery: Recovery;
  nowS: number;
  body<T = Record<string, unknown>>(): T;
}

export function createKeyVaultService(ctx: SandboxContext): { service: ServiceDef; hooks: KeyVaultHooks } {
  const { state, tokens } = ctx;
  const vaults = vaultStore(state);
  const byPort = new Map<number, VaultData>();
  const opening = new Map<string, Promise<string>>();

  const challengeHeaders = (vault: VaultData) => ({
    "WWW-Authenticate": `Bearer authorization="https://login.windows.net/${vault.tenantId}", resource="${VAULT_AUDIENCE}"`,
  });

  const withHeaders = (c: RouteContext, vault: VaultData | undefined, reply: Reply): Reply => ({
    ...reply,
    headers: {
      "Cache-Control": "no-cache",
      Pragma: "no-cache",
      Expires: "-1",
      "Strict-Transport-Security": "max-age=31536000;includeSubDomains",
      "X-Content-Type-Options": "nosniff",
      "x-ms-request-id": c.requestId,
      ...(c.header("x-ms-client-request-id") ? { "x-ms-client-request-id": c.header("x-ms-client-request-id")! } : {}),
      "x-ms-keyvault-service-version": "1.9.2164.1",
      "x-ms-keyvault-network-info": "conn_type=Ipv4;addr=127.0.0.1;act_addr_fam=InterNetwork;",
      ...(vault ? { "x-ms-keyvault-region": String(state.getResource(vault.id)?.location ?? "westeurope") } : {}),
      ...(reply.headers ?? {}),
    },
  });

  /** 401 / 403 unless the caller may perform `perm` on the vault. */
  const authorizeData = (vault: VaultData, claims: jose.JWTPayload, perm: Permission) => {
    const res = state.getResource(vault.id);
    const props = (res?.properties ?? {}) as { enableRbacAuthorization?: boolean; accessPolicies?: unknown[] };
    const oid = String(claims.oid ?? "");
    const who = `appid=${String(claims.appid ?? "")};oid=${oid};iss=${String(claims.iss ?? "")}`;
    const where = `${vault.name};location=${String(res?.location ?? "westeurope")}`;
    if (props.enableRbacAuthorization === true) {
      if (state.isAllowed(oid, vault.id, { dataAction: perm.data })) return;
      kvFail(403, "Forbidden",
        "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\n" +
        `Caller: ${who}\r\nAction: '${perm.data}'\r\nResource: '${vault.id.toLowerCase()}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: null \r\nVault: ${where}\r\n`,
        "ForbiddenByRbac");
    }
    const [kind, permission] = perm.policy;
    const policies = (props.accessPolicies ?? []) as Array<{ tenantId?: string; objectId?: string; permissions?: Record<string, string[]> }>;
    const granted = policies.some((p) =>
      String(p.objectId ?? "").toLowerCase() === oid.toLowerCase() &&
      String(p.tenantId ?? "").toLowerCase() === String(claims.tid ?? "").toLowerCase() &&
      (p.permissions?.[kind] ?? []).some((x) => x.toLowerCase() === permission || x.toLowerCase() === "all")
    );
    if (!granted) {
      kvFail(403, "Forbidden",
        `The user, group or application '${who}' does not have ${kind} ${permission} permission on key vault '${where}'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287`,
        "AccessDenied");
    }
  };

  /** Challenge, bearer, tenant, api-version, permission; then `fn`. Every reply gets Key Vault's headers. */
  const handle = (perm: Permission | undefined, fn: (k: KvCall) => Reply | Promise<Reply>) => async (c: RouteContext): Promise<Reply> => {
    const vault = byPort.get(c.localPort);
    try {
      if (!vault) kvFail(404, "VaultNotFound", "This vault no longer exists.");
      const header = c.header("authorization");
      if (!header || !/^Bearer\s+\S/i.test(header.trim())) {
        kvFail(401, "Unauthorized", "Request is missing a Bearer or PoP token.", undefined, challengeHeaders(vault));
      }
      let claims: jose.JWTPayload;
      try {
        claims = await tokens.verifyBearer(header, [VAULT_AUDIENCE]);
      } catch (err) {
        if (!(err instanceof BearerError)) throw err;
        let peek: jose.JWTPayload = {};
        try {
          peek = jose.decodeJwt(header.trim().replace(/^Bearer\s+/i, ""));
        } catch { /* not a JWT */ }
        const message = err.code === "audience"
          ? `AKV10022: Invalid audience. Expected ${VAULT_AUDIENCE}, found: ${String(peek.aud ?? "")}.`
          : err.code === "expired" ? "AKV10014: The token is expired."
          : err.code === "issuer" ? `AKV10032: Invalid issuer. Expected one of https://sts.windows.net/${vault.tenantId}/, found ${String(peek.iss ?? "")}.`
          : "AKV10000: Request is missing a Bearer or PoP token.";
        kvFail(401, "Unauthorized", message, undefined, challengeHeaders(vault));
      }
      if (String(claims.tid ?? "").toLowerCase() !== vault.tenantId.toLowerCase()) {
        kvFail(401, "Unauthorized",
          `AKV10032: Invalid issuer. Expected one of https://sts.windows.net/${vault.tenantId}/, found https://sts.windows.net/${String(claims.tid ?? "")}/.`,
          undefined, challengeHeaders(vault));
      }
      const apiVersion = c.url.searchParams.get("api-version");
      if (!apiVersion) kvFail(400, "BadParameter", "The api-version query parameter is missing.");
      if (!KEYVAULT_DATA_API_VERSIONS.includes(apiVersion)) {
        kvFail(400, "BadParameter", `The specified version (${apiVersion}) is not recognized. Consider using the latest supported version (${LATEST_API_VERSION}).`);
      }
      if (perm) authorizeData(vault, claims, perm);
      let parsed: unknown;
      const body = <T,>(): T => {
        if (parsed === undefined) {
          const text = c.text();
          try {
            parsed = text.trim() ? JSON.parse(text) : {};
          } catch {
            kvFail(400, "BadParameter", "The request body is not valid JSON.");
          }
          if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) kvFail(400, "BadParameter", "The request body must be a JSON object.");
        }
        return parsed as T;
      };
      const recovery = recoveryOf(state.getResource(vault.id)?.properties);
      // Object ids (kid, secret id) name the host the client called, as Key Vault's do: the vault's
      // DNS name behind a proxy front, 127.0.0.1:<port> when called directly.
      const view: VaultData = { ...vault, uri: vaultUriAsCalled(c, vault) };
      return withHeaders(c, vault, await fn({ c, vault: view, claims, recovery, nowS: Math.floor(state.now() / 1000), body }));
    } catch (err) {
      if (err instanceof KvError) return withHeaders(c, vault, kvError(err.status, err.code, err.message, err.inner));
      if (err instanceof HttpReplyError) return withHeaders(c, vault, err.reply);
      throw err;
    }
  };

  const ok = (body: unknown): Reply => ({ status: 200, body });

  const keyOp = (op: "sign" | "verify") => (k: KvCall) => {
    const { name, kv } = findKey(k.vault, k.c.params.name, k.c.params.version);
    checkUsable(kv, op, k.nowS);
    const b = k.body<{ alg?: unknown; value?: unknown; digest?: unknown }>();
    if (op === "sign") {
      const digest = decodeBase64Any(b.value, "value");
      const sig = ctx.obs.measureCpu("keyvault.sign", () => signDigest(kv, b.alg, digest));
      return ok({ kid: `${k.vault.uri}keys/${name}/${kv.version}`, value: sig.toString("base64url") });
    }
    const digest = decodeBase64Any(b.digest, "digest");
    const signature = decodeBase64Any(b.value, "value");
    return ok({ value: verifyDigest(kv, b.alg, digest, signature) });
  };

  const getKey = (k: KvCall) => {
    const { name, kv } = findKey(k.vault, k.c.params.name, k.c.params.version);
    checkUsable(kv, "get", k.nowS);
    return ok(keyBundle(k.vault, name, kv, k.recovery));
  };

  const updateKey = (k: KvCall) => {
    const { name, kv } = findKey(k.vault, k.c.params.name, k.c.params.version);
    const b = k.body<{ key_ops?: unknown; attributes?: unknown; tags?: unknown }>();
    updateKeyVersion(k.vault, name, kv, { keyOps: b.key_ops, attributes: b.attributes, tags: b.tags }, k.nowS);
    return ok(keyBundle(k.vault, name, kv, k.recovery));
  };

  const getSecret = (k: KvCall) => {
    const { name, sv } = findSecret(k.vault, k.c.params.name, k.c.params.version);
    if (!sv.attributes.enabled) kvFail(403, "Forbidden", "Operation get is not allowed on a disabled secret.", "SecretDisabled");
    return ok(secretBundle(k.vault, name, sv, k.recovery, true));
  };

  /** Lists are one page: nextLink null, as Key Vault ends its paging. */
  const page = (value: unknown[]) => ok({ value, nextLink: null });

  /** After authentication: a path this vault does not serve, or a method it does not implement. */
  const unserved = (k: KvCall): Reply => {
    const path = k.c.url.pathname;
    if (/^\/(keys|secrets|deletedkeys|deletedsecrets|certificates|storage)(\/|$)/i.test(path)) {
      return kvError(501, "NotImplemented", `The sandbox's Key Vault does not implement ${k.c.method} ${path}.`);
    }
    return kvError(404, "NotFound", `The requested resource ${k.c.method} ${path} does not exist in Key Vault.`);
  };

  const service: ServiceDef = {
    name: "keyvault",
    caseInsensitive: true,
    routes: [
      // ---- keys
      {
        method: "POST", path: "/keys/:name/create", handler: handle(P.keyCreate, async (k) => {
          const b = k.body<{ kty?: unknown; key_size?: unknown; key_ops?: unknown; attributes?: unknown; tags?: unknown }>();
          const kv = await createKeyVersion(k.vault, k.c.params.name, { kty: b.kty, keySize: b.key_size, keyOps: b.key_ops, attributes: b.attributes, tags: b.tags }, k.nowS);
          const { name } = findKey(k.vault, k.c.params.name);
          return ok(keyBundle(k.vault, name, kv, k.recovery));
        }),
      },
      {
        method: "GET", path: "/keys", handler: handle(P.keyList, (k) =>
          page([...k.vault.keys.values()].map((e) => keyItem(k.vault, e.name, e.versions.at(-1)!, k.recovery, false)))),
      },
      {
        method: "GET", path: "/keys/:name/versions", handler: handle(P.keyList, (k) => {
          const { name } = findKey(k.vault, k.c.params.name);
          const entry = k.vault.keys.get(name.toLowerCase())!;
          return page(entry.versions.map((v) => keyItem(k.vault, name, v, k.recovery, true)));
        }),
      },
      { method: "POST", path: "/keys/:name/sign", handler: handle(P.keySign, keyOp("sign")) },
      { method: "POST", path: "/keys/:name/verify", handler: handle(P.keyVerify, keyOp("verify")) },
      { method: "POST", path: "/keys/:name/:version/sign", handler: handle(P.keySign, keyOp("sign")) },
      { method: "POST", path: "/keys/:name/:version/verify", handler: handle(P.keyVerify, keyOp("verify")) },
      {
        // The private half never leaves the vault.
        method: "POST", path: "/keys/:name/:version/export", handler: handle(P.keyGet, (k) => {
          findKey(k.vault, k.c.params.name, k.c.params.version);
          return kvError(403, "Forbidden", "Operation export is not allowed on this key: it is not exportable.", "KeyNotExportable");
        }),
      },
      { method: "GET", path: "/keys/:name", handler: handle(P.keyGet, getKey) },
      { method: "GET", path: "/keys/:name/:version", handler: handle(P.keyGet, getKey) },
      { method: "PATCH", path: "/keys/:name", handler: handle(P.keyUpdate, updateKey) },
      {
        // Deletes every version; there is no per-version delete in Key Vault (disable a version instead).
        method: "DELETE", path: "/keys/:name", handler: handle(P.keyDelete, (k) =>
          ok(deletedKeyBundle(k.vault, deleteKey(k.vault, k.c.params.name, k.nowS), k.recovery))),
      },
      {
        method: "GET", path: "/deletedkeys/:name", handler: handle(P.deletedKeyGet, (k) =>
          ok(deletedKeyBundle(k.vault, findDeletedKey(k.vault, k.c.params.name), k.recovery))),
      },
      { method: "PATCH", path: "/keys/:name/:version", handler: handle(P.keyUpdate, updateKey) },

      // ---- secrets
      {
        method: "PUT", path: "/secrets/:name", handler: handle(P.secretSet, (k) => {
          const b = k.body<{ value?: unknown; contentType?: unknown; attributes?: unknown; tags?: unknown }>();
          const sv = setSecretVersion(k.vault, k.c.params.name, b, k.nowS);
          const { name } = findSecret(k.vault, k.c.params.name);
          return ok(secretBundle(k.vault, name, sv, k.recovery, true));
        }),
      },
      {
        method: "GET", path: "/secrets", handler: handle(P.secretList, (k) =>
          page([...k.vault.secrets.values()].map((e) => secretItem(k.vault, e.name, e.versions.at(-1)!, k.recovery, false)))),
      },
      {
        method: "GET", path: "/secrets/:name/versions", handler: handle(P.secretList, (k) => {
          const { name } = findSecret(k.vault, k.c.params.name);
          return page(k.vault.secrets.get(name.toLowerCase())!.versions.map((v) => secretItem(k.vault, name, v, k.recovery, true)));
        }),
      },
      {
        // Deletes every version (DeletedSecretBundle, without the value); the name stays taken until purged.
        method: "DELETE", path: "/secrets/:name", handler: handle(P.secretDelete, (k) =>
          ok(deletedSecretBundle(k.vault, deleteSecret(k.vault, k.c.params.name, k.nowS), k.recovery))),
      },
      { method: "GET", path: "/secrets/:name", handler: handle(P.secretGet, getSecret) },
      { method: "GET", path: "/secrets/:name/:version", handler: handle(P.secretGet, getSecret) },

      // ---- everything else: authenticated first, then an explicit error (never a silent 200)
      ...["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"].map((method) => ({ method, path: "/*rest", handler: handle(undefined, unserved) })),
    ],
    notFound: (c) => withHeaders(c, byPort.get(c.localPort), kvError(405, "MethodNotAllowed", `The method ${c.method} is not supported.`)),
    faultReply: (c, status) => withHeaders(c, byPort.get(c.localPort), kvError(status, status === 429 ? "Throttled" : "ServiceUnavailable",
      status === 429 ? "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached" : `The service returned HTTP ${status} (injected by the sandbox).`)),
  };

  const hooks: KeyVaultHooks = {
    openVault: (vault) => {
      const key = vault.id.toLowerCase();
      const existing = vaults.get(key);
      if (existing) return Promise.resolve(existing.uri);
      let p = opening.get(key);
      if (!p) {
        p = (async () => {
          const server = await ctx.listenHttps(service);
          const data: VaultData = {
            id: vault.id, name: vault.name, tenantId: vault.tenantId, uri: `${server.url}/`, port: server.port,
            keys: new Map(), deletedKeys: new Map(), secrets: new Map(), deletedSecrets: new Map(), state, close: () => server.close(),
          };
          vaults.set(key, data);
          byPort.set(server.port, data);
          return data.uri;
        })().finally(() => opening.delete(key));
        opening.set(key, p);
      }
      return p;
    },
    closeVault: async (resourceId) => {
      const data = vaults.get(resourceId.toLowerCase());
      if (!data) return;
      vaults.delete(resourceId.toLowerCase());
      byPort.delete(data.port);
      await data.close();
    },
  };
  return { service, hooks };
}
