// Types of scripts/run.mjs (plain JavaScript, so that every Node can read it) for its tests.
export function planFor(node: { version: string; typescript?: unknown; hasTsx: boolean }): "native" | "flag" | "tsx" | "none";
export function cannotRunMessage(script: string, version: string): string;
export const EXIT_USAGE: number;
