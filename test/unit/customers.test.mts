import { suite } from "uvu";
import * as assert from "uvu/assert";
import { CustomerIndex, customerIndexOf, customerKey, findCustomer, isSameCustomer } from "../../lib/state/customers.mts";

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

const index = suite("CustomerIndex / customerIndexOf()");
index("answers as findCustomer does, in any case, first spelling first", () => {
  const first = { planName: "first" }, second = { planName: "second" }, other = { planName: "other" };
  const config = { customers: { "AAAAAAAA-1111-4111-8111-111111111111": { "mrg-App": first, "MRG-APP": second, "mrg-2": other } } };
  const idx = new CustomerIndex(config);
  for (const ref of [
    { subscriptionId: "aaaaaaaa-1111-4111-8111-111111111111", managedResourceGroup: "MRG-app" },
    { subscriptionId: "aaaaaaaa-1111-4111-8111-111111111111", managedResourceGroup: "mrg-2" },
    { subscriptionId: "aaaaaaaa-1111-4111-8111-111111111111", managedResourceGroup: "nope" },
    { subscriptionId: "bbbbbbbb-1111-4111-8111-111111111111", managedResourceGroup: "mrg-app" },
  ]) assert.equal(idx.find(ref), findCustomer(config, ref));
  assert.is(idx.find({ subscriptionId: "AAAAAAAA-1111-4111-8111-111111111111", managedResourceGroup: "mrg-app" })?.customer, first);
  assert.is(new CustomerIndex({}).find({ subscriptionId: "x", managedResourceGroup: "y" }), undefined);
});
index("customerIndexOf() builds one index per customers object: a copy made by withCustomer gets its own", () => {
  const config = { customers: { "s": { "g": { planName: "p" } } } };
  assert.is(customerIndexOf(config), customerIndexOf({ ...config }));
  const copy = { ...config, customers: { ...config.customers, "t": { "h": { planName: "q" } } } };
  assert.is.not(customerIndexOf(copy), customerIndexOf(config));
  assert.ok(customerIndexOf(copy).find({ subscriptionId: "T", managedResourceGroup: "H" }));
  assert.is(customerIndexOf(config).find({ subscriptionId: "T", managedResourceGroup: "H" }), undefined);
});
index.run();
