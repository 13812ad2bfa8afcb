// The ISV's OIDC issuer: a discovery document and a JWKS in a public blob container. Entra
// fetches both anonymously to check each client assertion, so this module builds them,
// uploads them, and proves the setup the way Entra will use it.
import { base64url, calculateJwkThumbprint, createRemoteJWKSet, customFetch, exportJWK, importJWK, jwtVerify } from "jose";
import type { JWK } from "jose";
import { IssuerFetchError, IssuerPublishError, IssuerVerificationError } from "../core/errors.mts";
import { signJwt, type Signer } from "../identity/signer.mts";
import type { TokenCredential } from "@azure/identity";

export const DISCOVERY_PATH = ".well-known/openid-configuration";
export const JWKS_PATH = ".well-known/jwks.json";
const ISSUER_DOCUMENT_CONTENT_TYPE = "application/json";
const FETCH_TIMEOUT_MS = 10_000;
/** Entra rejects weaker keys (AADSTS50032); the setup template creates 4096 bits. */
const MIN_RSA_BITS = 2048;

/** A public RSA signing key as published: kty, use, alg, kid, n, e (base64url). */
export interface PublicJwk {
  kty: "RSA";
  use: "sig";
  alg: "RS256";
  kid: string;
  n: string;
  e: string;
}

export interface DiscoveryDocument {
  issuer: string;
  jwks_uri: string;
  response_types_supported: string[];
  subject_types_supported: string[];
  id_token_signing_alg_values_supported: string[];
  [key: string]: unknown;
}

export type FetchLike = (url: string, init?: RequestInit) => Promise<Response>;

/**
 * Throws TypeError unless `issuer` is an https URL without trailing slash, whitespace, query
 * or fragment: Entra compares it byte for byte with the federated credential.
 */
export function assertIssuerUrl(issuer: string): void {
  let url: URL | undefined;
  try {
    url = new URL(issuer);
  } catch {
    // handled below
  }
  if (!url || url.protocol !== "https:" || issuer.endsWith("/") || issuer.trim() !== issuer || url.search || url.hash) {
    throw new TypeError(`Cannot use issuer ${JSON.stringify(issuer)}: expected an https URL without trailing slash, query or whitespace`);
  }
}

/**
 * The issuer URL of a blob container: the blob endpoint without its trailing slash, then
 * "/" and the container name.
 * @example issuerFromBlobEndpoint({ blobEndpoint: "https://a.blob.core.windows.net/", containerName: "public" })
 * // "https://a.blob.core.windows.net/public"
 */
export function issuerFromBlobEndpoint(options: { blobEndpoint: string; containerName: string }): string {
  const issuer = `${options.blobEndpoint.replace(/\/+$/, "")}/${options.containerName}`;
  assertIssuerUrl(issuer);
  return issuer;
}

/** The container a storage static website serves, anonymously, whatever allowBlobPublicAccess says. */
export const STATIC_WEBSITE_CONTAINER = "$web";

/**
 * The issuer URL of a storage static website: its web endpoint without the trailing slash (the
 * documents live at the root of the `$web` container).
 * @example issuerFromWebEndpoint({ webEndpoint: "https://a.z6.web.core.windows.net/" }) // "https://a.z6.web.core.windows.net"
 */
export function issuerFromWebEndpoint(options: { webEndpoint: string }): string {
  const issuer = options.webEndpoint.replace(/\/+$/, "");
  assertIssuerUrl(issuer);
  return issuer;
}

/**
 * Splits an issuer URL into the blob endpoint and container it is served from (the inverse
 * of issuerFromBlobEndpoint). Throws TypeError when the issuer does not end in the container.
 */
export function blobLocationOfIssuer(options: { issuer: string; containerName: string }): { blobEndpoint: string; containerName: string } {
  const suffix = `/${options.containerName}`;
  if (!options.containerName || !options.issuer.endsWith(suffix)) {
    throw new TypeError(`Cannot find the blob container of issuer ${JSON.stringify(options.issuer)}: it does not end in /${options.containerName} (publisher.optional.containerName)`);
  }
  return { blobEndpoint: `${options.issuer.slice(0, -suffix.length)}/`, containerName: options.containerName };
}

/** Bits of an RSA modulus given as base64url (leading zero bytes ignored). */
export function rsaModulusBits(n: string): number {
  const bytes = base64url.decode(n);
  let i = 0;
  while (i < bytes.length && bytes[i] === 0) i++;
  if (i === bytes.length) return 0;
  return (bytes.length - i - 1) * 8 + (32 - Math.clz32(bytes[i]));
}

