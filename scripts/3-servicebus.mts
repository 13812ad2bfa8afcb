#!/usr/bin/env node
// Exchanges messages with a customer over Service Bus queues in its managed resource group, as the
// customer's federated UAMI (no client secret), or as the managed app's own identity via
// listTokens: send a command, receive status replies.
import { assertOptionsBelong, EXIT_FAILED, EXIT_OK, runCommand } from "../lib/cli/command.mts";
import { UsageError } from "../lib/core/errors.mts";
import { parseIntOption, parseResourceGroupName, parseSubscriptionId } from "../lib/core/validate.mts";
import { lineWriters } from "../lib/cli/output.mts";

const USAGE = `Usage: 3-servicebus.mts <subscription> <managed-resource-group> <namespace> send|receive <queue> [options]

The command-queue / status-queue pattern between provider and customer over the Service Bus REST
API, signed in as the customer's UAMI (1-connect-customer --grant "Azure Service Bus Data Sender"
and/or "Azure Service Bus Data Receiver"), or with --via list-tokens as the managed application's
system-assigned identity (a token from the app's listTokens action; 3-managed-app ...
grant-app-identity --role "Azure Service Bus Data Sender" --scope namespace:<namespace> gives it
the role). The namespace must be in the managed resource group; its endpoint comes from ARM
(serviceBusEndpoint).

Commands:
  send <queue>      send one message: the body from --body FILE, or stdin (--body - or nothing)
  receive <queue>   peek-lock messages; each is printed as one JSON line on stdout, then completed;
                    a message that cannot be printed is abandoned (Service Bus delivers it again and
                    dead-letters it after the queue's maxDeliveryCount)

Options:
  --body FILE|-     send: the message body (default: stdin)
  --content-type T  send: the body's content type (default application/json when the body is JSON, else text/plain)
  --property k=v    send: a user property (repeatable)
  --label L         send: the message's Label (subject)
  --correlation-id ID  send: the message's CorrelationId
  --message-id ID   send: the message's MessageId (default: chosen by Service Bus)
  --max N           receive: at most N messages (default 1)
  --wait S          receive: wait up to S seconds for a message (default 0: only what is there)
  --watch           receive: keep receiving until Ctrl-C (waits 30 s per poll unless --wait)
  --via MODE        uami (default) or list-tokens
  --json            send: print the sent message's details as JSON
  -v, --verbose     show details on errors
  -h, --help        show this help

Data goes to stdout as JSON lines ({"messageId", "sequenceNumber", "deliveryCount", "label",
"correlationId", "contentType", "properties", "body"} with the body as text, or "bodyBase64" when
it is not UTF-8); progress to stderr. Every request and answer goes to the audit log (bodies by
size and SHA-256, not content).

Exit codes: 0 ok (also when no message came), 1 failed (e.g. a missing role: the message names
it), 2 usage error, unknown namespace or queue, customer not connected
`;

const OPTIONS = {
  body: { type: "string" },
  "content-type": { type: "string" },
  property: { type: "string", multiple: true },
  label: { type: "string" },
  "correlation-id": { type: "string" },
  "message-id": { type: "string" },
  max: { type: "string" },
  wait: { type: "string" },
  watch: { type: "boolean" },
  json: { type: "boolean" },
  via: { type: "string" },
} as const;

const { progress } = lineWriters(process);
/** Writes one line to stdout and resolves once it is handed to the OS (a broken pipe rejects). */
const writeLine = (text: string) => new Promise<void>((resolve, reject) => {
  process.stdout.write(`${text}\n`, (error) => error ? reject(error) : resolve());
});

