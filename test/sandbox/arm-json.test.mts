// ARM reads request bodies as Json.NET does: unquoted property names and comments pass (the real
// az sends `template:{…}` unquoted), anything else that is not JSON does not.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { armLenientJson } from "../../sandbox/services/arm/core.mts";

const T = suite("armLenientJson()");
T("az's deployment body: the spliced template under an unquoted key", () => {
  const body = `{"properties": {"parameters": {}, "mode": "Incremental", template:{"$schema":"https://x/y#","resources":[{"type":"A/b","name":"n"}]}}}`;
  assert.equal(JSON.parse(armLenientJson(body)), { properties: { parameters: {}, mode: "Incremental", template: { $schema: "https://x/y#", resources: [{ type: "A/b", name: "n" }] } } });
});
T("comments go; strings stay byte for byte, with // and escaped quotes in them", () => {
  assert.equal(JSON.parse(armLenientJson(`{/* a */ "u": "https://h//p", // c\n "q": "x\\"y", "t": true, "n": [null, false]}`)), { u: "https://h//p", q: 'x"y', t: true, n: [null, false] });
});
T("what is not JSON either way still fails", () => {
  for (const bad of ["{a: 'single'}", "{\"a\": }", "{\"a\" 1}"]) assert.throws(() => JSON.parse(armLenientJson(bad)), SyntaxError, bad);
});
T.run();
