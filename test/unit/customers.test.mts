import { suite } from "uvu";
import * as assert from "uvu/assert";
import { customerKey, findCustomer, isSameCustomer } from "../../lib/state/customers.mts";

const same = suite("isSameCustomer()");
same("compares subscription and managed resource group without case; anything missing is another customer", () => {
  const c = { subscriptionId: "AAAAAAAA-1111-4111-8111-111111111111", managedResourceGroup: "mrg-App" };
  assert.ok(isSameCustomer({ subscriptionId: c.subscriptionId.toLowerCase(), managedResourceGroup: "MRG-APP" }, c));
  assert.not.ok(isSameCustomer({ subscriptionId: c.subscriptionId, managedResourceGroup: "mrg-app2" }, c));
  assert.not.ok(isSameCustomer({ subscriptionId: "bbbbbbbb-1111-4111-8111-111111111111", managedResourceGroup: "mrg-app" }, c));
  assert.not.ok(isSameCustomer({ subscriptionId: c.subscriptionId }, c));
  assert.not.ok(isSameCustomer(undefined, c));
});
same.run();

const key = suite("customerKey()");
key("is subscription/mrg in lower case", () => {
  assert.is(customerKey({ subscriptionId: "AB-CD", managedResourceGroup: "My-RG" }), "ab-cd/my-rg");
});
key.run();

const find = suite("findCustomer()");
find("finds an entry in any case and returns the keys as config spells them", () => {
  const entry = { planName: "p" };
  const config = { customers: { "AAAAAAAA-1111-4111-8111-111111111111": { "mrg-App": entry } } };
  assert.equal(findCustomer(config, { subscriptionId: "aaaaaaaa-1111-4111-8111-111111111111", managedResourceGroup: "MRG-APP" }), {
    subscriptionId: "AAAAAAAA-1111-4111-8111-111111111111", managedResourceGroup: "mrg-App", customer: entry,
  });
  assert.is(findCustomer(config, { subscriptionId: "aaaaaaaa-1111-4111-8111-111111111111", managedResourceGroup: "other" }), undefined);
  assert.is(findCustomer(config, { subscriptionId: "bbbbbbbb-1111-4111-8111-111111111111", managedResourceGroup: "mrg-app" }), undefined);
  assert.is(findCustomer({}, { subscriptionId: "x", managedResourceGroup: "y" }), undefined);
});
find.run();
