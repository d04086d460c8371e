// Compiles contracts/src and contracts/test with solc-js (offline, pinned in package.json) into
// contracts/artifacts/<Contract>.json: { contractName, sourceName, abi, bytecode, deployedBytecode }
// and the byte ranges of its immutables in the deployed code.
//   node compile.mjs          write the artifacts
//   node compile.mjs --check  exit 1, naming the files, if the committed artifacts differ
// Source names are relative to contracts/ and imports resolve from node_modules, so the output
// (metadata hash included) is the same on every machine.
import { readFileSync, readdirSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";

const ROOT = dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = join(ROOT, "artifacts");
const SOURCE_DIRS = ["src", "test"];
// OpenZeppelin 5.7 uses `mcopy` (Cancun); solc 0.8.37 would target Osaka, which py-evm cannot run.
const EVM_VERSION = "prague";
// The usual 200: contracts deployed once and called often would want more, but these stay well
// under the 24 KiB code size limit at 200 and their calls are not hot.
const OPTIMIZER_RUNS = 200;

function solidityFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return solidityFiles(path);
    return entry.name.endsWith(".sol") ? [path] : [];
  });
}

function findImports(name) {
  const path = join(ROOT, "node_modules", name);
  if (!existsSync(path)) return { error: `not found: ${name}` };
  return { contents: readFileSync(path, "utf8") };
}

function compile() {
  const sources = {};
  for (const dir of SOURCE_DIRS) {
    for (const path of solidityFiles(join(ROOT, dir)).sort()) {
      sources[relative(ROOT, path)] = { content: readFileSync(path, "utf8") };
    }
  }
  const input = {
    language: "Solidity",
    sources,
    settings: {
      evmVersion: EVM_VERSION,
      optimizer: { enabled: true, runs: OPTIMIZER_RUNS },
      outputSelection: {
        "*": {
          "*": [
            "abi",
            "evm.bytecode.object",
            "evm.deployedBytecode.object",
            "evm.deployedBytecode.immutableReferences",
          ],
        },
      },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors ?? []).filter((e) => e.severity === "error");
  // OpenZeppelin's own warnings (a future keyword it uses as a name) are not ours to fix.
  const ours = (e) => !e.sourceLocation?.file?.startsWith("@openzeppelin/");
  for (const e of (output.errors ?? []).filter(ours)) console.error(e.formattedMessage);
  if (errors.length) process.exit(1);
  const artifacts = {};
  for (const sourceName of Object.keys(sources)) {
    for (const [contractName, c] of Object.entries(output.contracts[sourceName] ?? {})) {
      if (!c.evm.bytecode.object) continue; // interfaces and abstract contracts deploy nothing
      artifacts[`${contractName}.json`] =
        JSON.stringify(
          {
            contractName,
            sourceName,
            compiler: `solc-${solc.version()}`,
            evmVersion: EVM_VERSION,
            abi: c.abi,
            bytecode: `0x${c.evm.bytecode.object}`,
            deployedBytecode: `0x${c.evm.deployedBytecode.object}`,
            // Where the constructor writes immutables into the deployed code: [start, length]
            // in bytes. A node comparing code on chain with this artifact skips these.
            immutables: Object.values(c.evm.deployedBytecode.immutableReferences ?? {})
              .flat()
              .map(({ start, length }) => [start, length])
              .sort((a, b) => a[0] - b[0]),
          },
          null,
          2,
        ) + "\n";
    }
  }
  return artifacts;
}

const started = Date.now();
const artifacts = compile();
const seconds = ((Date.now() - started) / 1000).toFixed(1);
if (process.argv.includes("--check")) {
  const present = existsSync(ARTIFACTS) ? readdirSync(ARTIFACTS).filter((f) => f.endsWith(".json")) : [];
  const stale = Object.keys(artifacts).filter(
    (f) => !existsSync(join(ARTIFACTS, f)) || readFileSync(join(ARTIFACTS, f), "utf8") !== artifacts[f],
  );
  const extra = present.filter((f) => !(f in artifacts));
  if (stale.length || extra.length) {
    console.error(`artifacts differ from the sources (run \`make contracts\`): ${[...stale, ...extra].sort().join(", ")}`);
    process.exit(1);
  }
  console.log(`${Object.keys(artifacts).length} artifacts match the sources (compiled in ${seconds} s)`);
} else {
  mkdirSync(ARTIFACTS, { recursive: true });
  for (const [file, text] of Object.entries(artifacts)) writeFileSync(join(ARTIFACTS, file), text);
  console.log(`${Object.keys(artifacts).length} artifacts written to ${relative(process.cwd(), ARTIFACTS) || "."} (compiled in ${seconds} s)`);
}
