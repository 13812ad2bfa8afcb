// A preload for profiling the sandbox in the benchmark: `node --import ./bench/cpu-profile.mts`
// (through NODE_OPTIONS, where Node refuses --cpu-prof) records a V8 CPU profile of a process
// whose script path matches CPU_PROFILE_MATCH (default: sandbox/main.mts) and writes it to
// CPU_PROFILE_DIR (default: the working directory) as <pid>.cpuprofile when the process exits.
// Under Node 20 put `--import tsx` before it.
import { Session } from "node:inspector";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const match = process.env.CPU_PROFILE_MATCH ?? "sandbox/main.mts";
if ((process.argv[1] ?? "").includes(match)) {
  // Not for the processes it starts (Azurite).
  delete process.env.NODE_OPTIONS;
  const session = new Session();
  session.connect();
  session.post("Profiler.enable");
  session.post("Profiler.setSamplingInterval", { interval: 1000 });
  session.post("Profiler.start");
  process.once("exit", () => {
    session.post("Profiler.stop", (err, res) => {
      if (!err) writeFileSync(join(process.env.CPU_PROFILE_DIR ?? ".", `${process.pid}.cpuprofile`), JSON.stringify(res.profile));
    });
  });
}
