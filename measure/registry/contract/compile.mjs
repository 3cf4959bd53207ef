// Compiles registry.tolk with the pinned @ton/tolk-js (package-lock.json)
// and writes, into the directory given as the only argument (default: this
// directory):
//   registry.code.boc   the code cell, as the compiler serialised it
//   registry.code.hash  "<code cell hash hex> tolk <compiler version>\n"
// The output depends only on the source and the compiler version, so
// ci/tolk-check.sh can recompile and compare byte for byte.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { runTolkCompiler, getTolkCompilerVersion } from "@ton/tolk-js";

const here = dirname(fileURLToPath(import.meta.url));
const outDir = resolve(process.argv[2] ?? here);

const result = await runTolkCompiler({
  entrypointFileName: "registry.tolk",
  fsReadCallback: (path) => readFileSync(join(here, path), "utf-8"),
  optimizationLevel: 2,
});
if (result.status !== "ok") {
  console.error(`compile.mjs: registry.tolk: ${result.message}`);
  process.exit(1);
}
if (result.stderr) {
  process.stderr.write(result.stderr);
}
const version = await getTolkCompilerVersion();
writeFileSync(join(outDir, "registry.code.boc"), Buffer.from(result.codeBoc64, "base64"));
writeFileSync(join(outDir, "registry.code.hash"), `${result.codeHashHex.toLowerCase()} tolk ${version}\n`);
console.log(`registry.tolk -> ${outDir}/registry.code.boc (code hash ${result.codeHashHex.toLowerCase()}, tolk ${version})`);
