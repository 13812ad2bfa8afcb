// The pure parts of adopting an offer template's identity and of deciding a grant's tenancy:
// what differs between a federated credential and what this ISV signs, and when a write is
// cross-tenant (delegatedManagedIdentityResourceId only then).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { offerIdentityMismatch } from "../../lib/customers/adopt.mts";
import { isCrossTenantWrite } from "../../lib/azure/role-grants.mts";

const ISSUER = "https://contosoisv.blob.core.windows.net/oidc";
const expected = { issuer: ISSUER, subject: "metering-submission-via-uami from 388a424d-14c3-4aaa-9842-d1a5a08a11b8", audience: "api://AzureADTokenExchange" };
const fic = (o: Partial<{ issuer: string; subject: string; audiences: string[] }> = {}) => ({
  id: "/x/federatedIdentityCredentials/fed", name: "fed", issuer: ISSUER, subject: expected.subject, audiences: [expected.audience], ...o,
});

const M = suite("offerIdentityMismatch()");
M("an exact match is undefined", () => {
  assert.is(offerIdentityMismatch(fic(), expected), undefined);
});
M("names each field that differs, case and trailing slash included, with both values", () => {
  assert.is(offerIdentityMismatch(fic({ issuer: `${ISSUER}/` }), expected), `issuer "${ISSUER}/" (this ISV's is "${ISSUER}")`);
  assert.match(offerIdentityMismatch(fic({ subject: expected.subject.toUpperCase() }), expected)!, /^subject "METERING-SUBMISSION-VIA-UAMI FROM .*" \(this ISV signs "metering-submission-via-uami from /);
  assert.is(offerIdentityMismatch(fic({ audiences: ["api://other"] }), expected), `audiences ["api://other"] (expected ["api://AzureADTokenExchange"])`);
  assert.match(offerIdentityMismatch(fic({ audiences: [expected.audience, "x"] }), expected)!, /^audiences /);
  const both = offerIdentityMismatch(fic({ issuer: "https://other", subject: "s" }), expected)!;
  assert.match(both, /^issuer .*, subject "s"/);
});
M.run();

const X = suite("isCrossTenantWrite()");
X("another tenant, or an unknown one, is cross-tenant; the same tenant in any case is not", () => {
  assert.ok(isCrossTenantWrite("388a424d-14c3-4aaa-9842-d1a5a08a11b8", "e489a1c8-9af7-42b5-8c85-1d3885494707"));
  assert.ok(isCrossTenantWrite(undefined, "e489a1c8-9af7-42b5-8c85-1d3885494707"));
  assert.not.ok(isCrossTenantWrite("E489A1C8-9AF7-42B5-8C85-1D3885494707", "e489a1c8-9af7-42b5-8c85-1d3885494707"));
});
X.run();