function main(args: string[]): Promise<number> {
  return runCommand({ args, usage: USAGE, options: OPTIONS, positionals: ["subscription", "managed-resource-group", "namespace", "command", "queue"], run: async ({ values, positionals }) => {
    const subscriptionId = parseSubscriptionId(positionals[0]);
    const managedResourceGroup = parseResourceGroupName(positionals[1], "managed resource group");
    const sb = await import("../lib/azure/servicebus.mts");
    const namespace = sb.parseNamespaceName(positionals[2]);
    const command = positionals[3];
    if (command !== "send" && command !== "receive") throw new UsageError(`Cannot run command ${JSON.stringify(command)}: expected send or receive`);
    const queue = sb.parseQueueName(positionals[4]);
    assertOptionsBelong(values, command, { send: ["body", "content-type", "property", "label", "correlation-id", "message-id", "json"], receive: ["max", "wait", "watch"] });
    const properties = sb.parseProperties((values.property as unknown as string[] | undefined) ?? []);
    const max = values.max === undefined ? 1 : parseIntOption(String(values.max), { name: "max", min: 1, max: 10_000 });
    const waitS = values.wait === undefined ? (values.watch ? sb.WATCH_WAIT_S : 0) : parseIntOption(String(values.wait), { name: "wait", min: 0, max: sb.MAX_WAIT_S });
    if (values.watch && values.max !== undefined) throw new UsageError("Cannot use --watch with --max: --watch receives until Ctrl-C");
    const via = String(values.via ?? "uami") as "uami" | "list-tokens";
    if (via !== "uami" && via !== "list-tokens") throw new UsageError(`Cannot use --via ${JSON.stringify(via)}: expected uami or list-tokens`);

    let body: Uint8Array | undefined;
    if (command === "send") {
      const { readPayload } = await import("../lib/cli/input.mts");
      body = await readPayload({ path: values.body as string | undefined, what: "message body", howTo: "pipe it on stdin or use --body FILE", stdin: process.stdin });
      if (body.length === 0) throw new UsageError("Cannot send an empty message: no body on stdin or in the file");
    }

    const ref = { subscriptionId, managedResourceGroup };
    const { usePublisher } = await import("../lib/publisher/context.mts");
    return await usePublisher({}, async (publisher) => {
      publisher.customer(ref);
      progress(`Reading Service Bus namespace ${namespace} of ${subscriptionId}/${managedResourceGroup}`);
      const endpoint = await sb.findQueueEndpoint({ ...ref, namespace, queue });
      const { credential, tokenClaims, who } = await publisher.dataPlaneIdentity(ref, { scope: sb.SERVICEBUS_SCOPE, via, audience: sb.SERVICEBUS_AUDIENCE, onProgress: progress });
      // A 403 names the command that gives this identity (UAMI or the app's own) the missing role.
      const { grantCommandFor } = await import("../lib/azure/role-grants.mts");
      const grant = (role: string) => grantCommandFor({ via, ...ref, role, scope: { kind: "namespace", name: namespace } });
      // Every call of this client is written to the audit log, message bodies by size and hash.
      const client = await publisher.restClient({ credential, scope: sb.SERVICEBUS_SCOPE, record: { customer: ref, tokenClaims, via } });

      if (command === "send") {
        const contentType = (values["content-type"] as string | undefined) ?? sb.guessContentType(body!);
        const broker = sb.brokerProperties({ messageId: values["message-id"], label: values.label, correlationId: values["correlation-id"] });
        await sb.sendMessage({ client, endpoint, queue, body: body!, contentType, properties, broker, who, grant });
        if (values.json) await writeLine(JSON.stringify({ queue, namespace, bytes: body!.length, contentType, properties, ...broker }, null, 2));
        progress(`Sent ${body!.length} bytes to ${namespace}/${queue}`);
        return EXIT_OK;
      }

      // --watch: Ctrl-C stops after the message in hand (it is completed, not lost).
      const controller = new AbortController();
      const stop = () => {
        progress("Stopping after the current message");
        controller.abort();
      };
      if (values.watch) for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, stop);
      let outcome;
      try {
        outcome = await sb.receiveMessages({
          client, endpoint, queue, max, waitS, watch: values.watch === true, signal: controller.signal, who, grant,
          handle: (m) => writeLine(JSON.stringify(sb.messageAsJson(m))),
        });
      } finally {
        for (const signal of ["SIGINT", "SIGTERM"] as const) process.removeListener(signal, stop);
      }
      progress(`${outcome.completed} message(s) received and completed${outcome.abandoned ? `, ${outcome.abandoned} abandoned` : ""}${outcome.completed === 0 ? ` (none waiting in ${namespace}/${queue})` : ""}`);
      return outcome.abandoned ? EXIT_FAILED : EXIT_OK;
    });
  } });
}

process.exitCode = await main(process.argv.slice(2));
