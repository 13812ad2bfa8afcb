import { suite } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_TRY_TIMEOUT_MS, readSettings, SETTING_VARIABLES } from "../../lib/core/settings.mts";

const ROOT = new URL("../../", import.meta.url).pathname;
const OURS = /^(METERING|AZURE|IDENTITY|IMDS|MSI)_[A-Z0-9_]+$/;

/** Variable names in the first column of a markdown table whose header starts `| variable |`. */
function tableVariables(path: string): Set<string> {
  const lines = readFileSync(join(ROOT, path), "utf8").split("\n");
  const start = lines.findIndex((l) => /^\|\s*variable\s*\|/.test(l));
  assert.ok(start >= 0, `${path} has a configuration table`);
  const names = new Set<string>();
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith("|")) break;
    const first = line.split("|")[1];
    for (const m of first.matchAll(/`([A-Z][A-Z0-9_]+)`/g)) if (OURS.test(m[1])) names.add(m[1]);
  }
  return names;
}

const T = suite("readSettings() / SETTING_VARIABLES");
T("the README's and docs/internals.md's configuration tables list exactly the variables readSettings reads", () => {
  const want = new Set(SETTING_VARIABLES.map((v) => v.name));
  for (const doc of ["README.md", "docs/internals.md"]) {
    const got = tableVariables(doc);
    assert.equal([...got].filter((n) => !want.has(n)), [], `${doc} lists variables settings.mts does not read`);
    assert.equal([...want].filter((n) => !got.has(n)), [], `${doc} leaves out variables settings.mts reads`);
  }
});
T("nothing in lib/ but settings.mts reads process.env", () => {
  const offenders: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(rel);
      else if (rel.endsWith(".mts") && rel !== "lib/core/settings.mts" && /process\.env\b/.test(readFileSync(join(ROOT, rel), "utf8"))) offenders.push(rel);
    }
  };
  walk("lib");
  assert.equal(offenders, []);
});
T("defaults, and what a user may write", () => {
  const d = readSettings({});
  assert.is(d.meteringApiBaseUrl, "https://marketplaceapi.microsoft.com");
  assert.is(d.authorityHost, "https://login.microsoftonline.com");
  assert.is(d.httpTryTimeoutMs, DEFAULT_TRY_TIMEOUT_MS);
  assert.is(d.cloudShell, false);
  assert.is(d.disableInstanceDiscovery, false);
  assert.is(d.dataDir, undefined);
  const s = readSettings({
    METERING_API_BASE_URL: "https://127.0.0.1:9/", AZURE_AUTHORITY_HOST: "https://login.example//", METERING_DISABLE_INSTANCE_DISCOVERY: "true",
    AZURE_TOKEN_CREDENTIALS: " AzureCliCredential ", AZURE_HTTP_USER_AGENT: "cloud-shell/1.0", METERING_DATA_DIR: "", AZURE_CLIENT_ID: "c",
  });
  assert.is(s.meteringApiBaseUrl, "https://127.0.0.1:9");
  assert.is(s.authorityHost, "https://login.example");
  assert.is(s.disableInstanceDiscovery, true);
  assert.is(s.tokenCredentials, "azureclicredential");
  assert.is(s.cloudShell, true);
  assert.is(s.dataDir, undefined, "an empty METERING_DATA_DIR is unset");
  assert.is(s.managedIdentityClientId, "c");
});
T.run();
