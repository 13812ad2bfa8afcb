import { suite } from "uvu";
import * as assert from "uvu/assert";
import { auditPathIn, configPathIn, resolveDataDir } from "../../lib/state/paths.mts";
import { readSettings } from "../../lib/core/settings.mts";

const dataDir = suite("resolveDataDir()");
dataDir("prefers METERING_DATA_DIR, resolved against cwd", () => {
  assert.is(resolveDataDir(readSettings({ METERING_DATA_DIR: "/x/y" }), { cwd: "/w" }), "/x/y");
  assert.is(resolveDataDir(readSettings({ METERING_DATA_DIR: "rel", AZURE_HTTP_USER_AGENT: "cloud-shell/1.0" }), { cwd: "/w" }), "/w/rel");
});
dataDir("uses the clouddrive in Cloud Shell", () => {
  assert.is(resolveDataDir(readSettings({ AZURE_HTTP_USER_AGENT: "cloud-shell/1.0", HOME: "/home/u" }), { cwd: "/w" }), "/home/u/clouddrive/metering-data");
});
dataDir("ignores other AZURE_HTTP_USER_AGENT values", () => {
  assert.is(resolveDataDir(readSettings({ AZURE_HTTP_USER_AGENT: "vscode/1", HOME: "/home/u" }), { cwd: "/w" }), "/w/metering-data");
});
dataDir("defaults to ./metering-data", () => {
  assert.is(resolveDataDir(readSettings({}), { cwd: "/w" }), "/w/metering-data");
  assert.is(resolveDataDir(readSettings({ METERING_DATA_DIR: "" }), { cwd: "/w" }), "/w/metering-data");
});
dataDir.run();

const files = suite("configPathIn() / auditPathIn()");
files("name the two state files", () => {
  assert.is(configPathIn("/d"), "/d/config.json");
  assert.is(auditPathIn("/d"), "/d/audit.jsonl");
});
files.run();
