#!/usr/bin/env node
// The sandbox's `az` stand-in. It forwards its arguments and working directory (and stdin,
// only when an argument is `@-`) to the sandbox's admin API, which runs the command
// (sandbox/az/commands.mts), then replays the answer: stdout, stderr and the exit code.
// Plain JavaScript with no dependencies, so it starts as fast as node does.
//
// Environment: METERING_SANDBOX_ADMIN  the admin API's base URL (written to the sandbox's env file)
// Exit codes: those of the emulated command (0 ok, 1 failed, 2 usage error, 3 not found);
//             1 when the sandbox is not running.

const admin = process.env.METERING_SANDBOX_ADMIN;
const argv = process.argv.slice(2);

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

async function main() {
  if (!admin) {
    process.stderr.write("ERROR: the sandbox is not running (METERING_SANDBOX_ADMIN is not set)\n");
    return 1;
  }
  const request = { argv, cwd: process.cwd() };
  if (argv.some((a) => a === "@-" || a.endsWith("=@-"))) request.stdin = await readStdin();
  let res;
  try {
    res = await fetch(`${admin.replace(/\/+$/, "")}/az`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(request),
    });
  } catch {
    process.stderr.write(`ERROR: the sandbox is not running (METERING_SANDBOX_ADMIN=${admin})\n`);
    return 1;
  }
  const text = await res.text();
  let answer;
  try {
    answer = JSON.parse(text);
  } catch {
    answer = undefined;
  }
  if (!res.ok || !answer || typeof answer.exitCode !== "number") {
    process.stderr.write(`ERROR: the sandbox's az endpoint failed: HTTP ${res.status} ${text.slice(0, 500)}\n`);
    return 1;
  }
  if (answer.stdout) process.stdout.write(answer.stdout);
  if (answer.stderr) process.stderr.write(answer.stderr);
  return answer.exitCode;
}

process.exitCode = await main();