/** Minimal OIDC discovery document Entra needs (azwi's shape). */
export function buildDiscoveryDocument(options: { issuer: string }): DiscoveryDocument {
  assertIssuerUrl(options.issuer);
  return {
    issuer: options.issuer,
    jwks_uri: `${options.issuer}/${JWKS_PATH}`,
    response_types_supported: ["id_token"],
    subject_types_supported: ["public"],
    id_token_signing_alg_values_supported: ["RS256"],
  };
}

function _b64url(value: Uint8Array | string): string {
  return typeof value === "string" ? value : base64url.encode(value);
}

/**
 * The published JWK of an RSA public key (n and e as bytes, or base64url). Normalised
 * through Web Crypto (no leading zero bytes), `kid` = RFC 7638 thumbprint, so the kid
 * depends only on the key and not on where it is stored.
 */
export async function buildPublicJwk(options: { n: Uint8Array | string; e: Uint8Array | string }): Promise<PublicJwk> {
  let normalised: JWK;
  try {
    const key = await importJWK({ kty: "RSA", n: _b64url(options.n), e: _b64url(options.e) }, "RS256", { extractable: true });
    normalised = await exportJWK(key);
  } catch (cause) {
    throw new TypeError(`Cannot build JWK: not a valid RSA public key (${(cause as Error).message})`, { cause });
  }
  const bits = normalised.n ? base64url.decode(normalised.n).length * 8 : 0;
  if (bits < MIN_RSA_BITS || !normalised.e) {
    throw new TypeError(`Cannot build JWK: the RSA modulus has ${bits} bits, expected at least ${MIN_RSA_BITS}`);
  }
  const kid = await calculateJwkThumbprint({ kty: "RSA", n: normalised.n!, e: normalised.e! }, "sha256");
  return { kty: "RSA", use: "sig", alg: "RS256", kid, n: normalised.n!, e: normalised.e! };
}

/** Entra stores only the first 100 keys of a JWKS (docs/azure-behaviour.md §2.4). */
export const MAX_JWKS_KEYS = 100;

/** The JWKS document: `{"keys": [...]}`. Throws RangeError for more than 100 keys (Entra would ignore the rest). */
export function buildJwks(keys: PublicJwk[]): { keys: PublicJwk[] } {
  if (keys.length > MAX_JWKS_KEYS) {
    throw new RangeError(`Cannot build JWKS: ${keys.length} keys, but Entra reads only the first ${MAX_JWKS_KEYS}`);
  }
  return { keys: keys.map((k) => ({ kty: k.kty, use: k.use, alg: k.alg, kid: k.kid, n: k.n, e: k.e })) };
}

/** Blob path → JSON document, for publishIssuerDocuments. */
export function issuerDocuments(options: { issuer: string; keys: PublicJwk[] }): Record<string, unknown> {
  return {
    [DISCOVERY_PATH]: buildDiscoveryDocument({ issuer: options.issuer }),
    [JWKS_PATH]: buildJwks(options.keys),
  };
}

function _describeStorageError(error: unknown, account: string): string {
  const e = error as { statusCode?: number; code?: string; message?: string };
  if (e?.statusCode === 403) {
    return `forbidden (${e.code ?? "403"}): the signed-in identity needs the Storage Blob Data Contributor role on ${account}; new role assignments take a few minutes`;
  }
  if (e?.statusCode === 404) return `not found (${e.code ?? "404"}): check the storage account and container`;
  return String(e?.message ?? error).split("\n")[0];
}

async function _streamToText(stream: NodeJS.ReadableStream | undefined): Promise<string> {
  if (!stream) return "";
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of stream as AsyncIterable<Uint8Array | string>) {
    text += typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
  }
  return text + decoder.decode();
}

/**
 * Uploads the issuer documents as JSON blobs (content type application/json). A blob that
 * already holds the same JSON with the same content type is left alone, so re-running
 * changes nothing. Returns the blob paths uploaded and left alone.
 */
