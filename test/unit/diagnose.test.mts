import { suite } from "uvu";
import * as assert from "uvu/assert";
import { describeMismatch, dimensionVerdicts, formatAge, jwkProblems } from "../../lib/doctor/diagnose.mts";
import { ficDifferences } from "../../lib/doctor/doctor.mts";
import { isArmNotFound } from "../../lib/customers/uami.mts";
import { AzError } from "../../lib/core/errors.mts";
import type { AuditRecord } from "../../lib/audit/log.mts";

const ISSUER = "https://idpabc.blob.core.windows.net/public";

const mismatch = suite("describeMismatch()");
mismatch("names the differences that look like none", () => {
  assert.is(describeMismatch({ expected: ISSUER, actual: ISSUER }), undefined);
  assert.is(describeMismatch({ expected: ISSUER, actual: `${ISSUER}/` }), "has a trailing slash");
  assert.is(describeMismatch({ expected: `${ISSUER}/`, actual: ISSUER }), "lacks the trailing slash");
  assert.is(describeMismatch({ expected: ISSUER, actual: ` ${ISSUER}\n` }), "has whitespace around it");
  assert.is(describeMismatch({ expected: "Sub A", actual: "sub a" }), "differs only in case");
  assert.is(describeMismatch({ expected: ISSUER, actual: `${ISSUER.toUpperCase()}/` }), "differs in case, whitespace or trailing slash");
  assert.is(describeMismatch({ expected: ISSUER, actual: "https://other.example/public" }), "differs");
});
mismatch.run();

const jwk = suite("jwkProblems()");
jwk("accepts what Entra expects and names every gap", () => {
  assert.equal(jwkProblems({ kty: "RSA", use: "sig", alg: "RS256", kid: "k", n: "abc_-", e: "AQAB" }), []);
  assert.equal(jwkProblems({ kty: "RSA", kid: "k", n: "ab+/==", e: "AQAB" }), ["no use", "no alg", "n is not unpadded base64url"]);
  assert.equal(jwkProblems({ kty: "EC", use: "enc", alg: "ES256", kid: "k", n: "a", e: "b" }), ['kty is "EC", expected "RSA"', 'use is "enc", expected "sig"', 'alg is "ES256", expected "RS256"']);
  assert.equal(jwkProblems(null), ["not a JSON object"]);
});
jwk.run();

const fic = suite("ficDifferences()");
const want = { issuer: ISSUER, subject: "metering-submission-via-uami from t", audience: "api://AzureADTokenExchange" };
fic("an exact credential has no differences; each field is named with Entra's code", () => {
  const base = { id: "/x/fed", name: "fed", issuer: ISSUER, subject: want.subject, audiences: [want.audience] };
  assert.equal(ficDifferences(base, want), []);
  assert.equal(ficDifferences({ ...base, subject: want.subject.toUpperCase() }, want), [`subject "${want.subject.toUpperCase()}" differs only in case (AADSTS7002138)`]);
  assert.equal(ficDifferences({ ...base, subject: "other" }, want), ['subject "other" differs (AADSTS700213)']);
  assert.equal(ficDifferences({ ...base, issuer: `${ISSUER}/` }, want), [`issuer "${ISSUER}/" has a trailing slash (AADSTS700211)`]);
  assert.equal(ficDifferences({ ...base, audiences: ["a", "b"] }, want), ['audience ["a","b"] is not exactly one value (AADSTS700212)']);
});
fic.run();

