// `doctor --usage`: what the ledger holds for a person now (lib/metering/attention.mts), read
// from the audit log alone: no credential, no call to Azure, nothing sent. For a health probe:
// the same check a run ends with, between runs.
import { readSettings } from "../core/settings.mts";
import { auditPathIn, resolveDataDir } from "../state/paths.mts";
import { loadLedger } from "../metering/submission.mts";
import { attentionOfLedger, type Attention } from "../metering/attention.mts";

/** The ledger's events that need a person at `now` (default: the clock). */
export async function usageAttention(o: { warnBeforeMs: number; now?: number; env?: NodeJS.ProcessEnv }): Promise<Attention & { auditPath: string }> {
  const auditPath = auditPathIn(resolveDataDir(readSettings(o.env)));
  const now = o.now ?? Date.now();
  const { ledger } = await loadLedger({ auditPath, now });
  return { ...attentionOfLedger({ ledger, now, warnBeforeMs: o.warnBeforeMs }), auditPath };
}
