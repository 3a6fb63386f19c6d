#!/usr/bin/env node
// Validate runpool messages against schemas/*.schema.json (JSON Schema
// 2020-12, ajv + ajv-formats pinned in package.json).
//
//   node tests/schema/validate.js --schema NAME [--expect-invalid] FILE...
//       NAME: request | result | executor-result | session-state
//       FILE: a .json document, or a .jsonl file (one document per line,
//             blank lines ignored). Exit 0 only when every document is
//             valid (with --expect-invalid: every document is invalid),
//             and at least one document was checked.
//   node tests/schema/validate.js --examples DIR
//       Every DIR/NAME/valid/* must be valid and every DIR/NAME/invalid/*
//       invalid, for each NAME above; each schema's own `examples` must be
//       valid too.
//
// Options: --schemas-dir DIR (default: ../../schemas from this file),
// --verbose (also say why each expected-invalid document is invalid).
// Failures are printed as FILE:LINE: message. Exit status: 0 ok,
// 1 validation failures, 2 usage or setup errors (ajv not installed).
//
// Integration tests run this over every message they saw on the topics,
// so keep the command line stable.
'use strict';

const fs = require('fs');
const path = require('path');

const DOC_SCHEMAS = ['request', 'result', 'executor-result', 'session-state'];

function die(msg) {
  console.error(`validate.js: ${msg}`);
  process.exit(2);
}

// ajv comes from this directory's node_modules only, at the pinned
// versions: a stray global install must not make the test pass or skip.
function loadAjv() {
  const modDir = path.join(__dirname, 'node_modules');
  if (!fs.existsSync(modDir)) {
    die(`${modDir} is missing: run "npm ci" in ${__dirname}`);
  }
  const pins = JSON.parse(
    fs.readFileSync(path.join(__dirname, 'package.json'), 'utf8')).dependencies;
  for (const [name, want] of Object.entries(pins)) {
    const pkg = path.join(modDir, name, 'package.json');
    if (!fs.existsSync(pkg)) {
      die(`${name} is not installed: run "npm ci" in ${__dirname}`);
    }
    const have = JSON.parse(fs.readFileSync(pkg, 'utf8')).version;
    if (have !== want) {
      die(`${name} ${have} is installed but package.json pins ${want}: ` +
          `run "npm ci" in ${__dirname}`);
    }
  }
  const Ajv2020 = require(path.join(modDir, 'ajv', 'dist', '2020')).default;
  const addFormats = require(path.join(modDir, 'ajv-formats')).default;
  return { Ajv2020, addFormats };
}

function parseArgs(argv) {
  const opts = {
    schema: null, expectInvalid: false, examples: null, verbose: false,
    schemasDir: path.resolve(__dirname, '..', '..', 'schemas'), files: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) die(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--schema') opts.schema = next();
    else if (a === '--expect-invalid') opts.expectInvalid = true;
    else if (a === '--examples') opts.examples = next();
    else if (a === '--schemas-dir') opts.schemasDir = path.resolve(next());
    else if (a === '--verbose') opts.verbose = true;
    else if (a === '-h' || a === '--help') {
      console.log('usage: validate.js --schema NAME [--expect-invalid] FILE...\n' +
                  '       validate.js --examples DIR\n' +
                  `NAME: ${DOC_SCHEMAS.join(' | ')}`);
      process.exit(0);
    } else if (a.startsWith('--')) die(`unknown option ${a}`);
    else opts.files.push(a);
  }
  if (opts.examples !== null) {
    if (opts.schema || opts.expectInvalid || opts.files.length) {
      die('--examples takes no --schema, --expect-invalid or files');
    }
  } else {
    if (!DOC_SCHEMAS.includes(opts.schema)) {
      die(`--schema must be one of: ${DOC_SCHEMAS.join(', ')}`);
    }
    if (!opts.files.length) die('no files given');
  }
  return opts;
}

function buildAjv(schemasDir) {
  const { Ajv2020, addFormats } = loadAjv();
  // Strict, so a typo in a schema keyword fails loudly instead of being
  // ignored. strictRequired alone is off: it rejects the standard
  // if/then { "required": [...] } form the result schema relies on.
  const ajv = new Ajv2020({ strict: true, strictRequired: false, allErrors: true });
  addFormats(ajv);
  const schemas = {};
  const files = fs.existsSync(schemasDir) ?
    fs.readdirSync(schemasDir).filter((f) => f.endsWith('.schema.json')).sort() : [];
  if (!files.length) die(`no *.schema.json in ${schemasDir}`);
  for (const f of files) {
    const s = JSON.parse(fs.readFileSync(path.join(schemasDir, f), 'utf8'));
    ajv.addSchema(s);
    schemas[f.replace(/\.schema\.json$/, '')] = s;
  }
  const validators = {};
  for (const name of DOC_SCHEMAS) {
    if (!schemas[name]) die(`${schemasDir}/${name}.schema.json is missing`);
    try {
      validators[name] = ajv.getSchema(schemas[name].$id);
    } catch (e) {
      die(`${name}.schema.json does not compile: ${e.message}`);
    }
  }
  return { ajv, schemas, validators };
}

