import { suite } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import {
  answerMeaning, httpStatusName, STATUSES, statusMeaning, statusOf, statusOfRefusal, type ListedStatus, type StatusFacts,
} from "../../lib/metering/status.mts";
import { resultOf } from "../../lib/metering/ledger.mts";
import { parseBatchResponse, type UsageEvent } from "../../lib/metering/api.mts";

const STATES = [null, "accepted", "open", "failed", "unknown"];
const listed = Object.keys(STATUSES) as ListedStatus[];
const event: UsageEvent = {
  resourceId: "55555555-5555-4555-8555-555555555555", resourceUri: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Solutions/applications/app1",
  planId: "silver", dimension: "cpu", quantity: 5, effectiveStartTime: "2024-05-01T12:00:00Z",
};
const facts = (status: string, extra: Partial<StatusFacts> = {}): StatusFacts => ({ status, event, requestId: "r", correlationId: "c", ...extra });

/** The batch item statuses the docs list (docs/azure-behaviour.md §1.4, the spec's StatusEnum, and the accelerator's name for Error). */
function documentedStatuses(): string[] {
  const doc = readFileSync(new URL("../../docs/azure-behaviour.md", import.meta.url), "utf8");
  const from = doc.indexOf("**Batch item statuses**");
  const text = doc.slice(from, doc.indexOf("Sandbox:", from));
  return [...text.matchAll(/`([A-Z][A-Za-z]+)`/g)].map((m) => m[1]).filter((s) => s !== "StatusEnum");
}

const table = suite("STATUSES");
table("every status has every column, of the right kind", () => {
  assert.ok(listed.length >= 18, `only ${listed.length} statuses`);
  for (const status of listed) {
    const m = STATUSES[status];
    assert.ok(m.source === "api" || m.source === "client", `${status}: source`);
    assert.ok(STATES.includes(m.state), `${status}: state ${m.state}`);
    assert.type(m.ok, "boolean", `${status}: ok`);
    assert.type(m.final, "boolean", `${status}: final`);
    assert.ok(m.lineIs === "result" || m.lineIs === "note", `${status}: lineIs`);
    assert.type(m.line, "function", `${status}: line`);
    const line = m.line(facts(status, { message: "why", httpStatus: 403, usageEventId: "u1" }));
    assert.type(line, "string", `${status}: line`);
    assert.ok(line.length > 0, `${status}: line is empty`);
  }
});
table("the columns agree: ok means accepted, final means accepted or failed, a result line is an ok one", () => {
  for (const status of listed) {
    const m = STATUSES[status];
    if (m.ok) assert.is(m.state, "accepted", `${status}: ok but ${m.state}`);
    assert.is(m.final, m.state === "accepted" || m.state === "failed", `${status}: final ${m.final}, state ${m.state}`);
    if (m.lineIs === "result") assert.ok(m.ok, `${status}: a result line for a status that is not ok`);
  }
});
table("every status the docs list for the API is in the table as an answer of the API", () => {
  const documented = documentedStatuses();
  assert.ok(documented.length >= 11, `found only ${documented.join(", ")}`);
  for (const status of [...documented, "Forbidden"]) {
    assert.ok(Object.hasOwn(STATUSES, status), `${status} is not in the table`);
    assert.is(STATUSES[status as ListedStatus].source, "api", status);
  }
});
table("the API's final refusals are failed; Error and UsageEventError are open; the accepted answers are ok", () => {
  const row = (s: ListedStatus) => [STATUSES[s].state, STATUSES[s].ok, STATUSES[s].final];
  for (const s of ["Expired", "ResourceNotFound", "ResourceNotAuthorized", "ResourceNotActive", "InvalidDimension", "InvalidQuantity", "BadArgument", "Forbidden"] as const) {
    assert.equal(row(s), ["failed", false, true], s);
  }
  for (const s of ["Error", "UsageEventError", "Unconfirmed", "Pending"] as const) assert.equal(row(s), ["open", false, false], s);
  for (const s of ["Accepted", "Duplicate", "AlreadyAccepted"] as const) assert.equal(row(s), ["accepted", true, true], s);
  assert.equal(row("Conflict"), ["accepted", false, true]);
  assert.equal(row("Unknown"), ["unknown", false, false]);
  assert.equal(row("NotSent"), [null, false, false]);
});
table.run();

