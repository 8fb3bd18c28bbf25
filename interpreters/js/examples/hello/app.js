// The export wasi:cli/run@0.2.12 is the object `run`; its method `run` is
// the command's main. It returns `result`: returning normally means ok,
// throwing prints the error and means err (exit code 1).
import { getArguments } from "wasi:cli/environment@0.2.12";

export const run = {
  run() {
    console.log("hello from JS");
    for (const arg of getArguments()) console.log(`argument: ${arg}`);
  },
};
