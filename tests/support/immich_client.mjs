// Sends POST /predict exactly the way the Immich server does (server/src/repositories/
// machine-learning.repository.ts): Node's fetch with a FormData holding `entries` as a JSON
// string and the preview file as a bare Blob (so filename "blob", no content type of its own).
//
// usage: node immich_client.mjs URL ENTRIES_JSON (image PATH | text TEXT)
// prints one JSON line: the bytes these form parts serialise to, and the answer received.
import { readFile } from 'node:fs/promises';

const [base, entries, kind, value] = process.argv.slice(2);
const url = new URL('/predict', base);

const formData = new FormData();
formData.append('entries', entries);
if (kind === 'image') {
  formData.append('image', new Blob([new Uint8Array(await readFile(value))]));
} else {
  formData.append('text', value);
}

// undici draws a fresh boundary each time a FormData is serialised; the test swaps it back.
const serialised = new Request(url, { method: 'POST', body: formData });
const sent = Buffer.from(await serialised.arrayBuffer());

const response = await fetch(url, { method: 'POST', body: formData });
const body = Buffer.from(await response.arrayBuffer());
console.log(JSON.stringify({
  sent: sent.toString('base64'),
  sentContentType: serialised.headers.get('content-type'),
  status: response.status,
  contentType: response.headers.get('content-type'),
  body: body.toString('base64'),
}));
