// rwq plugin dev's AssemblyScript compiler, kept loaded between builds: loading asc and
// Binaryen takes about a second, and a compiler that has run before compiles several times
// faster. Started with the path of the plugin's assemblyscript/dist/asc.js; reads one JSON
// request a line on stdin ({"cwd": DIR, "argv": [...]}) and answers each with one JSON line
// ({"ok": bool, "output": str}). It ends when stdin closes.
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const asc = await import(pathToFileURL(process.argv[2]).href);
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
process.stdout.write(JSON.stringify({ ready: true }) + "\n");

for await (const line of lines) {
  let answer;
  try {
    const request = JSON.parse(line);
    process.chdir(request.cwd);
    const { error, stdout, stderr } = await asc.main(request.argv, {});
    const output = stderr.toString() + stdout.toString();
    answer = { ok: !error, output: error && !output ? String(error) : output };
  } catch (exc) {
    answer = { ok: false, output: String(exc && exc.stack ? exc.stack : exc) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
