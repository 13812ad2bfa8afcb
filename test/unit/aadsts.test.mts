import { suite } from "uvu";
import * as assert from "uvu/assert";
import { AADSTS_ERRORS, explainAadsts, findAadstsCode, isTransientAadsts, PUBLISHER_APP_AADSTS_ERRORS } from "../../lib/identity/aadsts.mts";
import { EMULATED_AADSTS_CODES } from "../../sandbox/services/entra/aadsts.mts";

// Every code in docs/azure-behaviour.md §2.6 (the table, 900384 in the 700027 row), §2.3 (50032) and §2.5 (700022).
const DOCUMENTED_CODES = [
  70021, 700211, 700212, 700213, 7002138, 70023, 700024, 7000272, 50166, 90061, 501661, 700222, 50027, 700027, 900384,
  7000218, 900144, 700016, 90002, 1002012, 901002, 500011, 7000215, 900561, 50032, 700022,
];

const table = suite("AADSTS_ERRORS");
table("explains every code docs/azure-behaviour.md lists", () => {
  const missing = DOCUMENTED_CODES.filter((code) => !AADSTS_ERRORS[code]);
  assert.equal(missing, []);
});
table("explains every code the sandbox's Entra answers with", () => {
  assert.equal(EMULATED_AADSTS_CODES.filter((code) => !AADSTS_ERRORS[code]), []);
});
table("7000272 points at the rotation's waiting time and the doctor", () => {
  const text = explainAadsts(7000272, { issuer: "https://i.example/public", kid: "abc" });
  assert.match(text, /kid abc/);
  assert.match(text, /--rotate-key/);
  assert.match(text, /jwksCacheSeconds/);
  assert.match(text, /doctor/);
});
table("each entry has a meaning and a fix in plain sentences", () => {
  for (const [code, entry] of Object.entries(AADSTS_ERRORS)) {
    assert.ok(entry.meaning.length > 20 && entry.meaning.endsWith("."), `meaning of ${code}`);
    assert.ok(entry.fix.length > 20 && /[.)]$/.test(entry.fix), `fix of ${code}`);
  }
});
table("the publisher app's entries: plain sentences, and no UAMI or 1-connect-customer in them", () => {
  for (const [code, entry] of Object.entries(PUBLISHER_APP_AADSTS_ERRORS)) {
    assert.ok(AADSTS_ERRORS[Number(code)], `${code} is a known code`);
    assert.ok(entry.meaning.endsWith(".") && /[.)]$/.test(entry.fix), `sentences of ${code}`);
    assert.not.match(`${entry.meaning} ${entry.fix}`, /UAMI|1-connect-customer/, String(code));
    assert.is(entry.transient === true, AADSTS_ERRORS[Number(code)].transient === true, `transient of ${code}`);
  }
  assert.match(explainAadsts(700016, { kind: "publisher-app", clientId: "app-1", tenantId: "t-1" }), /publisher\.app\.appId app-1 and publisher\.app\.tenantId t-1/);
  assert.match(explainAadsts(50166, { kind: "publisher-app", issuer: "https://i" }), /0-isv-setup/, "codes not listed read as for a UAMI");
});
table.run();

const explain = suite("explainAadsts()");
explain("fills in the configured issuer, subject and audience", () => {
  const text = explainAadsts(70021, { issuer: "https://i.example/public", subject: "sub A", audience: "api://AzureADTokenExchange" });
  assert.match(text, /^AADSTS70021: No federated credential on the UAMI matches/);
  assert.match(text, /issuer https:\/\/i\.example\/public, subject "sub A" and audience "api:\/\/AzureADTokenExchange"/);
});
explain("marks missing context values instead of printing undefined", () => {
  const text = explainAadsts(7000272, {});
  assert.match(text, /kid \(kid\)/);
  assert.not.match(text, /undefined/);
});
explain("points to Entra's error page for unknown codes", () => {
  assert.is(explainAadsts(123456), "AADSTS123456: see https://login.microsoftonline.com/error?code=123456");
});
explain.run();

const find = suite("findAadstsCode()");
find("prefers error_codes[0], else the AADSTS number in the text", () => {
  assert.is(findAadstsCode({ errorCodes: [700213, 1], text: "AADSTS70021: x" }), 700213);
  assert.is(findAadstsCode({ errorCodes: ["700211"] }), 700211);
  assert.is(findAadstsCode({ text: "invalid_client: AADSTS7002138: NM subject" }), 7002138);
  assert.is(findAadstsCode({ errorCodes: [], text: "nothing" }), undefined);
});
find.run();

const transient = suite("isTransientAadsts()");
transient("only FIC replication errors are transient", () => {
  assert.ok(isTransientAadsts(70021));
  assert.ok(isTransientAadsts(700213));
  assert.not.ok(isTransientAadsts(7002138));
  assert.not.ok(isTransientAadsts(700027));
  assert.not.ok(isTransientAadsts(undefined));
});
transient.run();
