import { suite } from "uvu";
import * as assert from "uvu/assert";
import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  accountShow, azErrorLine, deploymentGroupCreate, deploymentOutputs, deploymentParametersJson, getDeploymentOutput, groupCreate, rest,
  runAz, setAzRunner, type AzResult,
} from "../../lib/azure/az.mts";
import { AzError, AzNotFoundError } from "../../lib/core/errors.mts";
import { tempDir } from "./_support.mts";

/** Replaces the az runner for one test; returns the argv lists it saw. */
async function withFakeRunner(answer: (args: string[]) => AzResult, fn: (calls: string[][]) => Promise<void>) {
  const calls: string[][] = [];
  const previous = setAzRunner(async (args) => {
    calls.push(args);
    return answer(args);
  });
  try {
    await fn(calls);
  } finally {
    setAzRunner(previous);
  }
}
const ok = (stdout: string): AzResult => ({ exitCode: 0, stdout, stderr: "" });

const run = suite("runAz()");
run("appends --output json --only-show-errors and parses stdout", async () => {
  await withFakeRunner(() => ok('{"a":1}\n'), async (calls) => {
    assert.equal(await runAz(["x", "y", "--flag", "v"]), { a: 1 });
    assert.equal(calls[0], ["x", "y", "--flag", "v", "--output", "json", "--only-show-errors"]);
  });
});
run("returns null for empty output", async () => {
  await withFakeRunner(() => ok(""), async () => {
    assert.is(await runAz(["rest"]), null);
  });
});
run("throws AzError with az's ERROR: line", async () => {
  const stderr = "WARNING: something\nERROR: (ResourceGroupNotFound) Resource group 'x' could not be found.\nCode: ResourceGroupNotFound\n";
  await withFakeRunner(() => ({ exitCode: 3, stdout: "", stderr }), async () => {
    try {
      await runAz(["group", "show", "--name", "x"]);
      assert.unreachable();
    } catch (error) {
      assert.instance(error, AzError);
      const e = error as AzError;
      assert.is(e.code, "ERR_AZ");
      assert.is(e.exitCode, 3);
      assert.is(e.errorLine, "(ResourceGroupNotFound) Resource group 'x' could not be found.");
      assert.is(e.message, "Cannot run az group show: (ResourceGroupNotFound) Resource group 'x' could not be found.");
      assert.is(e.stderr, stderr);
    }
  });
});
run("throws AzError for output that is not JSON", async () => {
  await withFakeRunner(() => ok("Please run az login"), async () => {
    try {
      await runAz(["account", "show"]);
      assert.unreachable();
    } catch (error) {
      assert.instance(error, AzError);
      assert.match((error as Error).message, /^Cannot read output of az account show: not JSON/);
    }
  });
});
run("throws AzNotFoundError when the shell cannot find az", async () => {
  await withFakeRunner(() => ({ exitCode: 127, stdout: "", stderr: "bash: line 1: az: command not found\n" }), async () => {
    try {
      await runAz(["account", "show"]);
      assert.unreachable();
    } catch (error) {
      assert.instance(error, AzNotFoundError);
      assert.is((error as AzNotFoundError).code, "ERR_AZ_NOT_FOUND");
    }
  });
});
run("azErrorLine() is undefined without an ERROR: line", () => {
  assert.is(azErrorLine("WARNING: x\n"), undefined);
});
run.run();

const real = suite("runAz() with a real executable");
real("passes each argument verbatim (no shell splitting or injection)", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const fake = join(dir, "az");
    await writeFile(fake, "#!/usr/bin/env node\nprocess.stdout.write(JSON.stringify(process.argv.slice(2)));\n");
    await chmod(fake, 0o755);
    const tricky = [`a b`, `"q"`, `$(touch ${dir}/pwned)`, "'s'", "{\"k\":{\"value\":1}}", ""];
    const args = (await runAz(["echo", ...tricky], { command: fake })) as string[];
    assert.equal(args, ["echo", ...tricky, "--output", "json", "--only-show-errors"]);
    const { existsSync } = await import("node:fs");
    assert.not.ok(existsSync(join(dir, "pwned")));
  } finally {
    await cleanup();
  }
});
real("reports a missing executable as AzNotFoundError", async () => {
  try {
    await runAz(["account", "show"], { command: "/nonexistent/az", env: { PATH: "/nonexistent" } });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, AzNotFoundError);
  }
});
real.run();

const commands = suite("az commands");
commands("accountShow() runs az account show", async () => {
  await withFakeRunner(() => ok('{"id":"s","tenantId":"t"}'), async (calls) => {
    assert.equal(await accountShow(), { id: "s", tenantId: "t" });
    assert.equal(calls[0], ["account", "show", "--output", "json", "--only-show-errors"]);
  });
});
commands("groupCreate() names subscription, group and location", async () => {
  await withFakeRunner(() => ok("{}"), async (calls) => {
    await groupCreate({ subscriptionId: "s", name: "rg", location: "westeurope" });
    assert.equal(calls[0], ["group", "create", "--subscription", "s", "--name", "rg", "--location", "westeurope", "--output", "json", "--only-show-errors"]);
  });
});
commands("deploymentGroupCreate() passes parameters as one JSON object", async () => {
  await withFakeRunner(() => ok('{"properties":{"outputs":{"issuer":{"type":"String","value":"https://i"}}}}'), async (calls) => {
    const d = await deploymentGroupCreate({
      subscriptionId: "s", resourceGroup: "rg", name: "dep", templateFile: "/t/x.bicep",
      parameters: { issuer: "https://i", size: 4096, flag: false, list: ["a"], skipped: undefined },
    });
    assert.equal(calls[0], [
      "deployment", "group", "create", "--subscription", "s", "--resource-group", "rg", "--name", "dep", "--template-file", "/t/x.bicep",
      "--parameters", '{"issuer":{"value":"https://i"},"size":{"value":4096},"flag":{"value":false},"list":{"value":["a"]}}',
      "--output", "json", "--only-show-errors",
    ]);
    assert.equal(deploymentOutputs(d), { issuer: "https://i" });
  });
});
commands("rest() sends method, url and a JSON body", async () => {
  await withFakeRunner(() => ok('{"data":[]}'), async (calls) => {
    await rest({ method: "POST", url: "/providers/x?api-version=1", body: { query: "q" } });
    assert.equal(calls[0], ["rest", "--method", "post", "--url", "/providers/x?api-version=1", "--body", '{"query":"q"}', "--output", "json", "--only-show-errors"]);
  });
});
commands.run();

const outputs = suite("deploymentOutputs() / getDeploymentOutput()");
outputs("flattens outputs and looks names up without case", () => {
  const o = deploymentOutputs({ properties: { outputs: { keyUriWithVersion: { type: "String", value: "k" } } } });
  assert.equal(o, { keyUriWithVersion: "k" });
  assert.is(getDeploymentOutput(o, "keyuriwithversion"), "k");
  assert.is(getDeploymentOutput(o, "missing"), undefined);
  assert.equal(deploymentOutputs(null), {});
});
outputs("deploymentParametersJson() drops undefined values", () => {
  assert.is(deploymentParametersJson({ a: "x", b: undefined }), '{"a":{"value":"x"}}');
});
outputs.run();
