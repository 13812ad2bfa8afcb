// What the benchmarks share: CPU seconds from /proc, and running a process while sampling its
// peak memory (VmHWM). Linux only, as the benchmarks are.
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";

const CLK_TCK = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;

/** CPU seconds (user + system) of a process from /proc/PID/stat; `children` adds its waited-for children's (cutime + cstime). */
export function cpuSeconds(pid: number, children = false): number {
  let stat = "";
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return 0;
  }
  // Fields after the parenthesised command name: state is field 3; utime 14, stime 15, cutime 16, cstime 17.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
  if (f.length < 15) return 0;
  return (f[11] + f[12] + (children ? f[13] + f[14] : 0)) / CLK_TCK;
}

/** CPU seconds of this process's finished children (read before and after a run: the difference is the run's). */
export function childCpuSeconds(): number {
  return cpuSeconds(process.pid, true) - cpuSeconds(process.pid, false);
}

/** The machine's load average (1, 5, 15 minutes), as /proc/loadavg says. */
export function loadAverage(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
}

/** Runs argv; samples the child's peak RSS (VmHWM) from /proc every 20 ms until it exits. */
export function runMeasured(argv: string[], o: { cwd: string; env: Record<string, string> }): Promise<{ ms: number; code: number | null; peakMb: number; out: string }> {
  return new Promise((res) => {
    const t0 = performance.now();
    const child = spawn(argv[0], argv.slice(1), { cwd: o.cwd, env: o.env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    let peakKb = 0;
    const sample = async () => {
      const status = await readFile(`/proc/${child.pid}/status`, "utf8").catch(() => "");
      const m = /VmHWM:\s+(\d+)/.exec(status);
      if (m) peakKb = Math.max(peakKb, Number(m[1]));
    };
    const timer = setInterval(sample, 20);
    child.on("exit", (code) => {
      clearInterval(timer);
      res({ ms: performance.now() - t0, code, peakMb: peakKb / 1024, out });
    });
  });
}
