// What each Entra error a federated sign-in can hit means, and what to do about it, in
// plain words. Branch on the number (error_codes[0]), never on Entra's message text.

export interface AadstsEntry {
  /** What went wrong, in one sentence. */
  meaning: string;
  /** What to do about it. May use {issuer}, {subject}, {audience}, {tenantId}, {clientId}, {kid}. */
  fix: string;
  /** True when waiting and trying again can help (replication after a change). */
  transient?: boolean;
}

const NO_MATCH_FIX =
  "The federated credential on the customer's UAMI must carry exactly the issuer {issuer}, subject {subject} and audience {audience} (case-sensitive, no trailing slash). A credential created in the last few minutes may not have reached Entra yet: wait and retry; otherwise re-run 1-connect-customer with --force.";

const OIDC_FETCH: AadstsEntry = {
  meaning: "Entra could not fetch the issuer's discovery document or JWKS.",
  fix: "{issuer}/.well-known/openid-configuration and its jwks_uri must be readable anonymously over https (public blob access on the container); run 0-isv-setup again to republish and verify them.",
};

/** Every AADSTS code this tool explains. */
export const AADSTS_ERRORS: Readonly<Record<number, AadstsEntry>> = {
  70021: {
    meaning: "No federated credential on the UAMI matches the assertion's issuer, subject and audience.",
    fix: NO_MATCH_FIX,
    transient: true,
  },
  700211: {
    meaning: "No federated credential on the UAMI has the assertion's issuer.",
    fix: "The credential's issuer must be exactly {issuer} (same case, no trailing slash). " +
      "If the ISV setup moved to a new issuer, re-run 1-connect-customer with --force. A new credential can take a few minutes to work: wait and retry.",
    transient: true,
  },
  700212: {
    meaning: "No federated credential on the UAMI has the assertion's audience.",
    fix: "The credential's audience must be exactly {audience}; re-run 1-connect-customer with --force.",
    transient: true,
  },
  700213: {
    meaning: "No federated credential on the UAMI has the assertion's subject.",
    fix: "The credential's subject must be exactly {subject} (case-sensitive); re-run 1-connect-customer with --force. A new credential can take a few minutes to work: wait and retry.",
    transient: true,
  },
  7002138: {
    meaning: "The subject matches the federated credential only when case is ignored; Entra compares case-sensitively.",
    fix: "Make the credential's subject exactly {subject}, same upper and lower case; re-run 1-connect-customer with --force.",
  },
  70023: {
    meaning: "The assertion lives too long (more than 25 hours between iat and exp) or has no iat.",
    fix: "Assertions from this tool live at most 10 minutes; check the system clock and that nothing else builds the assertion.",
  },
  700024: {
    meaning: "The assertion is not valid right now (expired, or its nbf is in the future).",
    fix: "Check this machine's clock (UTC, synchronised with NTP); assertions are valid from their iat for at most 10 minutes.",
  },
  7000272: {
    meaning: "The key id (kid) in the assertion header is not in the issuer's JWKS as Entra last fetched it.",
    fix: "The JWKS at {issuer}/.well-known/jwks.json must contain kid {kid}, and Entra may keep an older copy cached for hours. A new signing key must be published first and may sign only after publisher.idp.jwksCacheSeconds: rotate with 0-isv-setup --rotate-key (three phases), never by editing publisher.idp.keys; run doctor to compare the signing key with the JWKS, or 0-isv-setup to republish it.",
  },
  50166: OIDC_FETCH,
  90061: OIDC_FETCH,
  501661: OIDC_FETCH,
  700222: {
    meaning: "The assertion looks like an Entra-issued token; Entra does not accept its own tokens for federation.",
    fix: "The issuer must be your own ({issuer}), not a login.microsoftonline.com or sts.windows.net address; check publisher.idp.issuer in config.json.",
  },
  50027: {
    meaning: "Entra could not parse the assertion as a JWT, or a required claim is missing.",
    fix: "This is a bug or a damaged config: check publisher.idp in config.json and report the --verbose output.",
  },
  700027: {
    meaning: "The assertion's signature does not verify with the published key.",
    fix: "The JWKS at {issuer}/.well-known/jwks.json must hold the public half of the Key Vault key that signs (kid {kid}); run doctor to compare them, then 0-isv-setup to republish. Only RS256 is supported.",
  },
  900384: {
    meaning: "The assertion's signature does not verify (JWT token failed signature validation).",
    fix: "The JWKS at {issuer}/.well-known/jwks.json must hold the public half of the Key Vault key that signs (kid {kid}); run doctor to compare them, then 0-isv-setup to republish.",
  },
  50032: {
    meaning: "The signing key is too weak.",
    fix: "Use an RSA key of at least 2048 bits (the setup template creates 4096).",
  },
  7000218: {
    meaning: "The token request carried no client assertion.",
    fix: "This is a bug in the tool or the SDK: report it with the --verbose output.",
  },
  900144: {
    meaning: "The token request misses a required parameter.",
    fix: "This is a bug in the tool or the SDK: report it with the --verbose output.",
  },
  700016: {
    meaning: "The UAMI's client id is not known in the customer's tenant.",
    fix: "Check customers[…].uamiClientId {clientId} and tenantId {tenantId} in config.json; if the UAMI was deleted or recreated, re-run 1-connect-customer with --force. A brand-new UAMI can take a minute to appear: wait and retry.",
    transient: true,
  },
  90002: {
    meaning: "The customer's tenant was not found.",
    fix: "Check customers[…].tenantId {tenantId} in config.json and that you use the right cloud (AZURE_AUTHORITY_HOST).",
  },
  1002012: {
    meaning: "The token request's scope lacks the /.default suffix.",
    fix: "This is a bug in the tool: the metering scope must be 20e940b3-4c77-4b0b-9a53-9e16a1b010a7/.default.",
  },
  700022: {
    meaning: "The token request named more than one resource in its scope.",
    fix: "This is a bug in the tool: request one resource per token (scope <resource>/.default).",
  },
  7000215: {
    meaning: "The token request carried a client secret; a managed identity has none and signs in only with the federated assertion.",
    fix: "This is a bug or a foreign tool: the UAMI {clientId} must be used with a client assertion signed by your issuer.",
  },
  7000229: {
    meaning: "The app has no service principal in the tenant: an app registration signs in only where it has one.",
    fix: "Run 0-publisher-app again (it creates the service principal of {clientId} in {tenantId}), or: az ad sp create --id {clientId}.",
  },
  900561: {
    meaning: "The token endpoint was called with the wrong HTTP method.",
    fix: "This is a bug in the tool or a proxy in between: token requests are POSTs; check AZURE_AUTHORITY_HOST.",
  },
  901002: {
    meaning: "The v2 token endpoint got a v1 'resource' parameter.",
    fix: "This is a bug in the tool: use scope=<resource>/.default with the v2 endpoint.",
  },
  500011: {
    meaning: "The requested resource (the Marketplace metering API) is not known in the customer's tenant.",
    fix: "Check the scope (20e940b3-4c77-4b0b-9a53-9e16a1b010a7/.default) and the customer's tenantId {tenantId}.",
  },
};

