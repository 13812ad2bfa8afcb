// `doctor --usage`: what the ledger holds for a person now (lib/metering/attention.mts), read
// from the audit log alone: no call to the metering API or ARM, nothing sent (a blob ledger is
// read with the ISV credential). For a health probe: the same check a run ends with, between runs.
import type { LedgerStore } from "../audit/store.mts";
import { loadLedger } from "../metering/submission.mts";
import { attentionOfLedger, type Attention } from "../metering/attention.mts";

/** The ledger's events that need a person at `now` (default: the clock). */
export async function usageAttention(o: { store: LedgerStore; warnBeforeMs: number; now?: number }): Promise<Attention & { where: string }> {
  const now = o.now ?? Date.now();
  const { ledger } = await loadLedger({ store: o.store, now });
  return { ...attentionOfLedger({ ledger, now, warnBeforeMs: o.warnBeforeMs }), where: o.store.where };
}