export async function publishIssuerDocuments(options: {
  blobEndpoint: string;
  containerName: string;
  credential: TokenCredential;
  documents: Record<string, unknown>;
}): Promise<{ uploaded: string[]; unchanged: string[] }> {
  const { BlobServiceClient } = await import("@azure/storage-blob");
  const service = new BlobServiceClient(options.blobEndpoint, options.credential);
  const container = service.getContainerClient(options.containerName);
  const account = new URL(options.blobEndpoint).host;
  const uploaded: string[] = [];
  const unchanged: string[] = [];
  for (const [path, document] of Object.entries(options.documents)) {
    const blob = container.getBlockBlobClient(path);
    const text = `${JSON.stringify(document, null, 2)}\n`;
    try {
      const current = await blob.download(0).catch((error) => {
        if ((error as { statusCode?: number }).statusCode === 404) return undefined;
        throw error;
      });
      if (current && current.contentType === ISSUER_DOCUMENT_CONTENT_TYPE) {
        const existing = await _streamToText(current.readableStreamBody);
        if (existing === text) {
          unchanged.push(path);
          continue;
        }
      }
      const bytes = new TextEncoder().encode(text);
      await blob.upload(bytes, bytes.length, { blobHTTPHeaders: { blobContentType: ISSUER_DOCUMENT_CONTENT_TYPE } });
      uploaded.push(path);
    } catch (cause) {
      throw Object.assign(
        new IssuerPublishError(`Cannot upload ${path} to ${options.blobEndpoint}${options.containerName}: ${_describeStorageError(cause, account)}`, { cause }),
        { statusCode: (cause as { statusCode?: number }).statusCode },
      );
    }
  }
  return { uploaded, unchanged };
}

/**
 * Deletes issuer documents that are no longer published (the bash tool's JWKS path after a
 * migration). A blob already gone counts as deleted. Returns the paths it deleted.
 */
export async function deleteIssuerDocuments(options: {
  blobEndpoint: string;
  containerName: string;
  credential: TokenCredential;
  paths: string[];
}): Promise<{ deleted: string[] }> {
  const { BlobServiceClient } = await import("@azure/storage-blob");
  const container = new BlobServiceClient(options.blobEndpoint, options.credential).getContainerClient(options.containerName);
  const account = new URL(options.blobEndpoint).host;
  const deleted: string[] = [];
  for (const path of options.paths) {
    try {
      if ((await container.getBlockBlobClient(path).deleteIfExists()).succeeded) deleted.push(path);
    } catch (cause) {
      throw Object.assign(
        new IssuerPublishError(`Cannot delete ${path} from ${options.blobEndpoint}${options.containerName}: ${_describeStorageError(cause, account)}`, { cause }),
        { statusCode: (cause as { statusCode?: number }).statusCode },
      );
    }
  }
  return { deleted };
}

/**
 * Switches on the storage account's static website (a blob service property, set through the data
 * plane with the caller's token) and makes sure its `$web` container exists. Azure creates `$web`
 * when the website is switched on; creating it when missing keeps the step idempotent. Returns
 * whether anything changed.
 */
export async function enableStaticWebsite(options: { blobEndpoint: string; credential: TokenCredential }): Promise<{ changed: boolean }> {
  const { BlobServiceClient } = await import("@azure/storage-blob");
  const service = new BlobServiceClient(options.blobEndpoint, options.credential);
  const account = new URL(options.blobEndpoint).host;
  try {
    let changed = false;
    const properties = await service.getProperties();
    if (properties.staticWebsite?.enabled !== true) {
      await service.setProperties({ staticWebsite: { enabled: true } });
      changed = true;
    }
    const created = await service.getContainerClient(STATIC_WEBSITE_CONTAINER).createIfNotExists();
    return { changed: changed || created.succeeded };
  } catch (cause) {
    throw Object.assign(
      new IssuerPublishError(`Cannot switch on the static website of ${options.blobEndpoint}: ${_describeStorageError(cause, account)}`, { cause }),
      { statusCode: (cause as { statusCode?: number }).statusCode },
    );
  }
}

/** GETs a JSON document anonymously; each failure mode is an IssuerFetchError. */
export async function fetchJsonDocument(url: string, options: { fetch?: FetchLike; timeoutMs?: number } = {}): Promise<unknown> {
  const doFetch = options.fetch ?? fetch;
  let response: Response;
  try {
    response = await doFetch(url, {
      headers: { accept: "application/json" },
      redirect: "manual",
      signal: AbortSignal.timeout(options.timeoutMs ?? FETCH_TIMEOUT_MS),
    });
  } catch (cause) {
    throw new IssuerFetchError(`Cannot fetch ${url}: ${(cause as Error).message}`, { url, cause });
  }
  const text = await response.text().catch(() => "");
  if (response.status !== 200) {
    throw new IssuerFetchError(`Cannot fetch ${url}: HTTP ${response.status} (Entra needs it readable anonymously: public blob access, or the static website)`, {
      url,
      status: response.status,
    });
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new IssuerFetchError(`Cannot read ${url}: not JSON (${text.slice(0, 60)})`, { url, status: 200, cause });
  }
}