// Documents of one file as {line, text}. Decoding is strict, like the C
// side: invalid UTF-8 or a byte order mark makes the document invalid
// rather than being papered over.
function readDocs(file) {
  const bytes = fs.readFileSync(file);
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (e) {
    return [{ line: 1, text: null, why: 'not valid UTF-8' }];
  }
  if (!file.endsWith('.jsonl')) return [{ line: 1, text }];
  const docs = [];
  text.split('\n').forEach((l, i) => {
    if (l.trim() !== '') docs.push({ line: i + 1, text: l });
  });
  return docs;
}

function errorsOf(validate, doc) {
  if (doc.text === null) return [doc.why];
  let value;
  try {
    value = JSON.parse(doc.text);
  } catch (e) {
    return [`not JSON: ${e.message}`];
  }
  if (validate(value)) return [];
  return validate.errors.map((e) =>
    `${e.instancePath || '/'} ${e.message}` +
    (e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : ''));
}

// Check files against one schema; returns [documents checked, failures].
function checkFiles(validators, schema, files, expectInvalid, verbose) {
  let count = 0;
  let failures = 0;
  for (const file of files) {
    let docs;
    try {
      docs = readDocs(file);
    } catch (e) {
      console.error(`${file}: ${e.message}`);
      failures++;
      continue;
    }
    for (const doc of docs) {
      count++;
      const errs = errorsOf(validators[schema], doc);
      const where = `${file}:${doc.line}`;
      if (!expectInvalid) {
        for (const e of errs) console.error(`${where}: ${schema}: ${e}`);
        if (errs.length) failures++;
      } else if (!errs.length) {
        console.error(`${where}: ${schema}: valid, but expected invalid`);
        failures++;
      } else if (verbose) {
        console.log(`${where}: ${schema}: invalid as expected: ${errs[0]}`);
      }
    }
  }
  return [count, failures];
}

function listDir(dir) {
  if (!fs.existsSync(dir)) return null;
  return fs.readdirSync(dir)
    .filter((f) => f.endsWith('.json') || f.endsWith('.jsonl'))
    .sort().map((f) => path.join(dir, f));
}

function runExamples(opts, validators, schemas) {
  let failures = 0;
  for (const name of DOC_SCHEMAS) {
    for (const kind of ['valid', 'invalid']) {
      const dir = path.join(opts.examples, name, kind);
      const files = listDir(dir);
      if (!files || !files.length) {
        console.error(`${dir}: no test vectors (*.json, *.jsonl)`);
        failures++;
        continue;
      }
      const [count, bad] = checkFiles(validators, name, files,
                                      kind === 'invalid', opts.verbose);
      failures += bad;
      console.log(`${name}/${kind}: ${count - bad}/${count} as expected`);
    }
    // A vector that is not even JSON would be "invalid" for any schema, so
    // a typo could hide in invalid/: such vectors must say so in the name.
    for (const file of listDir(path.join(opts.examples, name, 'invalid')) || []) {
      for (const doc of readDocs(file)) {
        let isJson = doc.text !== null;
        try {
          if (isJson) JSON.parse(doc.text);
        } catch (e) {
          isJson = false;
        }
        if (!isJson && !path.basename(file).includes('not-json')) {
          console.error(`${file}:${doc.line}: not JSON; name such vectors *not-json*`);
          failures++;
        }
      }
    }
    const own = schemas[name].examples;
    if (!Array.isArray(own) || !own.length) {
      console.error(`${name}.schema.json: has no examples`);
      failures++;
      continue;
    }
    own.forEach((ex, i) => {
      if (!validators[name](ex)) {
        console.error(`${name}.schema.json: examples[${i}]: ` +
                      validators[name].errors.map((e) =>
                        `${e.instancePath || '/'} ${e.message}`).join('; '));
        failures++;
      }
    });
    console.log(`${name}.schema.json: ${own.length} own examples checked`);
  }
  return failures;
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const { schemas, validators } = buildAjv(opts.schemasDir);
  if (opts.examples !== null) {
    const failures = runExamples(opts, validators, schemas);
    if (failures) {
      console.error(`validate.js: ${failures} failure(s)`);
      process.exit(1);
    }
    return;
  }
  const [count, failures] = checkFiles(validators, opts.schema, opts.files,
                                       opts.expectInvalid, opts.verbose);
  if (!count) {
    console.error('validate.js: no documents found in the given files');
    process.exit(1);
  }
  if (failures) {
    console.error(`validate.js: ${failures} of ${count} document(s) ` +
                  (opts.expectInvalid ? 'valid, expected invalid' : 'invalid'));
    process.exit(1);
  }
  console.log(`validate.js: ${count} document(s) ${opts.expectInvalid ? 'invalid' : 'valid'} ` +
              `as expected against ${opts.schema}`);
}

main();