/**
 * The same codes for the publisher's Entra app (0-publisher-app: central metering,
 * reconciliation), where the fix is on the app registration in the ISV tenant, not on a
 * customer's UAMI. Codes not listed read the same for both.
 */
const APP_NO_MATCH_FIX =
  "The federated credential marketplace-metering-publisher on the publisher app {clientId} (tenant {tenantId}) must carry exactly the issuer {issuer}, subject {subject} and audience {audience} (case-sensitive, no trailing slash). A credential added in the last few minutes may not have reached Entra yet: wait and retry; otherwise run 0-publisher-app --app-id {clientId} again.";
export const PUBLISHER_APP_AADSTS_ERRORS: Readonly<Record<number, AadstsEntry>> = {
  70021: { meaning: "No federated credential on the publisher app matches the assertion's issuer, subject and audience.", fix: APP_NO_MATCH_FIX, transient: true },
  700211: { meaning: "No federated credential on the publisher app has the assertion's issuer.", fix: APP_NO_MATCH_FIX, transient: true },
  700212: { meaning: "No federated credential on the publisher app has the assertion's audience.", fix: APP_NO_MATCH_FIX, transient: true },
  700213: { meaning: "No federated credential on the publisher app has the assertion's subject.", fix: APP_NO_MATCH_FIX, transient: true },
  7002138: {
    meaning: "The subject matches the publisher app's federated credential only when case is ignored; Entra compares case-sensitively.",
    fix: "Make the credential's subject exactly {subject}, same upper and lower case: run 0-publisher-app --app-id {clientId} again.",
  },
  700016: {
    meaning: "The publisher app's id is not known in the ISV tenant.",
    fix: "Check publisher.app.appId {clientId} and publisher.app.tenantId {tenantId} in config.json against the app in Partner Center's technical configuration; run 0-publisher-app --app-id <app id> again. A brand-new app can take a minute to appear: wait and retry.",
    transient: true,
  },
  7000215: {
    meaning: "The token request carried a client secret; the publisher app signs in here only with the federated assertion.",
    fix: "This is a bug or a foreign tool: the publisher app {clientId} must be used with a client assertion signed by your issuer.",
  },
  90002: {
    meaning: "The publisher app's tenant was not found.",
    fix: "Check publisher.app.tenantId {tenantId} in config.json (the ISV tenant) and that you use the right cloud (AZURE_AUTHORITY_HOST); run 0-publisher-app again.",
  },
  500011: {
    meaning: "The requested resource (the Marketplace metering API) is not known in the ISV tenant.",
    fix: "Check the scope (20e940b3-4c77-4b0b-9a53-9e16a1b010a7/.default) and publisher.app.tenantId {tenantId}.",
  },
};

