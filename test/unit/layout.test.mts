// The folder map of docs/internals.md, as a rule: what each lib/ folder may import.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = new URL("../../", import.meta.url).pathname;
const BELOW_PUBLISHER = ["core", "cli", "state", "identity", "audit", "azure", "issuer", "metering", "customers"];
const MAY_IMPORT: Record<string, string[]> = {
  core: [],
  cli: ["core"],
  state: ["core"],
  identity: ["core"],
  audit: ["core", "identity"],
  azure: ["core", "audit"],
  issuer: ["core", "identity", "state"],
  metering: ["core", "audit", "identity", "state"],
  customers: ["core", "audit", "azure", "identity", "metering", "state"],
  publisher: BELOW_PUBLISHER,
  doctor: [...BELOW_PUBLISHER, "publisher"],
};

function files(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => e.isDirectory() ? files(`${dir}/${e.name}`) : e.name.endsWith(".mts") ? [`${dir}/${e.name}`] : []);
}
const specifiers = (path: string) => [...readFileSync(join(ROOT, path), "utf8").matchAll(/(?:from\s*|import\s*\(\s*)"([^"]+)"/g)].map((m) => m[1]);

const T = suite("folder layout");
T("lib/ holds only the folders of the map, no loose files", () => {
  const entries = readdirSync(join(ROOT, "lib"), { withFileTypes: true });
  assert.equal(entries.filter((e) => !e.isDirectory()).map((e) => e.name), []);
  assert.equal(entries.map((e) => e.name).sort(), Object.keys(MAY_IMPORT).sort());
});
T("each lib/ folder imports only the folders the map allows", () => {
  const wrong: string[] = [];
  for (const [folder, allowed] of Object.entries(MAY_IMPORT)) {
    for (const file of files(`lib/${folder}`)) {
      for (const spec of specifiers(file)) {
        const m = /^\.\.\/([a-z]+)\//.exec(spec);
        if (m && !allowed.includes(m[1])) wrong.push(`${file} imports ${spec}`);
        if (spec.includes("sandbox/")) wrong.push(`${file} imports the sandbox: ${spec}`);
      }
    }
  }
  assert.equal(wrong, []);
});
T("scripts import lib/, never the sandbox; no script builds a credential, a signer or an audit record", () => {
  const wrong: string[] = [];
  for (const file of files("scripts")) {
    const text = readFileSync(join(ROOT, file), "utf8");
    for (const spec of specifiers(file)) if (spec.includes("sandbox/")) wrong.push(`${file} imports ${spec}`);
    for (const name of ["createKeyVaultSigner", "createIsvCredential", "createFederatedTokenSource", "createAuditWriter", "appendAuditRecord", "buildAuditRecord", "exchangeRecord"]) {
      if (text.includes(name)) wrong.push(`${file} uses ${name}`);
    }
  }
  assert.equal(wrong, []);
});
T("credentials, signers and token sources are built only in the publisher context", () => {
  const wrong: string[] = [];
  for (const file of files("lib")) {
    if (file === "lib/publisher/context.mts") continue;
    const text = readFileSync(join(ROOT, file), "utf8").split("\n").filter((l) => !/^\s*(\/\/|\*)/.test(l)).join("\n");
    for (const name of ["createKeyVaultSigner(", "createIsvCredential(", "createFederatedTokenSource("]) {
      if (text.includes(name) && !text.includes(`export async function ${name}`) && !text.includes(`export function ${name}`)) wrong.push(`${file} calls ${name}`);
    }
  }
  assert.equal(wrong, []);
});
T.run();