const lookup = suite("statusMeaning() / answerMeaning()");
lookup("a status the API sends that the table does not list is open: not ok, not final (a resend is safe and settles it)", () => {
  for (const raw of ["SomethingNew", "accepted", "HTTP", "HTTP x", "constructor", "toString"]) {
    const m = statusMeaning(statusOf(raw));
    assert.equal([m.state, m.ok, m.final, m.lineIs], ["open", false, false, "note"], raw);
    assert.is(m.line(facts(raw)), `Cannot record 5 cpu for 2024-05-01T12:00:00Z: ${raw} (request id r, correlation id c)`);
  }
});
lookup("HTTP n: 408, 429 and 5xx are open, any other is failed for good", () => {
  for (const n of [408, 429, 500, 503]) assert.equal([statusMeaning(httpStatusName(n)).state, statusMeaning(httpStatusName(n)).final], ["open", false], String(n));
  for (const n of [404, 413, 415]) assert.equal([statusMeaning(httpStatusName(n)).state, statusMeaning(httpStatusName(n)).final], ["failed", true], String(n));
  assert.is(httpStatusName(503), "HTTP 503");
});
lookup("from the API, a name the table keeps for this client's own outcomes counts as unlisted", () => {
  for (const s of ["AlreadyAccepted", "Conflict", "Unknown", "NotSent", "Pending"] as const) {
    assert.equal([answerMeaning(s).state, answerMeaning(s).ok, answerMeaning(s).final], ["open", false, false], s);
  }
  for (const s of ["Accepted", "Duplicate", "Expired", "Error", "Forbidden"] as const) assert.is(answerMeaning(s), STATUSES[s], s);
});
lookup("statusOfRefusal names a refused request: 400 BadArgument, 401/403 Forbidden, else Error", () => {
  assert.equal([400, 401, 403, 404, 500, 200].map(statusOfRefusal), ["BadArgument", "Forbidden", "Forbidden", "Error", "Error", "Error"]);
});
lookup.run();

const walk = suite("the table through the ledger");
walk("a batch item with each API status gets the table's state (Accepted and Duplicate: accepted)", () => {
  const answers = [...listed.filter((s) => STATUSES[s].source === "api"), "SomethingNew"];
  for (const status of answers) {
    const extra = status === "Duplicate" ? { error: { code: "Conflict", additionalInfo: { acceptedMessage: { ...event } } } } : {};
    const [outcome] = parseBatchResponse({ httpStatus: 200, bodyText: JSON.stringify({ result: [{ status, ...extra }] }), events: [event] }).results;
    const meaning = answerMeaning(outcome.status);
    assert.is(resultOf(outcome).state, meaning.state, status);
    assert.is(outcome.ok, meaning.ok, status);
    // A final refusal of a resend says nothing about the first send.
    assert.is(resultOf(outcome, { resend: true }).state, meaning.state === "failed" ? "unknown" : meaning.state, `${status} resent`);
  }
});
walk.run();

const lines = suite("lines");
lines("are what 2-emit-meter prints for one event", () => {
  assert.is(
    STATUSES.Accepted.line(facts("Accepted", { usageEventId: "u1" })),
    "Accepted: 5 cpu for 2024-05-01T12:00:00Z, plan silver\nusageEventId u1 (request id r, correlation id c)",
  );
  assert.is(STATUSES.Duplicate.line(facts("Duplicate")), "The accepted event has the same quantity (5): nothing more to do.");
  assert.is(STATUSES.Expired.line(facts("Expired", { message: "too old" })), "Cannot record 5 cpu for 2024-05-01T12:00:00Z: Expired: too old (request id r, correlation id c)");
  assert.match(STATUSES.Forbidden.line(facts("Forbidden", { httpStatus: 403 })), /^Cannot record the event: the API refused the token \(HTTP 403\); the UAMI must sit/);
  assert.match(STATUSES.Forbidden.line(facts("Forbidden", { httpStatus: 403 })), /with --as publisher-app, the publisher app must be the one in the offer's technical configuration/);
  assert.is(STATUSES.NotSent.line(facts("NotSent")), "Cannot record the event: no token");
  assert.is(STATUSES.NotSent.line(facts("NotSent", { message: "no disk" })), "no disk");
  assert.is(STATUSES.AlreadyAccepted.line(facts("AlreadyAccepted", { message: "accepted earlier" })), "Already accepted: 5 cpu for 2024-05-01T12:00:00Z; accepted earlier (use --force to send it anyway)");
  assert.is(STATUSES.Conflict.line(facts("Conflict", { message: "held 4" })), "Cannot record 5 cpu for 2024-05-01T12:00:00Z: held 4");
});
lines.run();