const dims = suite("dimensionVerdicts()");
const who = { subscriptionId: "0b1f6471-1bf0-4dda-aec3-cb9272f09590", managedResourceGroup: "mrg-1" };
const single = (dimension: string, status: number, outcome: string, body: unknown, customer = who): AuditRecord => ({
  time: "2026-01-01T00:00:00Z", operation: "usageEvent", id: dimension + status, customer,
  request: { method: "POST", url: "u", headers: {}, body: { dimension, planId: "silver", quantity: 1 } }, outcome, response: { status, body },
});
dims("counts accepted, duplicate and InvalidDimension answers per dimension of one customer", () => {
  const records: AuditRecord[] = [
    single("cpu", 200, "Accepted", {}),
    single("cpu", 409, "Duplicate", {}),
    single("gpu", 400, "BadArgument", { code: "BadArgument", details: [{ target: "dimension", code: "InvalidDimension", message: "The payload dimension is invalid." }] }),
    single("cpu", 200, "Accepted", {}, { subscriptionId: who.subscriptionId, managedResourceGroup: "other" }),
    { time: "t", operation: "usageEvent.intent", id: "i", customer: who, request: { method: "POST", url: "u", headers: {}, body: { dimension: "ram" } } },
    {
      time: "t", operation: "batchUsageEvent", customer: { ...who, managedResourceGroup: "MRG-1" },
      request: { method: "POST", url: "u", headers: {}, body: { request: [{ dimension: "disk", planId: "silver" }, { dimension: "net", planId: "silver" }] } },
      response: { status: 200, body: { result: [{ status: "Accepted", dimension: "disk" }, { status: "InvalidDimension", dimension: "net" }], count: 2 } },
    },
  ];
  assert.equal(dimensionVerdicts(records, who), [
    { dimension: "cpu", accepted: 2, invalid: 0 },
    { dimension: "disk", accepted: 1, invalid: 0 },
    { dimension: "gpu", accepted: 0, invalid: 1, planId: "silver", firstInvalidAt: "2026-01-01T00:00:00.000Z", lastInvalidAt: "2026-01-01T00:00:00.000Z" },
    { dimension: "net", accepted: 0, invalid: 1, planId: "silver" },
  ]);
});
dims("with a window: refusals for hours past it, or followed by an accepted event of the dimension, are settled", () => {
  const H = 3600_000;
  const now = Date.parse("2026-01-03T12:00:00Z");
  const at = (dimension: string, hoursAgo: number, outcome: string, status: number, body: unknown = {}): AuditRecord => ({
    time: new Date(now - hoursAgo * H + 60_000).toISOString(), operation: "usageEvent", id: `${dimension}${hoursAgo}`, customer: who,
    request: { method: "POST", url: "u", headers: {}, body: { dimension, planId: "silver", quantity: 1, effectiveStartTime: new Date(now - hoursAgo * H).toISOString() } },
    outcome, response: { status, body },
  });
  const invalid = { code: "BadArgument", details: [{ target: "dimension", code: "BadArgument", message: "The dimension is invalid." }] };
  const records = [
    at("cpu-hourz", 30, "BadArgument", 400, invalid), // an old typo: its hour is past the 24-hour window
    at("gpu", 5, "BadArgument", 400, invalid), // refused, then accepted (the plan gained it)
    at("gpu", 3, "Accepted", 200),
    at("net", 6, "BadArgument", 400, invalid),
    at("net", 2, "BadArgument", 400, invalid),
  ];
  const verdicts = dimensionVerdicts(records, who, { now, windowMs: 24 * H });
  assert.equal(verdicts.map((v) => [v.dimension, v.invalid, v.settled ?? 0]), [["cpu-hourz", 0, 1], ["gpu", 0, 1], ["net", 2, 0]]);
  const net = verdicts.find((v) => v.dimension === "net")!;
  assert.is(formatAge(now - Date.parse(net.lastInvalidAt!)), "2 h");
  assert.is(formatAge(now - Date.parse(net.firstInvalidAt!)), "6 h");
  // Without a window, the old typo counts.
  assert.is(dimensionVerdicts(records, who).find((v) => v.dimension === "cpu-hourz")!.invalid, 1);
});
dims("reads outcomes that refer to their intent by id (no request of their own), beside old ones that repeat it", () => {
  const intent = (id: string, body: unknown): AuditRecord => ({ time: "t", operation: id.startsWith("b") ? "batchUsageEvent.intent" : "usageEvent.intent", id, customer: who, request: { method: "POST", url: "u", headers: {}, body } });
  const records: AuditRecord[] = [
    intent("s1", { dimension: "cpu", planId: "silver", quantity: 1 }),
    { time: "t", operation: "usageEvent", id: "s1", customer: who, response: { status: 200, body: {} }, events: [{ key: "k", status: "Accepted", state: "accepted" }] },
    intent("s2", { dimension: "gpu", planId: "silver", quantity: 1 }),
    { time: "t", operation: "usageEvent", id: "s2", customer: who, response: { status: 400, body: { code: "InvalidDimension" } }, events: [{ key: "k2", status: "InvalidDimension", state: "failed" }] },
    intent("b1", { request: [{ dimension: "disk", planId: "gold" }, { dimension: "net", planId: "gold" }] }),
    { time: "t", operation: "batchUsageEvent", id: "b1", customer: who, response: { status: 200, body: { result: [{ status: "Accepted" }, { status: "InvalidDimension" }], count: 2 } } },
    single("cpu", 409, "Duplicate", {}),
  ];
  assert.equal(dimensionVerdicts(records, who), [
    { dimension: "cpu", accepted: 2, invalid: 0 },
    { dimension: "disk", accepted: 1, invalid: 0 },
    { dimension: "gpu", accepted: 0, invalid: 1, planId: "silver" },
    { dimension: "net", accepted: 0, invalid: 1, planId: "gold" },
  ]);
});
dims.run();

const notFound = suite("isArmNotFound()");
notFound("recognises az rest's 404 lines only", () => {
  const az = (errorLine: string) => new AzError("x", { args: [], exitCode: 1, stderr: "", errorLine });
  assert.ok(isArmNotFound(az('Not Found({"error":{"code":"ResourceNotFound"}})')));
  assert.ok(isArmNotFound(az('Bad Request({"error":{"code":"ResourceGroupNotFound"}})')));
  assert.not.ok(isArmNotFound(az('Forbidden({"error":{"code":"AuthorizationFailed"}})')));
  assert.not.ok(isArmNotFound(new Error("Not Found")));
});
notFound.run();