/** Who signs in: a customer's UAMI (default) or the publisher's Entra app. */
export type SignInKind = "uami" | "publisher-app";

/** Values that make an explanation concrete; any may be missing. */
export interface AadstsContext {
  /** Whose sign-in failed: the fixes differ (default a customer's UAMI). */
  kind?: SignInKind;
  issuer?: string;
  subject?: string;
  audience?: string;
  tenantId?: string;
  clientId?: string;
  kid?: string;
}

/** Finds the AADSTS number in an error_codes array or an `AADSTS<n>:` text. */
export function findAadstsCode(source: { errorCodes?: unknown; text?: string }): number | undefined {
  if (Array.isArray(source.errorCodes) && source.errorCodes.length > 0) {
    const n = Number(source.errorCodes[0]);
    if (Number.isInteger(n) && n > 0) return n;
  }
  const m = source.text ? /AADSTS(\d+)/.exec(source.text) : null;
  return m ? Number(m[1]) : undefined;
}

/**
 * One or two sentences for a person: what the AADSTS code means and how to fix it, with
 * the configured issuer, subject, … filled in where the fix names them.
 *
 * @example
 * explainAadsts(700213, { subject: "metering-submission-via-uami from …" })
 */
export function explainAadsts(code: number, context: AadstsContext = {}): string {
  const entry = (context.kind === "publisher-app" ? PUBLISHER_APP_AADSTS_ERRORS[code] : undefined) ?? AADSTS_ERRORS[code];
  if (!entry) {
    return `AADSTS${code}: see https://login.microsoftonline.com/error?code=${code}`;
  }
  const fix = entry.fix.replace(/\{(issuer|subject|audience|tenantId|clientId|kid)\}/g, (_, key: keyof AadstsContext) => {
    const value = context[key];
    if (value === undefined) return `(${key})`;
    // Free-form values are quoted so spaces and case stand out; URLs and ids read better bare.
    return key === "subject" || key === "audience" ? JSON.stringify(value) : value;
  });
  return `AADSTS${code}: ${entry.meaning} ${fix}`;
}

/** True when the code is one that can clear up by itself (replication after a change). */
export function isTransientAadsts(code: number | undefined): boolean {
  return code !== undefined && AADSTS_ERRORS[code]?.transient === true;
}
