// The sandbox state's per-type resource index must follow every change to `resources`.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { SandboxState, VersionedMap } from "../../sandbox/core/state.mts";
import { loadWorldSeed } from "../../sandbox/main.mts";

const versioned = suite("VersionedMap");
versioned("counts set, delete and clear", () => {
  const m = new VersionedMap<string, number>();
  m.set("a", 1);
  m.set("a", 2);
  m.delete("a");
  m.clear();
  assert.is(m.version, 4);
  assert.is(m.size, 0);
});
versioned.run();

const ofType = suite("SandboxState.ofType()");
ofType("sees resources added and removed after an earlier lookup, in any case of the type", async () => {
  const state = new SandboxState(await loadWorldSeed());
  const before = state.ofType("Microsoft.Solutions/applications").length;
  assert.ok(before > 0);
  const id = "/subscriptions/x/resourceGroups/y/providers/Microsoft.Solutions/applications/extra";
  state.resources.set(id.toLowerCase(), { id, name: "extra", type: "Microsoft.Solutions/applications", properties: {} } as never);
  assert.is(state.ofType("microsoft.solutions/APPLICATIONS").length, before + 1);
  state.resources.delete(id.toLowerCase());
  assert.is(state.ofType("Microsoft.Solutions/applications").length, before);
});
ofType("hands out a copy: changing the list does not change the index", async () => {
  const state = new SandboxState(await loadWorldSeed());
  const list = state.ofType("Microsoft.Solutions/applications");
  const n = list.length;
  list.pop();
  assert.is(state.ofType("Microsoft.Solutions/applications").length, n);
});
ofType.run();
