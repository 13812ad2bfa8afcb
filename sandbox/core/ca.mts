// The sandbox's TLS material: a CA made per run and one server certificate for 127.0.0.1.
// MSAL and the Key Vault SDK insist on https, so every emulated service speaks TLS; clients
// trust the CA through NODE_EXTRA_CA_CERTS (Node) or DENO_CERT (Deno).
import { webcrypto } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import "reflect-metadata";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export interface TlsMaterial {
  caCertPem: string;
  caKeyPem: string;
  certPem: string;
  keyPem: string;
}

export interface TlsPaths {
  caCertPath: string;
  caKeyPath: string;
  certPath: string;
  keyPath: string;
}

const RSA = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256", publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
const VALIDITY_DAYS = 7;

function toPem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString("base64").replace(/(.{64})/g, "$1\n").replace(/\n$/, "");
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  return toPem("PRIVATE KEY", await webcrypto.subtle.exportKey("pkcs8", key as webcrypto.CryptoKey));
}

/** Makes a fresh CA and a server certificate for 127.0.0.1 / localhost / ::1, signed by it. */
export async function createTlsMaterial(): Promise<TlsMaterial> {
  const now = new Date(Date.now() - 60_000);
  const notAfter = new Date(now.getTime() + VALIDITY_DAYS * 86_400_000);
  const caKeys = await webcrypto.subtle.generateKey(RSA, true, ["sign", "verify"]) as CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: "CN=Metering Sandbox CA (generated per run)",
    notBefore: now,
    notAfter,
    keys: caKeys,
    signingAlgorithm: RSA,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const leaf = await signLeaf(ca, caKeys, await newKeyPair(), [
    { type: "ip", value: "127.0.0.1" },
    { type: "ip", value: "::1" },
    { type: "dns", value: "localhost" },
  ]);
  return {
    caCertPem: ca.toString("pem") + "\n",
    caKeyPem: await exportKeyPem(caKeys.privateKey),
    certPem: leaf.certPem,
    keyPem: leaf.keyPem,
  };
}

export interface ServerCertificate {
  certPem: string;
  keyPem: string;
}

/** A key pair for server certificates; one can serve many certificates. */
export async function newKeyPair(): Promise<CryptoKeyPair> {
  return await webcrypto.subtle.generateKey(RSA, true, ["sign", "verify"]) as CryptoKeyPair;
}

async function signLeaf(ca: x509.X509Certificate, caKeys: { privateKey: CryptoKey; publicKey: CryptoKey }, keys: CryptoKeyPair,
  names: Array<{ type: "ip" | "dns"; value: string }>): Promise<ServerCertificate> {
  const now = new Date(Date.now() - 60_000);
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${names[0].value}`,
    issuer: ca.subject,
    notBefore: now,
    notAfter: new Date(Math.min(now.getTime() + VALIDITY_DAYS * 86_400_000, ca.notAfter.getTime())),
    signingKey: caKeys.privateKey,
    publicKey: keys.publicKey,
    signingAlgorithm: RSA,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  return { certPem: leaf.toString("pem") + "\n", keyPem: await exportKeyPem(keys.privateKey) };
}

/**
 * Issues a server certificate for the given DNS names, signed by the material's CA (the sandbox's
 * front issues one per Azure host name it plays). `keys` defaults to a fresh key pair.
 */
export async function issueServerCertificate(tls: TlsMaterial, dnsNames: string[], keys?: CryptoKeyPair): Promise<ServerCertificate> {
  const ca = new x509.X509Certificate(tls.caCertPem);
  const der = Buffer.from(tls.caKeyPem.replace(/-----[^-]+-----|\s/g, ""), "base64");
  const privateKey = await webcrypto.subtle.importKey("pkcs8", der, RSA, false, ["sign"]) as CryptoKey;
  const publicKey = await ca.publicKey.export(RSA, ["verify"], webcrypto as unknown as Crypto);
  return await signLeaf(ca, { privateKey, publicKey }, keys ?? await newKeyPair(), dnsNames.map((value) => ({ type: "dns" as const, value })));
}

function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] &= 0x7f;
  return Buffer.from(bytes).toString("hex");
}

export function tlsPaths(dir: string): TlsPaths {
  return {
    caCertPath: join(dir, "ca.pem"),
    caKeyPath: join(dir, "tls", "ca-key.pem"),
    certPath: join(dir, "tls", "server.pem"),
    keyPath: join(dir, "tls", "server-key.pem"),
  };
}

/** Writes the material under dir (keys mode 0600). The CA's key is kept only so a restarted sandbox can reuse the CA. */
export async function writeTlsMaterial(dir: string, tls: TlsMaterial): Promise<TlsPaths> {
  const p = tlsPaths(dir);
  await mkdir(join(dir, "tls"), { recursive: true, mode: 0o700 });
  await writeFile(p.caCertPath, tls.caCertPem);
  await writeFile(p.caKeyPath, tls.caKeyPem, { mode: 0o600 });
  await writeFile(p.certPath, tls.certPem);
  await writeFile(p.keyPath, tls.keyPem, { mode: 0o600 });
  return p;
}

export async function readTlsMaterial(dir: string): Promise<TlsMaterial> {
  const p = tlsPaths(dir);
  const [caCertPem, caKeyPem, certPem, keyPem] = await Promise.all(
    [p.caCertPath, p.caKeyPath, p.certPath, p.keyPath].map((f) => readFile(f, "utf8")),
  );
  return { caCertPem, caKeyPem, certPem, keyPem };
}