/** Fetches the discovery document and the JWKS it points to, both anonymously. */
async function fetchIssuerDocuments(options: { issuer: string; fetch?: FetchLike }): Promise<{
  discovery: DiscoveryDocument;
  jwks: { keys: Record<string, unknown>[] };
}> {
  const discovery = (await fetchJsonDocument(`${options.issuer}/${DISCOVERY_PATH}`, options)) as DiscoveryDocument;
  if (typeof discovery?.jwks_uri !== "string") {
    throw new IssuerVerificationError(`Cannot use discovery document of ${options.issuer}: no jwks_uri`);
  }
  const jwks = (await fetchJsonDocument(discovery.jwks_uri, options)) as { keys: Record<string, unknown>[] };
  if (!Array.isArray(jwks?.keys)) {
    throw new IssuerVerificationError(`Cannot use JWKS ${discovery.jwks_uri}: no keys array`);
  }
  return { discovery, jwks };
}

export interface IssuerVerification {
  issuer: string;
  jwksUri: string;
  kid: string;
  /** Claims of the test JWT that verified. */
  testClaims: Record<string, unknown>;
}

/**
 * Proves the issuer works as Entra will use it: fetches both documents anonymously, checks
 * the issuer string and jwks_uri, finds the signer's key (kty RSA, use sig, alg RS256), signs
 * a short test JWT with the signer and verifies it with jose against the published JWKS.
 */
export async function verifyIssuerSetup(options: {
  issuer: string;
  signer: Signer;
  fetch?: FetchLike;
  now?: () => number;
}): Promise<IssuerVerification> {
  assertIssuerUrl(options.issuer);
  const { discovery, jwks } = await fetchIssuerDocuments(options);
  const expectedJwksUri = `${options.issuer}/${JWKS_PATH}`;
  const problems: string[] = [];
  if (discovery.issuer !== options.issuer) problems.push(`discovery issuer is ${JSON.stringify(discovery.issuer)}, expected ${JSON.stringify(options.issuer)}`);
  if (discovery.jwks_uri !== expectedJwksUri) problems.push(`jwks_uri is ${JSON.stringify(discovery.jwks_uri)}, expected ${JSON.stringify(expectedJwksUri)}`);
  const key = jwks.keys.find((k) => k.kid === options.signer.kid);
  if (!key) problems.push(`JWKS has no key with kid ${JSON.stringify(options.signer.kid)}`);
  else if (key.kty !== "RSA" || key.use !== "sig" || key.alg !== "RS256") {
    problems.push(`key ${options.signer.kid} is ${JSON.stringify({ kty: key.kty, use: key.use, alg: key.alg })}, expected kty RSA, use sig, alg RS256`);
  }
  if (problems.length > 0) {
    throw new IssuerVerificationError(`Cannot verify issuer ${options.issuer}: ${problems.join("; ")} (run 0-isv-setup again)`);
  }
  const iat = Math.floor((options.now ?? Date.now)() / 1000);
  const payload = { iss: options.issuer, sub: "metering-issuer-self-test", aud: "api://AzureADTokenExchange", iat, nbf: iat, exp: iat + 60 };
  const token = await signJwt({ payload, signer: options.signer });
  const doFetch = options.fetch;
  const keySet = createRemoteJWKSet(new URL(discovery.jwks_uri), {
    timeoutDuration: FETCH_TIMEOUT_MS,
    ...(doFetch ? { [customFetch]: (url: string, init: RequestInit) => doFetch(url, init) } : {}),
  });
  try {
    const { payload: verified } = await jwtVerify(token, keySet, {
      issuer: options.issuer,
      audience: payload.aud,
      algorithms: ["RS256"],
      currentDate: new Date(iat * 1000),
    });
    return { issuer: options.issuer, jwksUri: discovery.jwks_uri, kid: options.signer.kid, testClaims: verified as Record<string, unknown> };
  } catch (cause) {
    throw new IssuerVerificationError(
      `Cannot verify a test JWT signed by key ${options.signer.kid} against ${discovery.jwks_uri}: ${(cause as Error).message} (the published key is not the signing key; run 0-isv-setup again)`,
      { cause },
    );
  }
}
